"""MetricSummary upkeep: the per-range extremes behind the downsampled metrics API.

`update_summaries(job_id, steps)` runs in the metrics ingestion's transaction (the job row is
locked) after the batch's MetricPoints are written: it recomputes the level-1 ranges holding
those steps from the rows, then each higher range from its two halves, and writes them all in
one upsert. A re-reported step (a resumed attempt re-training it) recomputes from the rows, so a
summary never keeps a value that was replaced. `rebuild_summaries(job_id)` recomputes a job
from scratch (data migration, bulk imports: MetricPoints written around the ingestion must be
followed by it; a job with none at all is rebuilt on first read). `downsampled_steps(job_id,
...)` is the read side.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from ..metric_summaries import (
    SUMMARY_LEVELS,
    RangeSummary,
    merge_summaries,
    summaries_for,
    summarize,
    summary_level,
)
from ..models import MetricPoint, MetricSummary

logger = logging.getLogger(__name__)

FIELDS = ("first_step", "lo_step", "lo_value", "hi_step", "hi_value")


def update_summaries(job_id: Any, steps: Iterable[int]) -> None:
    steps = set(steps)
    if not steps:
        return
    first = SUMMARY_LEVELS[0]
    affected = {level: {s >> level for s in steps} for level in SUMMARY_LEVELS}
    width = 1 << first
    rows = MetricPoint.objects.filter(
        job_id=job_id, step__in=[b * width + i for b in affected[first] for i in range(width)],
    ).values_list("step", "train_loss")
    by_range: dict[int, list] = {}
    for step, value in rows:
        by_range.setdefault(step >> first, []).append((step, value))
    computed: dict[tuple[int, int], RangeSummary] = {(first, b): summarize(items) for b, items in by_range.items()}

    # The halves of each higher range that this batch did not touch: read them once.
    wanted = Q(pk__in=[])
    for level in SUMMARY_LEVELS[1:]:
        siblings = {h for b in affected[level] for h in (2 * b, 2 * b + 1)} - affected[level - 1]
        if siblings:
            wanted |= Q(level=level - 1, bucket__in=sorted(siblings))
    stored = {(r.level, r.bucket): _summary(r) for r in MetricSummary.objects.filter(wanted, job_id=job_id)}
    for level in SUMMARY_LEVELS[1:]:
        for b in affected[level]:
            halves = [computed.get((level - 1, h)) or stored.get((level - 1, h)) for h in (2 * b, 2 * b + 1)]
            computed[(level, b)] = merge_summaries(h for h in halves if h is not None)
    _save(job_id, computed)


def rebuild_summaries(job_id: Any) -> int:
    """Recompute every summary of a job from its MetricPoints; returns how many were written."""
    MetricSummary.objects.filter(job_id=job_id).delete()
    computed = summaries_for(MetricPoint.objects.filter(job_id=job_id).values_list("step", "train_loss").iterator())
    _save(job_id, computed)
    return len(computed)


def downsampled_steps(job_id: Any, first_step: int, last_step: int, max_points: int) -> list[int]:
    """The steps downsample_by_step_ranges keeps, read from the summaries: first and last, and
    each range's extremes at the level that fits (max_points - 2) // 2 ranges."""
    level = summary_level(first_step, last_step, (max_points - 2) // 2)
    rows = list(MetricSummary.objects.filter(job_id=job_id, level=level).only(*FIELDS))
    if not rows:
        # Points written around the ingestion (a bulk import, a restore): build them now, once.
        logger.warning("job %s has metric points but no summaries; rebuilding them", job_id)
        rebuild_summaries(job_id)
        rows = list(MetricSummary.objects.filter(job_id=job_id, level=level).only(*FIELDS))
    kept = {first_step, last_step}
    for row in rows:
        kept |= _summary(row).kept_steps()
    return sorted(kept)


def _summary(row: MetricSummary) -> RangeSummary:
    return RangeSummary(row.first_step, row.lo_step, row.lo_value, row.hi_step, row.hi_value)


def _save(job_id: Any, computed: dict[tuple[int, int], RangeSummary]) -> None:
    MetricSummary.objects.bulk_create(
        [MetricSummary(job_id=job_id, level=level, bucket=b, **{f: getattr(s, f) for f in FIELDS})
         for (level, b), s in computed.items()],
        update_conflicts=True, unique_fields=["job", "level", "bucket"], update_fields=list(FIELDS),
        batch_size=2000,
    )
