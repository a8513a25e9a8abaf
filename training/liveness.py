"""When a silent worker is late, and when it is hung: the heartbeat deadlines, as a pure function.

A worker's events (heartbeats, metrics, anything) are its signs of life. Two deadlines follow from
the last one, or from the launch before there is one:

- late: a worker the executor still reports running is merely *late* past this; the poll says so
  (one warning event per silent spell) and leaves it alone. Before the first sign of life this is
  the launch plus the start-up grace: a process importing torch on a loaded machine, or a pod
  pulling its image and loading a 70B model, sends nothing for minutes and is not hung.
- hung: past this the worker is stopped and the attempt counts as interrupted, even though the
  executor reports it running. Counted from the last sign of life, or from the end of the
  start-up grace when there was none.

Neither deadline matters for a worker the executor reports gone or exited: that is decided from
the executor's answer at once (services.polling.interruption_reason), so a killed process is
recovered on the next poll, not after a heartbeat timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SilenceDeadlines:
    late_at: datetime
    hung_at: datetime
    since: datetime  # the last sign of life, or the launch
    started: bool  # whether the attempt has sent anything yet


def silence_deadlines(*, launched_at: datetime | None, last_heartbeat_at: datetime | None,
                      stale_seconds: float, startup_grace_seconds: float,
                      hard_limit_seconds: float) -> SilenceDeadlines | None:
    """The current attempt's deadlines, or None when it was never launched. Pure; Hypothesis-tested
    (late never after hung, neither before the stale limit, and a later heartbeat never brings
    either deadline forward)."""
    stale = timedelta(seconds=max(0.0, stale_seconds))
    hard = max(stale, timedelta(seconds=max(0.0, hard_limit_seconds)))
    if last_heartbeat_at is not None and (launched_at is None or last_heartbeat_at >= launched_at):
        return SilenceDeadlines(late_at=last_heartbeat_at + stale, hung_at=last_heartbeat_at + hard,
                                since=last_heartbeat_at, started=True)
    if launched_at is None:
        return None
    # No sign of life from this attempt yet (a heartbeat older than the launch is a previous
    # attempt's): start-up has its own grace, measured from the launch.
    grace = max(stale, timedelta(seconds=max(0.0, startup_grace_seconds)))
    return SilenceDeadlines(late_at=launched_at + grace, hung_at=launched_at + grace + hard,
                            since=launched_at, started=False)
