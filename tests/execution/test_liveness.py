"""The heartbeat deadlines (training/liveness.py): pure, so checked over all inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from training.liveness import silence_deadlines

T0 = datetime(2026, 1, 1, tzinfo=UTC)
seconds = st.integers(0, 10 * 24 * 3600)
limits = st.integers(1, 24 * 3600)


def deadlines(launched: int | None, beat: int | None, stale: int, grace: int, hard: int):
    return silence_deadlines(
        launched_at=None if launched is None else T0 + timedelta(seconds=launched),
        last_heartbeat_at=None if beat is None else T0 + timedelta(seconds=beat),
        stale_seconds=stale, startup_grace_seconds=grace, hard_limit_seconds=hard)


def test_a_never_launched_attempt_has_no_deadlines():
    assert deadlines(None, None, 90, 600, 1800) is None


def test_start_up_has_its_own_grace_from_the_launch():
    d = deadlines(0, None, 15, 600, 1800)
    assert (d.late_at, d.hung_at, d.started) == (T0 + timedelta(seconds=600), T0 + timedelta(seconds=2400), False)
    d = deadlines(0, 100, 15, 600, 1800)  # once it reports, the ordinary stale limit applies
    assert (d.late_at, d.hung_at, d.started) == (T0 + timedelta(seconds=115), T0 + timedelta(seconds=1900), True)


@given(st.one_of(st.none(), seconds), st.one_of(st.none(), seconds), limits, st.integers(0, 24 * 3600), limits)
def test_late_comes_no_sooner_than_the_stale_limit_and_never_after_hung(launched, beat, stale, grace, hard):
    d = deadlines(launched, beat, stale, grace, hard)
    if d is None:
        assert launched is None and beat is None
        return
    assert d.late_at <= d.hung_at
    assert d.late_at - d.since >= timedelta(seconds=stale)
    assert d.hung_at - d.since >= timedelta(seconds=max(stale, hard))
    if not d.started:
        assert d.late_at - d.since >= timedelta(seconds=grace)  # start-up: the grace, from the launch


@given(seconds, seconds, st.integers(0, 3600), limits, st.integers(0, 24 * 3600), limits)
def test_a_later_heartbeat_never_brings_a_deadline_forward(launched, beat, later, stale, grace, hard):
    first = deadlines(launched, launched + beat, stale, grace, hard)
    second = deadlines(launched, launched + beat + later, stale, grace, hard)
    assert second.late_at >= first.late_at and second.hung_at >= first.hung_at


@given(seconds, limits, st.integers(0, 24 * 3600), limits)
def test_a_heartbeat_older_than_the_launch_is_a_previous_attempts(launched, stale, grace, hard):
    assert deadlines(launched + 1, launched, stale, grace, hard) == deadlines(launched + 1, None, stale, grace, hard)
