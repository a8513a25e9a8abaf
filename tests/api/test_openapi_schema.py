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
    call_command("spectacular", "--validate", "--fail-on-warn", "--urlconf", "training.api.urls",
                 "--file", str(tmp_path / "schema.yaml"))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/"])
def test_the_docs_and_schema_are_served(client, path):
    assert client.get(path).status_code == 200
