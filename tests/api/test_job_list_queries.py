"""The job list costs the same few queries however many jobs it shows."""

from __future__ import annotations

import pytest

from training.models import JobEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ["owner", "teammate"])
def test_listing_thirty_jobs_takes_a_handful_of_queries(role, users, owner, client_for, make_job, make_file,
                                                        django_assert_max_num_queries):
    dataset = make_file(owner)
    for i in range(30):
        job = make_job(owner, training_file=dataset, tags=["a", f"t{i % 3}"], name=f"job {i}")
        JobEvent.objects.create(job=job, event_type="heartbeat")
    api = client_for(users[role])

    # token + user, group membership, count, the page (file, model, preset, creator joined), tags
    with django_assert_max_num_queries(5):
        response = api.get("/api/training/jobs?ordering=name")

    assert response.status_code == 200
    assert response.data["count"] == 30
    assert all(len(job["tags"]) == 2 for job in response.data["results"])


def test_the_detail_does_not_query_per_retry(owner, owner_api, make_job, django_assert_max_num_queries):
    job = make_job(owner)
    for _ in range(10):
        make_job(owner, parent=job)

    with django_assert_max_num_queries(7):
        response = owner_api.get(f"/api/training/jobs/{job.pk}")

    assert len(response.data["retries"]) == 10
