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
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection
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
# Rows per INSERT: 8 parameters each, well under SQLite's 32,766-variable limit.
UPSERT_ROWS = 2000


def update_summaries(job_id: Any, points: Mapping[int, Mapping[str, Any]] | Iterable[int], *,
                     existing: set[int] | None = None) -> None:
    """Bring the summaries up to date with a stored batch: `points` maps each step to its values
    (or is just the steps); `existing` are the steps that were stored before it (None: unknown).

    A batch of new steps only (the common case) is merged into the stored summaries in one
    upsert: the summary of a union is the merge of the parts' summaries. A batch that replaced
    stored values is recomputed from the rows, so a summary never keeps a value that was
    replaced."""
    if existing is not None and not existing and isinstance(points, Mapping):
        _merge_new_points(job_id, [(step, values.get("train_loss")) for step, values in points.items()])
        return
    steps = set(points)
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


def _merge_new_points(job_id: Any, points: list[tuple[int, float | None]]) -> None:
    """Merge the summaries of new points into the stored ones, every level, in one statement.

    The SET clauses are `merge_summaries` in SQL: the earliest first step; the lowest (highest)
    value, the earliest step on ties; a range without values takes the other side's."""
    if not points:
        return
    batch = summaries_for(points)
    table = connection.ops.quote_name(MetricSummary._meta.db_table)
    job_value = MetricSummary._meta.get_field("job").get_db_prep_value(job_id, connection)

    def better(side: str, op: str) -> str:
        new_v, new_s, old_v, old_s = f"excluded.{side}_value", f"excluded.{side}_step", f"{table}.{side}_value", f"{table}.{side}_step"
        return (f"({old_s} IS NULL OR ({new_s} IS NOT NULL AND ({new_v} {op} {old_v} "
                f"OR ({new_v} = {old_v} AND {new_s} < {old_s}))))")

    sets = [f"first_step = CASE WHEN excluded.first_step < {table}.first_step THEN excluded.first_step "
            f"ELSE {table}.first_step END"]
    for side, op in (("lo", "<"), ("hi", ">")):
        condition = better(side, op)
        for column in (f"{side}_step", f"{side}_value"):
            sets.append(f"{column} = CASE WHEN {condition} THEN excluded.{column} ELSE {table}.{column} END")
    rows = list(batch.items())
    conflict = f"ON CONFLICT (job_id, level, bucket) DO UPDATE SET {', '.join(sets)}"
    columns = f"job_id, level, bucket, {', '.join(FIELDS)}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One array per column (a 1,000-point batch touches ~1,000 ranges): 8 parameters.
            types = [MetricSummary._meta.get_field(n).db_type(connection) for n in ("level", "bucket", *FIELDS)]
            arrays = ", ".join(f"%s::{t}[]" for t in types)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT %s, u.* FROM UNNEST({arrays}) AS u {conflict}",
                [job_value, [level for (level, _b), _s in rows], [b for (_level, b), _s in rows],
                 *([getattr(summary, f) for _key, summary in rows] for f in FIELDS)],
            )
            return
        for start in range(0, len(rows), UPSERT_ROWS):
            chunk = rows[start:start + UPSERT_ROWS]
            params: list[Any] = []
            for (level, bucket), summary in chunk:
                params += [job_value, level, bucket, *(getattr(summary, f) for f in FIELDS)]
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES "
                           + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk)) + f" {conflict}", params)


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
