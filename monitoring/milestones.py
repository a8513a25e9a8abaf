"""Milestones: which of 25/50/75/100 % of the planned steps a run has crossed, once each."""

from __future__ import annotations

MILESTONES = (25, 50, 75, 100)


def milestone_step(percent: int, total_steps: int) -> int:
    """The first step at which `percent` of total_steps is done (integer maths, no rounding drift)."""
    return -(-percent * total_steps // 100)


def milestones_reached(previously_recorded: set[int], step: int, total_steps: int) -> list[int]:
    """Milestones (25/50/75/100 %) that `step` has crossed and that are not yet recorded.

    The caller records the result; since "crossed" only depends on the highest step, a job's
    milestones come out exactly once each, whatever order or duplication its reports have.
    """
    if total_steps <= 0:
        return []
    return [m for m in MILESTONES if m not in previously_recorded and step * 100 >= m * total_steps]
