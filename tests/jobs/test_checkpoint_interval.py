"""Short jobs still checkpoint: the interval shrinks so a job gets about ten checkpoints."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from training.services.jobs import default_checkpoint_interval


@given(total=st.integers(min_value=0, max_value=10**6), every=st.integers(min_value=1, max_value=1000))
def test_the_interval_is_never_above_the_setting_and_gives_a_short_job_checkpoints(total, every):
    interval = default_checkpoint_interval(total, every)
    assert 1 <= interval <= every
    if total >= 10:
        # At least ~10 checkpoints, unless the configured interval is already finer.
        assert math.ceil(total / interval) >= min(10, math.ceil(total / every))


def test_a_ten_step_job_checkpoints_every_step_and_a_long_one_every_hundred():
    assert default_checkpoint_interval(10, 100) == 1
    assert default_checkpoint_interval(35, 100) == 4
    assert default_checkpoint_interval(50_000, 100) == 100
