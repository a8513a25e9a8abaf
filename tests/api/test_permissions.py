"""Who may do what, on every endpoint: the owner, a teammate in the operators group and
staff may; an outsider gets 404 for someone else's objects (their existence does not leak)
and sees only their own rows in lists; anonymous callers get 401."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from training.lifecycle import Status
from training.models import BaseModel, ConfigurationTemplate, MetricPoint, TrainingFile, TrainingJob

pytestmark = pytest.mark.django_db

ROLES = ["owner", "teammate", "staff", "outsider", "anonymous"]
MAY = {"owner", "teammate", "staff"}


@pytest.fixture
def world(owner, make_file, make_job):
    """The owner's things, which the requests below aim at."""
    dataset = make_file(owner)
    failed = make_job(owner, training_file=dataset, status=Status.FAILED, name="failed one")
    running = make_job(owner, training_file=dataset, status=Status.TRAINING, name="running one")
    MetricPoint.objects.create(job=running, step=1, train_loss=2.0)
    return {
        "dataset": dataset,
        "spare_dataset": make_file(owner),
        "pending": make_job(owner, training_file=dataset, name="pending one"),
        "failed": failed,
        "running": running,
        "template": ConfigurationTemplate.objects.create(
            name="owner's", base_model=BaseModel.objects.get(is_embedded=True), created_by=owner,
            configuration={"lora_r": 8},
        ),
    }


# (method, path, body, status when allowed) — built from the world.
OBJECT_ENDPOINTS = {
    "file detail": lambda w: ("get", f"files/{w['dataset'].pk}", None, 200),
    "file delete": lambda w: ("delete", f"files/{w['spare_dataset'].pk}", None, 204),
    "job detail": lambda w: ("get", f"jobs/{w['pending'].pk}", None, 200),
    "job delete": lambda w: ("delete", f"jobs/{w['pending'].pk}", None, 204),
    "job start": lambda w: ("post", f"jobs/{w['pending'].pk}/start", None, 200),
    "job cancel": lambda w: ("post", f"jobs/{w['running'].pk}/cancel", None, 200),
    "job retry": lambda w: ("post", f"jobs/{w['failed'].pk}/retry", {}, 201),
    "job metrics": lambda w: ("get", f"jobs/{w['running'].pk}/metrics", None, 200),
    "job events": lambda w: ("get", f"jobs/{w['running'].pk}/events", None, 200),
    "job error-report": lambda w: ("get", f"jobs/{w['failed'].pk}/error-report", None, 200),
    "job save-as-template": lambda w: ("post", f"jobs/{w['failed'].pk}/save-as-template", {"name": "saved"}, 201),
    "template detail": lambda w: ("get", f"templates/{w['template'].pk}", None, 200),
    "template update": lambda w: ("patch", f"templates/{w['template'].pk}", {"description": "x"}, 200),
    "template replace": lambda w: ("put", f"templates/{w['template'].pk}",
                                   {"name": "renamed", "base_model": "smollm2-135m-instruct"}, 200),
    "template delete": lambda w: ("delete", f"templates/{w['template'].pk}", None, 204),
    "template create-job": lambda w: ("post", f"templates/{w['template'].pk}/create-job",
                                      {"training_file": str(w["dataset"].pk)}, 201),
}


def call(api, method, path, body):
    return getattr(api, method)(f"/api/training/{path}", body, format="json" if body is not None else None)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", OBJECT_ENDPOINTS)
def test_object_endpoints_follow_ownership(endpoint, role, world, users, client_for):
    method, path, body, allowed_status = OBJECT_ENDPOINTS[endpoint](world)
    jobs_before = TrainingJob.objects.count()
    statuses_before = dict(TrainingJob.objects.values_list("pk", "status"))

    response = call(client_for(users[role]), method, path, body)

    if role in MAY:
        assert response.status_code == allowed_status, response.data
        return
    assert response.status_code == (404 if role == "outsider" else 401)
    # Refused means nothing happened.
    assert TrainingJob.objects.count() == jobs_before
    assert dict(TrainingJob.objects.values_list("pk", "status")) == statuses_before
    assert TrainingFile.objects.filter(pk=world["spare_dataset"].pk).exists()
    assert ConfigurationTemplate.objects.filter(pk=world["template"].pk, description="").exists()


LISTS = ["files", "jobs", "templates"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("collection", LISTS)
def test_lists_show_only_what_the_caller_may_see(collection, role, world, users, client_for, make_file):
    if users[role] is not None and collection == "files":
        make_file(users[role])
    response = client_for(users[role]).get(f"/api/training/{collection}")

    if role == "anonymous":
        assert response.status_code == 401
        return
    assert response.status_code == 200
    owners = {row["created_by"] for row in response.data["results"]}
    if role in ("teammate", "staff"):
        assert "olivia" in owners
    else:
        assert owners <= {users[role].username}


@pytest.mark.parametrize("role", ROLES)
def test_anyone_signed_in_may_create_their_own_things(role, users, client_for, make_file):
    user = users[role]
    api = client_for(user)
    own_file = make_file(user) if user else None
    upload = SimpleUploadedFile("chat.jsonl", f'{{"messages": [{{"role": "user", "content": "{role}"}}]}}\n'.encode())

    responses = [
        api.post("/api/training/files", {"file": upload}, format="multipart"),
        api.post("/api/training/jobs", {"training_file": str(own_file.pk) if own_file else "x"}, format="json"),
        api.post("/api/training/templates", {"name": "mine", "base_model": "smollm2-135m-instruct"}, format="json"),
    ]

    # An upload answers 202 (its validation is a background task).
    expected = [401] * 3 if user is None else [202, 201, 201]
    assert [r.status_code for r in responses] == expected


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    "path", ["presets", "presets/balanced", "base-models", "base-models/smollm2-135m-instruct"]
)
def test_the_catalogue_is_open_to_anyone_signed_in(path, role, users, client_for):
    response = client_for(users[role]).get(f"/api/training/{path}")

    assert response.status_code == (401 if role == "anonymous" else 200)


@pytest.mark.parametrize("role", ROLES)
def test_cost_estimates_only_for_datasets_the_caller_may_see(role, world, users, client_for):
    response = client_for(users[role]).get(
        "/api/training/cost-estimate", {"training_file": str(world["dataset"].pk)}
    )

    expected = {"anonymous": 401, "outsider": 400}.get(role, 200)
    assert response.status_code == expected
    if role == "outsider":
        assert "does not exist" in str(response.data["training_file"])


def test_an_outsider_cannot_tell_someone_elses_job_from_a_missing_one(outsider, client_for, world):
    api = client_for(outsider)
    someone_elses = api.get(f"/api/training/jobs/{world['pending'].pk}")
    missing = api.get("/api/training/jobs/00000000-0000-0000-0000-000000000000")

    assert someone_elses.status_code == missing.status_code == 404
    assert someone_elses.data == missing.data


def test_session_authentication_works_too(owner, world):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_login(owner)
    assert api.get(f"/api/training/jobs/{world['pending'].pk}").status_code == 200
