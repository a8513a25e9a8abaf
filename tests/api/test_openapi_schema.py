"""The OpenAPI schema validates without warnings, and the docs are served."""

from __future__ import annotations

import pytest
from django.core.management import call_command


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))

    schema = (tmp_path / "schema.yaml").read_text()
    for path in ("/api/training/jobs/{id}/start", "/api/training/jobs/{id}/metrics",
                 "/api/training/templates/{id}/create-job", "/api/training/cost-estimate"):
        assert f"{path}:" in schema


def test_the_training_apis_own_schema_validates_without_warnings(tmp_path):
    # The same check on this app's routes alone: a warning here is ours, not another app's.
    call_command("spectacular", "--validate", "--fail-on-warn", "--urlconf", "api.urls",
                 "--file", str(tmp_path / "schema.yaml"))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/"])
def test_the_docs_and_schema_are_served(client, path):
    assert client.get(path).status_code == 200


def _schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def test_every_operation_documents_the_errors_it_can_answer():
    operations = [(path, method, op) for path, item in _schema()["paths"].items()
                  for method, op in item.items() if method in {"get", "post", "put", "patch", "delete"}]
    assert len(operations) > 20
    for path, method, op in operations:
        codes = set(op["responses"])
        assert {"400", "401", "403", "405"} <= codes, (method, path, codes)
        if "{" in path:
            assert "404" in codes, (method, path, codes)
        if method in {"post", "put", "patch"}:
            assert {"413", "415"} <= codes, (method, path, codes)
        for code, response in op["responses"].items():
            if code.startswith("4"):
                assert "application/json" in response.get("content", {}), (method, path, code)


def test_a_paginated_list_documents_the_404_of_a_page_past_the_end():
    assert "404" in _schema()["paths"]["/api/training/jobs"]["get"]["responses"]


def test_a_jobs_parent_is_declared_nullable():
    # Returned as null for every job that is not a retry; a generated client must accept it.
    parent = _schema()["components"]["schemas"]["JobDetail"]["properties"]["parent"]
    assert parent.get("nullable") is True
