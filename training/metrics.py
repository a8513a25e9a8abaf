"""Pure functions over training-metric histories (no ORM access)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MIN_MAX_POINTS = 4


def _value(point: Mapping[str, Any], key: str) -> float | None:
    value = point.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def downsample_min_max(
    points: Sequence[Mapping[str, Any]], max_points: int, *, key: str = "train_loss"
) -> list[Mapping[str, Any]]:
    """At most `max_points` of `points`, in step order, keeping the shape of the `key` curve.

    The first and last points are always kept. The points between them are cut into
    (max_points - 2) // 2 buckets of near-equal size and each bucket keeps the point with its
    smallest and the point with its largest `key` value (one point when they coincide, or
    when no point in the bucket has a value). Every point of the output is one of the input
    mappings, unchanged; the global minimum and maximum of `key` always survive, because each
    lies in some bucket (or is the first or last point) and is that bucket's extreme.

    Points are ordered by their "step"; `max_points` must be at least 4 (first, last, and one
    bucket's min and max). Missing or NaN values are ignored when choosing extremes.
    """
    if max_points < MIN_MAX_POINTS:
        raise ValueError(f"max_points must be at least {MIN_MAX_POINTS}, got {max_points}")
    ordered = sorted(points, key=lambda p: p["step"])
    if len(ordered) <= max_points:
        return ordered
    first, interior, last = ordered[0], ordered[1:-1], ordered[-1]
    buckets = (max_points - 2) // 2
    kept: list[Mapping[str, Any]] = [first]
    for b in range(buckets):
        bucket = interior[b * len(interior) // buckets:(b + 1) * len(interior) // buckets]
        if not bucket:
            continue
        kept.extend(_extremes(bucket, key))
    kept.append(last)
    return kept


def _extremes(bucket: Sequence[Mapping[str, Any]], key: str) -> list[Mapping[str, Any]]:
    """The bucket's min and max points by `key`, in step order (positions within the bucket)."""
    valued = [(i, v) for i, p in enumerate(bucket) if (v := _value(p, key)) is not None]
    if not valued:
        return [bucket[0]]
    lo = min(valued, key=lambda iv: iv[1])[0]
    hi = max(valued, key=lambda iv: iv[1])[0]
    return [bucket[i] for i in sorted({lo, hi})]


# The same selection as downsample_min_max, computed by the database so that a job with 100,000
# points does not ship them all to Python. Interior row i (0-based) lies in bucket
# floor(((i + 1) * B - 1) / n), the largest b whose start floor(b * n / B) is <= i, which is
# exactly the slicing above; within a bucket, ties go to the earliest step, like min() and max().
_DOWNSAMPLE_SQL = """
WITH ordered AS (
    SELECT id, step, train_loss,
           ROW_NUMBER() OVER (ORDER BY step) AS rn, COUNT(*) OVER () AS n
    FROM training_metricpoint WHERE job_id = %(job)s
), interior AS (
    SELECT id, train_loss, rn, ((rn - 1) * %(buckets)s - 1) / (n - 2) AS bucket
    FROM ordered WHERE rn > 1 AND rn < n
), ranked AS (
    SELECT id,
           ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY (train_loss IS NULL), train_loss ASC, rn) AS lo,
           ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY (train_loss IS NULL), train_loss DESC, rn) AS hi
    FROM interior
)
SELECT id FROM ranked WHERE lo = 1 OR hi = 1
UNION
SELECT id FROM ordered WHERE rn = 1 OR rn = n
"""


def downsampled_point_ids(job_id: Any, max_points: int) -> list[int]:
    """Ids of the MetricPoints downsample_min_max would keep for a job with more than
    `max_points` points (the caller checks the count first)."""
    from django.db import connection

    if max_points < MIN_MAX_POINTS:
        raise ValueError(f"max_points must be at least {MIN_MAX_POINTS}, got {max_points}")
    job = job_id.hex if connection.vendor == "sqlite" and hasattr(job_id, "hex") else job_id
    with connection.cursor() as cursor:
        cursor.execute(_DOWNSAMPLE_SQL, {"job": job, "buckets": (max_points - 2) // 2})
        return [row[0] for row in cursor.fetchall()]
