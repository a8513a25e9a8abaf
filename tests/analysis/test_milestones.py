"""Progress milestones (25/50/75/100 %): each recorded exactly once per job, whatever the
duplication or order of the progress reports."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.milestones import MILESTONES, milestone_step, milestones_reached


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_each_crossed_milestone_is_returned_exactly_once_whatever_the_order(data):
    total = data.draw(st.integers(1, 2000))
    steps = data.draw(st.lists(st.integers(0, total + 50), min_size=1, max_size=40))
    reports = data.draw(st.permutations(steps + data.draw(st.lists(st.sampled_from(steps), max_size=20))))
    recorded: set[int] = set()
    returned: list[int] = []
    for step in reports:
        new = milestones_reached(recorded, step, total)
        recorded |= set(new)
        returned += new
    crossed = {m for m in MILESTONES if max(steps) * 100 >= m * total}
    assert sorted(returned) == sorted(crossed)
    assert len(returned) == len(set(returned))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10**6), st.sampled_from(MILESTONES))
def test_the_milestone_step_is_the_first_step_that_crosses_it(total, percent):
    at = milestone_step(percent, total)
    assert percent in milestones_reached(set(), at, total)
    assert percent not in milestones_reached(set(), at - 1, total)


def test_examples():
    assert milestones_reached(set(), 500, 1000) == [25, 50]
    assert milestones_reached({25, 50}, 760, 1000) == [75]
    assert milestones_reached({25, 50, 75}, 1200, 1000) == [100]
    assert milestones_reached(set(), 1, 3) == [25]  # 1 of 3 steps is 33%
    assert milestones_reached(set(), 10, 0) == []  # total unknown
    assert milestones_reached(set(), 0, 1000) == []


def test_the_recorded_set_is_not_modified():
    recorded = {25}
    milestones_reached(recorded, 1000, 1000)
    assert recorded == {25}
