"""NUL bytes (and lone surrogates), which PostgreSQL's text and jsonb cannot hold: a path or query
value or a JSON body string carrying one is a 400 naming where it is, never a 500 (issue 18, item 4)."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres_required")]


def assert_refused_naming(response, name: str) -> None:
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert name in response.json()["errors"], response.json()


@pytest.mark.parametrize(("path", "name"), [
    ("/api/training/base-models/a%00b", "slug"),
    ("/api/training/presets/a%00b", "slug"),
    ("/api/training/templates/a%00b", "pk"),
])
def test_a_nul_in_a_path_value_is_a_400_naming_the_parameter(owner_api, path, name):
    assert_refused_naming(owner_api.get(path), name)


@pytest.mark.parametrize(("query", "name"), [
    ("preset=%00", "preset"),
    ("base_model=a%00", "base_model"),
    ("overrides=%7B%22a%22%3A%22%00%22%7D", "overrides"),
])
def test_a_nul_in_a_query_value_is_a_400_naming_the_parameter(owner, owner_api, make_file, query, name):
    dataset = make_file(owner)
    response = owner_api.get(f"/api/training/cost-estimate?training_file={dataset.pk}&{query}")
    assert_refused_naming(response, name)


@pytest.mark.parametrize("query", ["search=%00", "status=%00", "tag=a%00", "created_before=%00"])
def test_a_nul_in_a_job_filter_is_a_400(owner_api, query):
    assert owner_api.get(f"/api/training/jobs?{query}").status_code == 400


def test_a_nul_in_the_admin_search_is_a_400_not_a_500(client, staff):
    client.force_login(staff)
    assert client.get("/admin/training/trainingjob/?q=a%00b").status_code == 400


def assert_field_refused(response, name: str) -> None:
    """A body error in the REST API's shape: {field: [messages]}."""
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert name in response.json(), response.json()


def post_json(api, path: str, payload) -> object:
    # The raw body: json.dumps writes "\u0000" for a NUL, as any client would.
    return api.post(path, data=json.dumps(payload), content_type="application/json")


@pytest.mark.parametrize(("field", "value", "name"), [
    ("name", "bot\u0000", "name"),
    ("description", "a\u0000b", "description"),
    ("notes", "\u0000", "notes"),
    ("overrides", {"lr_scheduler": "cosine\u0000"}, "overrides.lr_scheduler"),
    ("overrides", {"x\u0000": 1}, "overrides"),
    ("tags", ["ok", "b\u0000d"], "tags[1]"),
    ("name", "bot\ud800", "name"),
])
def test_a_nul_in_a_job_body_is_a_400_naming_the_field(owner, owner_api, make_file, field, value, name):
    payload = {"training_file": str(make_file(owner).pk), "preset": "balanced", "name": "bot", field: value}
    assert_field_refused(post_json(owner_api, "/api/training/jobs", payload), name)


@pytest.mark.parametrize(("payload", "name"), [
    ({"name": "quick\u0000", "base_model": "smollm2-135m-instruct"}, "name"),
    ({"name": "quick", "description": "\u0000", "base_model": "smollm2-135m-instruct"}, "description"),
    ({"name": "quick", "base_model": "smollm2-135m-instruct", "configuration": {"num_epochs": 1, "note": "\u0000"}},
     "configuration.note"),
])
def test_a_nul_in_a_template_body_is_a_400_naming_the_field(owner_api, payload, name):
    assert_field_refused(post_json(owner_api, "/api/training/templates", payload), name)
