"""Customer downloads: registration, the artifact list, signed 24-hour links, the audit trail."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

import pytest
import requests
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from artifacts import packaging, services
from artifacts.models import DownloadAudit, ModelArtifact
from core import storage
from core.url_signing import sign_download_token
from training.lifecycle import Status

from .conftest import set_review

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def link_for(user, job, kind="adapters", fmt="") -> str:
    response = api(user).get(f"/api/training/jobs/{job.pk}/download/{kind}" + (f"?format={fmt}" if fmt else ""))
    assert response.status_code == 200, response.content
    return response.json()["url"]


def fetch(url: str, **extra):
    """GET a signed link as anyone (no session), as a client the link was forwarded to would."""
    return Client().get(url.split("testserver", 1)[-1], **extra)


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_register_builds_the_artifact_from_storage(backend, completed_job):
    artifact = services.register_artifacts(completed_job.pk)
    assert artifact.adapter_path == f"jobs/{completed_job.pk}/adapter/adapter_model.safetensors"
    assert artifact.adapter_size_bytes == len(b"\x00lora-weights" * 500)
    assert set(artifact.adapter_files) == {"adapter_model.safetensors", "adapter_config.json",
                                           "tokenizer.json", "tokenizer_config.json"}
    assert artifact.metrics_file_path.endswith("reports/metrics.jsonl")
    assert artifact.metrics_summary == {"final_train_loss": 0.82, "steps": 30}
    assert (artifact.perplexity_baseline, artifact.perplexity_trained,
            artifact.perplexity_improvement_pct) == (12.5, 8.0, 36.0)
    assert artifact.ei_score_trained is None
    assert artifact.storage_bytes > artifact.adapter_size_bytes
    # Idempotent: a second call refreshes the same row.
    assert services.register_artifacts(completed_job.pk).pk == artifact.pk
    assert ModelArtifact.objects.count() == 1


def test_register_without_an_adapter_registers_nothing(filesystem, make_job, owner):
    job = make_job(owner, status=Status.COMPLETED)
    assert services.register_artifacts(job.pk) is None
    assert not ModelArtifact.objects.exists()


def test_the_list_has_sizes_and_signed_links(filesystem, completed_job, owner):
    set_review(completed_job, "approved")
    response = api(owner).get(f"/api/training/jobs/{completed_job.pk}/artifacts")
    assert response.status_code == 200
    data = response.json()
    files = {f["key"]: f["size_bytes"] for f in data["files"]}
    assert files["adapter/adapter_model.safetensors"] == len(b"\x00lora-weights" * 500)
    assert "checkpoints/step-30/manifest.json" not in files
    assert {(d["kind"], d["format"]) for d in data["downloads"]} == {
        ("adapters", None), ("metrics", "csv"), ("metrics", "json"), ("deployment-package", None)}
    assert all(d["url"].startswith("http://testserver/api/artifacts/") and d["expires_at"]
               for d in data["downloads"])
    assert (data["review_state"], data["package"]) == ("approved", {"released": True, "reason": ""})


@pytest.mark.parametrize("who,expected", [("teammate", 200), ("staff", 200), ("outsider", 404)])
def test_only_users_who_see_the_job_get_links(filesystem, completed_job, request, who, expected):
    user = request.getfixturevalue(who)
    assert api(user).get(f"/api/training/jobs/{completed_job.pk}/download/adapters").status_code == expected
    assert api(user).get(f"/api/training/jobs/{completed_job.pk}/artifacts").status_code == expected


def test_anonymous_users_get_no_links(filesystem, completed_job):
    assert APIClient().get(f"/api/training/jobs/{completed_job.pk}/download/adapters").status_code in (401, 403)


def test_a_running_job_has_no_artifacts_yet(filesystem, make_job, owner):
    job = make_job(owner, status=Status.TRAINING)
    assert api(owner).get(f"/api/training/jobs/{job.pk}/download/adapters").status_code == 409


def test_an_unknown_kind_or_format_is_refused(filesystem, completed_job, owner):
    assert api(owner).get(f"/api/training/jobs/{completed_job.pk}/download/weights").status_code == 404
    assert api(owner).get(f"/api/training/jobs/{completed_job.pk}/download/metrics?format=xml").status_code == 400


def test_a_signed_link_serves_the_adapter_zip_without_a_session_and_is_audited(
        filesystem, completed_job, owner):
    url = link_for(owner, completed_job)
    response = fetch(url, HTTP_USER_AGENT="curl/8.0", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    assert set(archive.namelist()) == {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
                                       "tokenizer_config.json", "README.txt"}
    assert archive.read("adapter_model.safetensors") == b"\x00lora-weights" * 500
    assert "PeftModel.from_pretrained" in archive.read("README.txt").decode()

    artifact = ModelArtifact.objects.get(job=completed_job)
    assert artifact.download_count == 1
    assert artifact.last_downloaded_by == owner
    audit = DownloadAudit.objects.get()
    assert (audit.user, audit.kind, audit.ip, audit.user_agent) == (owner, "adapters", "203.0.113.9", "curl/8.0")

    assert fetch(url).status_code == 200  # shareable until it expires; each download counts
    artifact.refresh_from_db()
    assert artifact.download_count == 2


def test_the_zip_is_built_once_and_reused(filesystem, completed_job, owner, monkeypatch):
    link_for(owner, completed_job)
    assert storage.exists(f"jobs/{completed_job.pk}/exports/adapter.zip")

    def no_rebuild(*args, **kwargs):
        raise AssertionError("rebuilt")

    monkeypatch.setattr(packaging, "build_adapter_zip", no_rebuild)
    assert fetch(link_for(owner, completed_job)).status_code == 200


def test_an_expired_link_is_refused(filesystem, completed_job, owner, settings):
    url = link_for(owner, completed_job)
    with time_machine.travel(time.time() + settings.ARTIFACT_URL_TTL_SECONDS + 5, tick=False):
        response = fetch(url)
    assert response.status_code == 403
    assert not DownloadAudit.objects.exists()
    assert settings.ARTIFACT_URL_TTL_SECONDS == 24 * 3600


def test_a_link_is_still_valid_just_before_24_hours(filesystem, completed_job, owner):
    url = link_for(owner, completed_job)
    with time_machine.travel(time.time() + 24 * 3600 - 60, tick=False):
        assert fetch(url).status_code == 200


def test_an_altered_link_is_refused(filesystem, completed_job, owner):
    url = link_for(owner, completed_job)
    prefix, token = url.rsplit("/", 1)
    tampered = token[:-2] + ("xy" if not token.endswith("xy") else "zz")
    assert fetch(f"{prefix}/{tampered}").status_code == 403
    assert not DownloadAudit.objects.exists()


def test_another_jobs_link_is_refused(filesystem, completed_job, make_job, owner):
    from .conftest import upload_outputs

    other = make_job(owner, status=Status.COMPLETED)
    upload_outputs(other)
    url = link_for(owner, completed_job)
    token = url.rsplit("/", 1)[1]
    assert fetch(f"/api/artifacts/{other.pk}/{token}").status_code == 403
    assert not DownloadAudit.objects.exists()


def test_a_link_issued_to_a_user_who_cannot_see_the_job_is_refused(filesystem, completed_job, outsider, owner):
    token, _ = sign_download_token(completed_job.pk, "adapters", "", outsider.pk, 3600)
    assert fetch(f"/api/artifacts/{completed_job.pk}/{token}").status_code == 403
    # And a link stops working when its user is deactivated.
    url = link_for(owner, completed_job)
    owner.is_active = False
    owner.save()
    assert fetch(url).status_code == 403
    assert not DownloadAudit.objects.exists()


def test_metrics_export_as_csv_and_json(filesystem, completed_job, owner):
    rows = list(csv.DictReader(io.StringIO(body(fetch(link_for(owner, completed_job, "metrics", "csv"))).decode())))
    assert [r["step"] for r in rows] == ["10", "20", "30"]
    assert float(rows[-1]["train_loss"]) == pytest.approx(1.0)
    document = json.loads(body(fetch(link_for(owner, completed_job, "metrics", "json"))))
    assert [p["step"] for p in document["points"]] == [10, 20, 30]
    assert document["validation"]["perplexity_trained"] == 8.0
    assert DownloadAudit.objects.filter(kind="metrics").count() == 2


def test_the_deployment_package_has_everything_needed_to_run(filesystem, completed_job, owner):
    set_review(completed_job, "approved")
    archive = zipfile.ZipFile(io.BytesIO(body(fetch(link_for(owner, completed_job, "deployment-package")))))
    names = set(archive.namelist())
    root = "deployment-package/"
    assert {f"{root}inference.py", f"{root}requirements-cpu.txt", f"{root}requirements-gpu.txt",
            f"{root}requirements-common.txt", f"{root}README.md",
            f"{root}example_prompts.json", f"{root}model_info.json",
            f"{root}adapter/adapter_model.safetensors", f"{root}adapter/adapter_config.json"} <= names
    readme = archive.read(f"{root}README.md").decode()
    assert "Troubleshooting" in readme and "BASE_MODEL_PATH" in readme
    assert json.loads(archive.read(f"{root}model_info.json")) == {
        "job_id": str(completed_job.pk), "job_name": completed_job.name,
        "base_model": "embedded:smollm2-135m-instruct", "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    assert f"{root}requirements.txt" not in names  # one file for both pulled CUDA torch onto CPUs
    assert len(json.loads(archive.read(f"{root}example_prompts.json"))) == 3


def test_redirect_mode_sends_the_browser_to_the_link(filesystem, completed_job, owner):
    response = api(owner).get(f"/api/training/jobs/{completed_job.pk}/download/adapters?redirect=1")
    assert response.status_code == 302
    assert "/api/artifacts/" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_on_s3_the_link_redirects_to_a_presigned_url(s3, make_job, owner, live_server):
    from .conftest import upload_outputs

    job = make_job(owner, status=Status.COMPLETED)
    upload_outputs(job)
    url = link_for(owner, job).replace("http://testserver", live_server.url)
    response = requests.get(url, timeout=30, allow_redirects=False)
    assert response.status_code == 302
    assert "X-Amz-Signature" in response.headers["Location"]
    followed = requests.get(url, timeout=30)
    assert followed.status_code == 200
    assert "adapter_model.safetensors" in zipfile.ZipFile(io.BytesIO(followed.content)).namelist()
    assert ModelArtifact.objects.get(job=job).download_count == 2


def test_validation_reports_download_newest_first_and_by_version(filesystem, completed_job, owner):
    assert api(owner).get(f"/api/training/jobs/{completed_job.pk}/download/validation-report").status_code == 404
    for version in (1, 2):
        storage.save_bytes(packaging.report_key(completed_job.pk, version), b"%%PDF-1.4 report v%d" % version)
    services.register_artifacts(completed_job.pk)
    data = api(owner).get(f"/api/training/jobs/{completed_job.pk}/artifacts").json()
    assert ("validation-report", None) in {(d["kind"], d["format"]) for d in data["downloads"]}

    newest = fetch(link_for(owner, completed_job, "validation-report"))
    assert newest.status_code == 200 and newest["Content-Type"] == "application/pdf"
    assert body(newest) == b"%PDF-1.4 report v2" and "validation-report-v2.pdf" in newest["Content-Disposition"]
    first = fetch(link_for(owner, completed_job, "validation-report", "v1"))
    assert body(first) == b"%PDF-1.4 report v1"
    assert DownloadAudit.objects.filter(kind="validation-report").count() == 2
    assert DownloadAudit.objects.filter(kind="validation-report", format="v1").count() == 1

    missing = api(owner).get(f"/api/training/jobs/{completed_job.pk}/download/validation-report?format=v3")
    assert missing.status_code == 404 and "v3 does not exist" in missing.json()["detail"]
    wrong = api(owner).get(f"/api/training/jobs/{completed_job.pk}/download/validation-report?format=latest")
    assert wrong.status_code == 400 and "v1, v2" in wrong.json()["format"]
