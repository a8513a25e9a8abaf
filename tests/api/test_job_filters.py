"""Job list filters, search and ordering."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from training.lifecycle import Status
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(owner, teammate, make_job):
    made = {
        "pending": make_job(owner, name="alpha support", tags=["support"]),
        "failed": make_job(owner, name="beta", status=Status.FAILED, preset="aggressive", notes="ran out of memory"),
        "cancelled": make_job(owner, name="gamma", status=Status.CANCELLED, tags=["support", "v2"]),
        "teammates": make_job(teammate, name="delta", status=Status.TRAINING, preset="conservative"),
    }
    old = timezone.now() - timedelta(days=10)
    TrainingJob.objects.filter(pk=made["cancelled"].pk).update(created_at=old)
    return made


def names(response) -> list[str]:
    assert response.status_code == 200, response.data
    return sorted(job["name"] for job in response.data["results"])


def test_it_filters_by_several_statuses(client_for, teammate, jobs):
    api = client_for(teammate)
    assert names(api.get("/api/training/jobs?status=failed&status=cancelled")) == ["beta", "gamma"]
    assert names(api.get("/api/training/jobs?status=failed,training")) == ["beta", "delta"]


def test_it_rejects_an_unknown_status(owner_api, jobs):
    assert owner_api.get("/api/training/jobs?status=exploded").status_code == 400


def test_it_filters_by_preset_slug(client_for, teammate, jobs):
    assert names(client_for(teammate).get("/api/training/jobs?preset=aggressive")) == ["beta"]


def test_it_filters_by_creation_date_range(owner_api, jobs):
    today = timezone.now().date()
    assert names(owner_api.get(f"/api/training/jobs?created_after={today}")) == ["alpha support", "beta"]
    week_ago = today - timedelta(days=7)
    assert names(owner_api.get(f"/api/training/jobs?created_before={week_ago}")) == ["gamma"]


def test_it_filters_by_creator_username_or_id(client_for, teammate, jobs):
    api = client_for(teammate)
    assert names(api.get("/api/training/jobs?created_by=tomas")) == ["delta"]
    assert names(api.get(f"/api/training/jobs?created_by={teammate.pk}")) == ["delta"]


def test_it_filters_by_tag(owner_api, jobs):
    assert names(owner_api.get("/api/training/jobs?tag=support")) == ["alpha support", "gamma"]
    assert names(owner_api.get("/api/training/jobs?tag=v2")) == ["gamma"]


def test_it_searches_names_and_notes(owner_api, jobs):
    assert names(owner_api.get("/api/training/jobs?search=support")) == ["alpha support"]
    assert names(owner_api.get("/api/training/jobs?search=memory")) == ["beta"]


def test_it_orders_by_name(owner_api, jobs):
    response = owner_api.get("/api/training/jobs?ordering=-name")
    assert [job["name"] for job in response.data["results"]] == ["gamma", "beta", "alpha support"]


def test_filters_never_widen_what_a_user_sees(owner_api, jobs):
    assert names(owner_api.get("/api/training/jobs?created_by=tomas")) == []


@pytest.mark.parametrize("param", ["created_after", "created_before"])
@pytest.mark.parametrize("value", ["", "2024-13-45", "yesterday"])
def test_a_malformed_or_empty_date_is_a_400_naming_the_parameter(owner_api, jobs, param, value):
    # An empty value used to mean "no filter": a script whose date variable was empty got
    # every job back. The schema says the parameter is a date; leave it out to not filter.
    response = owner_api.get("/api/training/jobs", {param: value})
    assert response.status_code == 400
    assert param in response.json()
