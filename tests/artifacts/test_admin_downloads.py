"""The job page's download buttons and `manage.py download`: each file as a file, for who may see it."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client

from artifacts.models import DownloadAudit
from training.lifecycle import Status

from .conftest import set_review

pytestmark = pytest.mark.django_db

BUTTONS = [
    # (kind, query, button id, file name ends with, content type)
    ("adapters", "", "download-adapters", "-adapter.zip", "application/zip"),
    ("deployment-package", "", "download-deployment-package", "-deployment-package.zip", "application/zip"),
    ("metrics", "?format=csv", "download-metrics-csv", "-metrics.csv", "text/csv; charset=utf-8"),
    ("metrics", "?format=json", "download-metrics-json", "-metrics.json", "application/json"),
]


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def button_url(job, kind: str, query: str = "") -> str:
    return f"/admin/training/trainingjob/{job.pk}/download/{kind}/{query}"


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def check_file(data: bytes, suffix: str) -> None:
    if suffix.endswith(".zip"):
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert any(name.endswith("adapter_model.safetensors") for name in names)
    elif suffix.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        assert [row["step"] for row in rows] == ["10", "20", "30"]
    else:
        assert [point["step"] for point in json.loads(data)["points"]] == [10, 20, 30]


def test_the_page_of_a_completed_job_has_a_button_for_each_file(filesystem, completed_job, staff):
    page = admin_client(staff).get(f"/admin/training/trainingjob/{completed_job.pk}/change/").content.decode()
    for kind, query, button, _suffix, _type in BUTTONS:
        assert f'id="{button}"' in page
        assert f'href="{button_url(completed_job, kind, query)}"' in page


def test_a_running_job_has_no_buttons(filesystem, make_job, owner, staff):
    job = make_job(owner, status=Status.TRAINING)
    page = admin_client(staff).get(f"/admin/training/trainingjob/{job.pk}/change/").content.decode()
    assert 'id="dashboard-link"' in page
    assert "download-" not in page


@pytest.mark.parametrize(("kind", "query", "button", "suffix", "content_type"), BUTTONS,
                         ids=[b[2] for b in BUTTONS])
def test_a_button_serves_its_file_as_an_attachment_through_a_signed_link(
        filesystem, completed_job, staff, kind, query, button, suffix, content_type):
    set_review(completed_job, "approved")  # the package straight away, as every other file
    response = admin_client(staff).get(button_url(completed_job, kind, query), follow=True)
    assert response.status_code == 200
    (link, status), = response.redirect_chain
    assert status == 302 and link.startswith("http://testserver/api/artifacts/")
    assert response["Content-Type"] == content_type
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert f'filename="support-bot-{completed_job.name.split()[-1]}{suffix}"' in disposition
    check_file(body(response), suffix)
    audit = DownloadAudit.objects.get(job=completed_job)
    assert (audit.kind, audit.user) == (kind, staff)


def test_the_dashboard_download_button_gets_the_adapter_zip(filesystem, completed_job, staff):
    client = admin_client(staff)
    data = client.get(f"/admin/training/trainingjob/{completed_job.pk}/dashboard/data/").json()
    assert data["download_url"] == button_url(completed_job, "adapters")
    response = client.get(data["download_url"], follow=True)
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment;")


def test_the_link_behind_a_button_expires(filesystem, completed_job, staff, settings):
    settings.ARTIFACT_URL_TTL_SECONDS = 3600
    link = admin_client(staff).get(button_url(completed_job, "adapters"))["Location"]
    with time_machine.travel(time.time() + 3601):
        response = Client().get(link)
    assert response.status_code == 403
    assert "expired" in response.json()["detail"]


def test_staff_who_may_not_view_jobs_get_404(filesystem, completed_job, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw-clerk-123", is_staff=True)
    response = admin_client(clerk).get(button_url(completed_job, "adapters"))
    assert response.status_code == 404
    assert not DownloadAudit.objects.exists()


def test_users_outside_the_admin_are_sent_to_log_in(filesystem, completed_job, owner):
    response = admin_client(owner).get(button_url(completed_job, "adapters"))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_an_unknown_job_kind_or_format_is_404(filesystem, completed_job, staff):
    client = admin_client(staff)
    assert client.get("/admin/training/trainingjob/00000000-0000-0000-0000-000000000000/download/adapters/").status_code == 404
    assert client.get(button_url(completed_job, "weights")).status_code == 404
    assert client.get(button_url(completed_job, "metrics", "?format=xlsx")).status_code == 404


def test_a_job_that_has_not_completed_goes_back_to_its_page_with_the_reason(filesystem, make_job, owner, staff):
    job = make_job(owner, status=Status.TRAINING)
    response = admin_client(staff).get(button_url(job, "adapters"), follow=True)
    assert response.redirect_chain == [(f"/admin/training/trainingjob/{job.pk}/change/", 302)]
    assert "can be downloaded once it has completed" in response.content.decode()


# --- manage.py download --------------------------------------------------------------------------


@pytest.mark.parametrize(("what", "suffix"), [("adapter", "-adapter.zip"), ("package", "-deployment-package.zip"),
                                              ("metrics-csv", "-metrics.csv"), ("metrics-json", "-metrics.json")])
def test_the_command_saves_each_file_into_a_folder_under_its_own_name(filesystem, completed_job, tmp_path, what, suffix):
    folder = tmp_path / "out"  # tmp_path also holds MEDIA_ROOT
    folder.mkdir()
    out = io.StringIO()
    call_command("download", str(completed_job.pk), "--what", what, "-o", str(folder), stdout=out)
    saved, = folder.iterdir()
    assert saved.name.endswith(suffix)
    check_file(saved.read_bytes(), suffix)
    assert f"to {saved} (" in out.getvalue()
    audit = DownloadAudit.objects.get(job=completed_job)
    assert (audit.user, audit.user_agent) == (None, "manage.py download")


def test_the_command_writes_the_file_named_by_output(filesystem, completed_job, tmp_path):
    target = tmp_path / "mine.zip"
    call_command("download", str(completed_job.pk), "-o", str(target), stdout=io.StringIO())
    check_file(target.read_bytes(), ".zip")


@pytest.mark.parametrize(("job_id", "message"), [("not-a-uuid", "is not a job id"),
                                                  ("00000000-0000-0000-0000-000000000000", "no training job")])
def test_the_command_refuses_a_bad_job_id(filesystem, tmp_path, job_id, message):
    with pytest.raises(CommandError, match=message):
        call_command("download", job_id, "-o", str(tmp_path))


def test_the_command_refuses_a_job_that_has_not_completed(filesystem, make_job, owner, tmp_path):
    job = make_job(owner, status=Status.CANCELLED)
    with pytest.raises(CommandError, match="is cancelled: its files can be downloaded once it has completed"):
        call_command("download", str(job.pk), "-o", str(tmp_path / "adapter.zip"))
    assert not (tmp_path / "adapter.zip").exists()
