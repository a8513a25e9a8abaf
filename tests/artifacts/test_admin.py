"""The artifact admin: signed links for the viewer, the download audit inline, storage used."""

from __future__ import annotations

import pytest
from django.test import Client

from artifacts import services
from artifacts.models import ModelArtifact

from .conftest import set_review

pytestmark = pytest.mark.django_db


def test_the_change_page_links_downloads_and_shows_the_audit(filesystem, completed_job, staff, owner):
    artifact = set_review(completed_job, "approved")
    artifact.record_download(owner, "adapters", ip="198.51.100.4", user_agent="browser")
    admin = Client()
    admin.force_login(staff)

    listing = admin.get("/admin/artifacts/modelartifact/")
    assert listing.status_code == 200
    assert completed_job.name in listing.content.decode()

    page = admin.get(f"/admin/artifacts/modelartifact/{artifact.pk}/change/").content.decode()
    assert page.count('href="http://testserver/api/artifacts/') == 4
    assert "198.51.100.4" in page

    link = page.split('href="http://testserver', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert Client().get(link).status_code == 200  # signed for the staff member, works without a session


def test_measure_storage_action(filesystem, completed_job, staff):
    artifact = services.register_artifacts(completed_job.pk)
    ModelArtifact.objects.filter(pk=artifact.pk).update(storage_bytes=0)
    admin = Client()
    admin.force_login(staff)
    admin.post("/admin/artifacts/modelartifact/", {"action": "measure_storage", "_selected_action": [artifact.pk]})
    artifact.refresh_from_db()
    assert artifact.storage_bytes == services.storage_used(completed_job.pk) > 0
