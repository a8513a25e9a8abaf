"""The summaries kept at ingestion give exactly the points the pure function keeps, however the
batches arrive (any order, resent, re-reported with other values), and the endpoint reads only
a bounded number of rows."""

from __future__ import annotations

import random

import pytest

from training.metric_summaries import downsample_by_step_ranges, summaries_for
from training.models import MetricPoint, MetricSummary
from training.services.metric_summaries import (
    downsampled_steps,
    rebuild_summaries,
    update_summaries,
)

pytestmark = pytest.mark.django_db


def store(job, batch: dict[int, float | None]) -> None:
    """What the ingestion does with a batch: upsert one row per step, then the summaries."""
    for step, value in batch.items():
        MetricPoint.objects.update_or_create(job=job, step=step, defaults={"train_loss": value})
    update_summaries(job.pk, batch)


def stored_summaries(job) -> dict:
    return {(r.level, r.bucket): (r.first_step, r.lo_step, r.lo_value, r.hi_step, r.hi_value)
            for r in MetricSummary.objects.filter(job=job)}


@pytest.mark.parametrize("seed", range(10))
def test_incremental_summaries_select_what_the_pure_function_selects(seed, owner, make_job):
    rng = random.Random(seed)
    job = make_job(owner)
    n = rng.randint(5, 300)
    steps = rng.sample(range(0, 6 * n), n)  # gaps, any order
    choices = [None, 1.0, 2.0]  # ties and missing values, as well as distinct values
    values = {s: rng.choice(choices) if rng.random() < 0.3 else round(rng.uniform(0, 5), 3) for s in steps}
    pending = list(steps)
    while pending:
        size = rng.randint(1, 40)
        batch, pending = pending[:size], pending[size:]
        store(job, {s: values[s] for s in batch})
        if rng.random() < 0.3:  # a resumed attempt re-reports some steps with other values
            again = rng.sample(steps[: len(steps) - len(pending)], k=min(5, len(steps) - len(pending)))
            values.update({s: round(rng.uniform(0, 5), 3) for s in again})
            store(job, {s: values[s] for s in again})

    rows = list(MetricPoint.objects.filter(job=job).order_by("step").values("step", "train_loss"))
    assert stored_summaries(job) == {k: (v.first_step, v.lo_step, v.lo_value, v.hi_step, v.hi_value)
                                     for k, v in summaries_for((r["step"], r["train_loss"]) for r in rows).items()}
    for max_points in {4, 5, 10, rng.randint(4, n), n}:
        expected = [p["step"] for p in downsample_by_step_ranges(rows, max_points)]
        if len(rows) > max_points:
            assert downsampled_steps(job.pk, rows[0]["step"], rows[-1]["step"], max_points) == expected
    incremental = stored_summaries(job)
    rebuild_summaries(job.pk)
    assert stored_summaries(job) == incremental


def test_the_endpoint_downsamples_from_the_summaries(owner, owner_api, make_job, django_assert_max_num_queries):
    job = make_job(owner)
    MetricPoint.objects.bulk_create(MetricPoint(job=job, step=s, train_loss=1 / s) for s in range(1, 2001))
    rebuild_summaries(job.pk)
    with django_assert_max_num_queries(10):
        response = owner_api.get(f"/api/training/jobs/{job.pk}/metrics?max_points=100")
    assert response.status_code == 200
    assert response.data["total_points"] == 2000 and len(response.data["points"]) <= 100
    assert response.data["points"][0]["step"] == 1 and response.data["points"][-1]["step"] == 2000
    rows = list(MetricPoint.objects.filter(job=job).order_by("step").values("step", "train_loss"))
    assert [p["step"] for p in response.data["points"]] == [p["step"] for p in downsample_by_step_ranges(rows, 100)]
