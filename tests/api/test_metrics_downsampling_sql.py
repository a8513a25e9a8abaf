"""The database's downsampling keeps exactly the points the pure function keeps."""

from __future__ import annotations

import random

import pytest

from training.metrics import downsample_min_max, downsampled_point_ids
from training.models import MetricPoint

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("seed", range(12))
def test_sql_selection_equals_the_pure_function(seed, owner, make_job):
    rng = random.Random(seed)
    job = make_job(owner)
    n = rng.randint(5, 400)
    steps = rng.sample(range(1, 5 * n), n)  # gaps and arbitrary insertion order
    choices = [None, 1.0, 2.0]  # ties and missing values, as well as distinct values
    MetricPoint.objects.bulk_create(
        MetricPoint(job=job, step=step,
                    train_loss=rng.choice(choices) if rng.random() < 0.3 else round(rng.uniform(0, 5), 3))
        for step in steps
    )
    max_points = rng.randint(4, n)
    rows = list(MetricPoint.objects.filter(job=job).order_by("step").values("id", "step", "train_loss"))
    expected = sorted(p["id"] for p in downsample_min_max(rows, max_points))
    assert sorted(downsampled_point_ids(job.pk, max_points)) == expected


def test_the_endpoint_downsamples_in_the_database(owner, owner_api, make_job, django_assert_max_num_queries):
    job = make_job(owner)
    MetricPoint.objects.bulk_create(MetricPoint(job=job, step=s, train_loss=1 / s) for s in range(1, 2001))
    with django_assert_max_num_queries(10):
        response = owner_api.get(f"/api/training/jobs/{job.pk}/metrics?max_points=100")
    assert response.status_code == 200
    assert response.data["total_points"] == 2000 and len(response.data["points"]) <= 100
    assert response.data["points"][0]["step"] == 1 and response.data["points"][-1]["step"] == 2000
