"""Uploading a benchmark set in the admin: checked as the API checks it, by line and field; a
second upload of the same version is refused on the form, never a server error."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.validation.test_api import QUESTIONS
from validation.models import BenchmarkSet

pytestmark = pytest.mark.django_db
ADD = "/admin/validation/benchmarkset/add/"


def post(client: Client, data: bytes):
    return client.post(ADD, {"kind": "knowledge_retention", "name": "team", "version": "1",
                             "file": SimpleUploadedFile("questions.jsonl", data)})


def test_an_admin_upload_is_checked_stored_and_a_repeat_refused(staff):
    client = Client()
    client.force_login(staff)
    bad = post(client, QUESTIONS + b'\n{"id": "q9"}')
    assert bad.status_code == 200
    assert "questions.jsonl, line 4, field &#x27;topic&#x27;: must name the topic" in bad.content.decode()
    assert not BenchmarkSet.objects.filter(name="team").exists()
    assert post(client, QUESTIONS).status_code == 302
    row = BenchmarkSet.objects.get(name="team")
    assert (row.owner, row.item_count) == (staff, 3)
    again = post(client, QUESTIONS)
    assert again.status_code == 200 and "you already have team version 1" in again.content.decode()
    assert BenchmarkSet.objects.filter(name="team").count() == 1
