"""The exception handler: service errors become 400/409, surprises a 500 without a trace."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ValidationError

from core.api_errors import exception_handler
from training.lifecycle import refusal
from training.services import jobs as job_services

pytestmark = pytest.mark.django_db


def test_an_unexpected_error_is_a_generic_500_with_an_id_in_the_log(owner, owner_api, make_job, monkeypatch, caplog):
    job = make_job(owner)

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals at /srv/app/db.py line 42")

    monkeypatch.setattr(job_services, "start_job", explode)
    with caplog.at_level(logging.ERROR, logger="core.api_errors"):
        response = owner_api.post(f"/api/training/jobs/{job.pk}/start")

    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"detail", "error_id"}
    assert "secret internals" not in response.content.decode() and "Traceback" not in response.content.decode()
    assert body["error_id"] in caplog.text and "secret internals" in caplog.text


def test_a_django_validation_error_becomes_a_field_keyed_400():
    response = exception_handler(ValidationError({"lora_r": "must be positive"}), {})

    assert response.status_code == 400
    assert response.data == {"lora_r": ["must be positive"]}


def test_a_django_validation_error_without_fields_is_a_non_field_error():
    response = exception_handler(ValidationError("nope"), {})

    assert response.data == {"non_field_errors": ["nope"]}


def test_an_illegal_transition_is_a_409_with_its_sentence():
    response = exception_handler(refusal("start", "x", "training"), {})

    assert response.status_code == 409
    assert response.data == {"detail": "Job 'x' is training: only a pending job can be started."}


def test_anonymous_callers_get_401_not_403(client):
    response = client.get("/api/training/jobs")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
