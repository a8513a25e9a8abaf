"""Under /api/ every error is JSON, never an HTML page: unknown routes, wrong methods, bodies over
the limit, surprises (issue 18, item 8), on the DRF endpoints, the webhook and the worker API."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from api import webhook

pytestmark = pytest.mark.django_db

JOB = uuid.uuid4()


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    return body


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/api/nothing-here", 404),
    ("get", "/api/training/no-such-resource", 404),
    ("get", f"/api/training/jobs/{JOB}", 401),
    ("get", "/api/worker/jobs/not-a-uuid/storage/sign", 404),
    ("get", "/api/worker/nothing", 404),
    ("get", "/api/training/webhook", 405),
    ("put", "/api/training/webhook", 405),
    ("get", f"/api/worker/jobs/{JOB}/storage/sign", 405),
    ("post", f"/api/worker/jobs/{JOB}/storage/checkpoints", 405),
    ("delete", "/api/training/cost-estimate", 401),
    ("get", "/api/worker/blob/not-a-token", 403),
])
def test_every_error_under_api_is_json(client, method, path, status):
    assert_json_error(getattr(client, method)(path), status)


def test_a_wrong_method_keeps_its_allow_header(client):
    response = client.get("/api/training/webhook")
    assert_json_error(response, 405)
    assert response["Allow"] == "POST"


def test_a_disallowed_host_under_api_is_a_json_400(client):
    assert_json_error(client.get("/api/training/jobs", HTTP_HOST="evil.example"), 400)


def test_pages_outside_api_keep_their_html_errors(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_webhook_body_over_the_limit_is_a_json_413(client, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 4096
    body = assert_json_error(client.post("/api/training/webhook", data=b"{" + b" " * 5000 + b"}",
                                         content_type="application/json"), 413)
    assert "4096" in body["detail"]


def test_a_webhook_body_over_the_default_ten_mib_is_a_json_413_not_an_html_400(client):
    response = client.post("/api/training/webhook", data=b"[" + b"0," * (5 * 1024 * 1024) + b"0]",
                           content_type="application/json")
    assert_json_error(response, 413)


def test_a_rest_api_body_over_the_request_limit_is_a_json_413(owner_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = owner_api.post("/api/training/templates", data='{"name": "' + "x" * 2000 + '"}',
                              content_type="application/json")
    assert_json_error(response, 413)


def test_a_surprise_in_the_webhook_is_a_json_500(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(webhook, "ingest_event", explode)
    response = Client(raise_request_exception=False).post("/api/training/webhook", data=b"{}",
                                                          content_type="application/json")
    body = assert_json_error(response, 500)
    assert "secret internals" not in response.content.decode()
    assert body["detail"]


def test_debug_pages_are_json_too_under_api(settings, monkeypatch):
    # With DEBUG on, Django answers an unknown route and a crash with its technical HTML pages.
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    assert_json_error(client.get("/api/nothing-here"), 404)

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(webhook, "ingest_event", explode)
    response = client.post("/api/training/webhook", data=b"{}", content_type="application/json")
    assert_json_error(response, 500)
    assert "secret internals" not in response.content.decode()
