"""QA's approval releases the deployment package; before it, staff download it with a reason, audited."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from django.core import signing
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from artifacts import services
from artifacts.models import DownloadAudit, ModelArtifact
from core.url_signing import DOWNLOAD_SALT, TokenError, read_download_token, sign_download_token

from .conftest import set_review

pytestmark = pytest.mark.django_db

PACKAGE = "deployment-package"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def package_url(job, reason: str | None = None) -> str:
    return f"/api/training/jobs/{job.pk}/download/{PACKAGE}" + ("" if reason is None else f"?override_reason={reason}")


def fetch(url: str):
    """GET a signed link with no session, as whoever the link was forwarded to would."""
    return Client().get(url.split("testserver", 1)[-1])


def is_package(response) -> bool:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    return any(name.endswith("adapter/adapter_model.safetensors")
               for name in zipfile.ZipFile(io.BytesIO(data)).namelist())


def admin_client(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def button_url(job) -> str:
    return f"/admin/training/trainingjob/{job.pk}/download/{PACKAGE}/"


# --- The rule, on the model --------------------------------------------------------------------


@pytest.mark.parametrize(("state", "now"), [("", "not reviewed yet"), ("awaiting_review", "awaiting review"),
                                            ("rejected", "rejected"), ("changes_requested", "changes requested")])
def test_only_approval_releases_the_package_and_the_reason_says_the_state(state, now):
    artifact = ModelArtifact(review_state=state)
    assert not artifact.package_released
    assert artifact.package_locked_reason() == (
        f"The deployment package is released once QA approves this model (now: {now}).")
    approved = ModelArtifact(review_state="approved")
    assert approved.package_released and approved.package_locked_reason() == ""


# --- The API -----------------------------------------------------------------------------------


def test_before_approval_the_link_is_refused_with_the_reason_and_what_to_do(filesystem, completed_job, owner):
    set_review(completed_job, "awaiting_review")
    response = api(owner).get(package_url(completed_job))
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail.startswith("The deployment package is released once QA approves this model (now: awaiting review).")
    assert "override_reason=<why>" in detail


def test_other_files_are_not_gated(filesystem, completed_job, owner):
    set_review(completed_job, "rejected")
    for kind in ("adapters", "metrics"):
        response = api(owner).get(f"/api/training/jobs/{completed_job.pk}/download/{kind}")
        assert response.status_code == 200
        assert fetch(response.json()["url"]).status_code == 200


def test_the_list_shows_the_state_and_leaves_out_the_package_until_it_is_released(filesystem, completed_job, owner):
    data = api(owner).get(f"/api/training/jobs/{completed_job.pk}/artifacts").json()
    assert data["review_state"] == ""
    assert data["package"] == {"released": False, "reason": "The deployment package is released once QA "
                                                             "approves this model (now: not reviewed yet)."}
    assert PACKAGE not in {d["kind"] for d in data["downloads"]}
    assert {"adapters", "metrics"} <= {d["kind"] for d in data["downloads"]}

    set_review(completed_job, "approved")
    data = api(owner).get(f"/api/training/jobs/{completed_job.pk}/artifacts").json()
    assert data["package"]["released"] is True
    assert PACKAGE in {d["kind"] for d in data["downloads"]}


def test_staff_download_it_early_with_a_reason_and_the_audit_keeps_it(filesystem, completed_job, staff):
    response = api(staff).get(package_url(completed_job, "  Demo for the client on Friday  "))
    assert response.status_code == 200, response.content
    assert read_download_token(response.json()["url"].rsplit("/", 1)[1]).override == "Demo for the client on Friday"
    served = fetch(response.json()["url"])
    assert served.status_code == 200 and is_package(served)
    audit = DownloadAudit.objects.get()
    assert (audit.kind, audit.user, audit.override_reason) == (PACKAGE, staff, "Demo for the client on Friday")


def test_redirect_mode_works_with_an_override(filesystem, completed_job, staff):
    response = api(staff).get(package_url(completed_job, "demo") + "&redirect=1")
    assert response.status_code == 302 and "/api/artifacts/" in response["Location"]


@pytest.mark.parametrize("who", ["owner", "teammate"])
def test_only_staff_may_override(filesystem, completed_job, request, who):
    response = api(request.getfixturevalue(who)).get(package_url(completed_job, "the client is waiting"))
    assert response.status_code == 403
    assert response.json()["detail"] == "Only staff can download a deployment package before QA approves the model."


@pytest.mark.parametrize("reason", ["", "%20%20", "x" * 1001])
def test_a_blank_or_too_long_reason_is_a_400_naming_the_field(filesystem, completed_job, staff, reason):
    response = api(staff).get(package_url(completed_job, reason))
    assert response.status_code == 400
    message = response.json()["override_reason"]
    assert ("1 to 1000 characters" in message) if len(reason) < 1000 else ("at most 1000" in message)
    assert not DownloadAudit.objects.exists()


def test_a_reason_of_1000_characters_is_taken(filesystem, completed_job, staff):
    response = api(staff).get(package_url(completed_job, "x" * 1000))
    assert response.status_code == 200
    fetch(response.json()["url"])
    assert DownloadAudit.objects.get().override_reason == "x" * 1000


def test_a_link_issued_while_approved_is_refused_once_the_model_is_rejected(filesystem, completed_job, owner):
    set_review(completed_job, "approved")
    url = api(owner).get(package_url(completed_job)).json()["url"]
    assert fetch(url).status_code == 200
    set_review(completed_job, "rejected")
    response = fetch(url)
    assert response.status_code == 403
    assert response.json()["detail"] == ("The deployment package is released once QA approves this model "
                                         "(now: rejected).")
    assert DownloadAudit.objects.count() == 1


def test_an_override_stops_working_when_its_user_is_no_longer_staff(filesystem, completed_job, staff):
    url = api(staff).get(package_url(completed_job, "demo")).json()["url"]
    staff.is_staff = False
    staff.is_superuser = False
    staff.save()
    completed_job.created_by = staff  # still sees the job: it is the override that is refused
    completed_job.save(update_fields=["created_by"])
    response = fetch(url)
    assert response.status_code == 403
    assert response.json()["detail"] == "Only staff can download a deployment package before QA approves the model."


def test_an_override_used_after_approval_is_not_audited_as_one(filesystem, completed_job, staff):
    url = api(staff).get(package_url(completed_job, "demo")).json()["url"]
    set_review(completed_job, "approved")
    assert fetch(url).status_code == 200
    assert DownloadAudit.objects.get().override_reason == ""


def test_the_reason_is_ignored_once_the_package_is_released(filesystem, completed_job, owner):
    set_review(completed_job, "approved")
    response = api(owner).get(package_url(completed_job, "not needed"))
    assert response.status_code == 200
    assert read_download_token(response.json()["url"].rsplit("/", 1)[1]).override == ""


# --- The token -----------------------------------------------------------------------------------


def test_a_token_without_an_override_reads_as_before():
    token, _ = sign_download_token("j", PACKAGE, "", 7, 3600)
    assert "o" not in signing.loads(token, salt=DOWNLOAD_SALT)
    assert read_download_token(token).override == ""
    with_reason, _ = sign_download_token("j", PACKAGE, "", 7, 3600, override="demo")
    assert read_download_token(with_reason).override == "demo"


def test_a_token_whose_override_is_not_text_is_malformed():
    token = signing.dumps({"j": "j", "k": PACKAGE, "f": "", "u": 7, "x": 2**40, "o": ["demo"]},
                          salt=DOWNLOAD_SALT, compress=True)
    with pytest.raises(TokenError, match="malformed"):
        read_download_token(token)


# --- The admin -----------------------------------------------------------------------------------


def test_the_button_asks_staff_why_before_approval(filesystem, completed_job, staff):
    set_review(completed_job, "changes_requested")
    page = admin_client(staff).get(button_url(completed_job))
    assert page.status_code == 200
    html = page.content.decode()
    assert "The deployment package is released once QA approves this model (now: changes requested)." in html
    assert 'id="package-override-form"' in html and 'name="csrfmiddlewaretoken"' in html
    assert re.search(r'<textarea[^>]*name="override_reason"[^>]*required', html)
    assert 'id="site-name"' in html  # the admin's own header: it extends admin/base_site.html
    assert f'href="/admin/training/trainingjob/{completed_job.pk}/change/"' in html
    assert not DownloadAudit.objects.exists()


def test_the_form_redirects_to_a_link_carrying_the_reason(filesystem, completed_job, staff):
    client = admin_client(staff, enforce_csrf_checks=True)
    form = client.get(button_url(completed_job)).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    response = client.post(button_url(completed_job), {"override_reason": " Pilot install at the client ",
                                                        "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302 and response["Location"].startswith("http://testserver/api/artifacts/")
    assert read_download_token(response["Location"].rsplit("/", 1)[1]).override == "Pilot install at the client"
    served = fetch(response["Location"])
    assert served.status_code == 200 and is_package(served)
    assert served["Content-Disposition"].startswith("attachment;")
    audit = DownloadAudit.objects.get()
    assert (audit.user, audit.override_reason) == (staff, "Pilot install at the client")


def test_the_form_refuses_a_post_without_its_csrf_token(filesystem, completed_job, staff):
    response = admin_client(staff, enforce_csrf_checks=True).post(button_url(completed_job), {"override_reason": "x"})
    assert response.status_code == 403


def test_the_form_shows_what_is_wrong_with_a_blank_reason(filesystem, completed_job, staff):
    response = admin_client(staff).post(button_url(completed_job), {"override_reason": "   "})
    assert response.status_code == 200
    assert "Say why the package is needed before QA approves the model" in response.content.decode()


def test_users_outside_the_admin_never_reach_the_form(filesystem, completed_job, owner):
    for response in (admin_client(owner).get(button_url(completed_job)),
                     admin_client(owner).post(button_url(completed_job), {"override_reason": "x"})):
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not DownloadAudit.objects.exists()


def test_once_approved_the_button_downloads_directly(filesystem, completed_job, staff):
    set_review(completed_job, "approved")
    response = admin_client(staff).get(button_url(completed_job))
    assert response.status_code == 302 and "/api/artifacts/" in response["Location"]
    assert read_download_token(response["Location"].rsplit("/", 1)[1]).override == ""


def test_the_artifact_page_sends_the_locked_package_to_the_form(filesystem, completed_job, staff):
    artifact = set_review(completed_job, "awaiting_review")
    page = admin_client(staff).get(f"/admin/artifacts/modelartifact/{artifact.pk}/change/").content.decode()
    assert page.count('href="http://testserver/api/artifacts/') == 3  # adapters, metrics csv and json
    assert f'href="{button_url(completed_job)}"' in page


# --- Registration and the operator's command -----------------------------------------------------------


def test_register_copies_the_review_state_from_the_job(filesystem, completed_job):
    completed_job.results = {**completed_job.results, "review_state": "approved"}
    completed_job.save(update_fields=["results"])
    assert services.register_artifacts(completed_job.pk).review_state == "approved"


def test_register_keeps_a_decision_the_job_does_not_mirror_and_refuses_unknown_states(filesystem, completed_job):
    set_review(completed_job, "rejected")
    assert services.register_artifacts(completed_job.pk).review_state == "rejected"
    completed_job.results = {**completed_job.results, "review_state": "maybe"}
    completed_job.save(update_fields=["results"])
    assert services.register_artifacts(completed_job.pk).review_state == ""


def test_the_command_marks_an_early_package_in_the_audit(filesystem, completed_job, tmp_path):
    call_command("download", str(completed_job.pk), "--what", "package", "-o", str(tmp_path / "p.zip"),
                 stdout=io.StringIO())
    audit = DownloadAudit.objects.get()
    assert audit.override_reason.startswith("manage.py download before QA approval.")
    assert "(now: not reviewed yet)" in audit.override_reason
