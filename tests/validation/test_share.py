"""Share links of the validation report: who may make and revoke them (a permission matrix), the
web view and PDF without a login, every opening audited, 410 once expired (time frozen) or
revoked, tokens unguessable and never stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests.validation.results import report, suite_of, worker_results
from training.models import MetricPoint
from validation.models import ReportShare, ReportShareView, ValidationReport
from validation.share import issue_share, token_hash

pytestmark = pytest.mark.django_db


@pytest.fixture
def qa(django_user_model, settings):
    user = django_user_model.objects.create_user("quinn", "quinn@example.com", "pw", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=settings.VALIDATION_QA_GROUP)[0])
    return user


@pytest.fixture
def clerk(django_user_model):
    """Staff, not QA: sees every job (the admin's rule), decides nothing about reports."""
    return django_user_model.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)


@pytest.fixture
def reported(job, django_capture_on_commit_callbacks):
    for step, loss in ((1, 2.9), (2, 2.6), (3, 2.4)):
        MetricPoint.objects.create(job=job, step=step, train_loss=loss)
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    assert ValidationReport.objects.filter(job=job).exists()
    return job


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def path_of(url: str) -> str:
    return url.split("testserver", 1)[-1]


WHO = ["qa", "clerk", "owner", "teammate", "outsider", "anonymous"]


@pytest.mark.parametrize("who,expected", zip(WHO, [201, 403, 201, 403, 404, 401], strict=True))
def test_who_may_share(reported, request, who, expected):
    user = None if who == "anonymous" else request.getfixturevalue(who)
    response = api(user).post(f"/api/training/jobs/{reported.pk}/report-shares", {}, format="json")
    assert response.status_code == expected, response.content
    if expected == 201:
        body = response.json()
        assert body["state"] == "active" and body["url"].startswith("http://testserver/share/reports/")
        assert body["pdf_url"] == body["url"] + "report.pdf"
        assert body["expires_at"].startswith(str((timezone.now() + timedelta(days=30)).date()))
    elif expected == 403 and user is not None:
        assert response.json()["detail"] == "Only the job's owner or QA can share its report."
    assert ReportShare.objects.count() == (1 if expected == 201 else 0)


@pytest.mark.parametrize("who,expected", zip(WHO, [200, 403, 200, 403, 404, 401], strict=True))
def test_who_may_revoke(reported, owner, request, who, expected):
    made, token = issue_share(reported, owner)
    user = None if who == "anonymous" else request.getfixturevalue(who)
    response = api(user).post(f"/api/validation/report-shares/{made.pk}/revoke")
    assert response.status_code == expected, response.content
    made.refresh_from_db()
    assert (made.state() == "revoked") is (expected == 200)
    page = Client().get(f"/share/reports/{token}/")
    assert page.status_code == (410 if expected == 200 else 200)


def test_the_link_opens_the_report_without_a_login_and_every_opening_is_audited(reported, owner):
    made, token = issue_share(reported, owner)
    assert len(token) >= 43  # 32 random bytes: 256 bits
    assert not ReportShare.objects.filter(token_hash=token).exists() and made.token_hash == token_hash(token)
    page = Client().get(f"/share/reports/{token}/", HTTP_USER_AGENT="Mail client/1.0", REMOTE_ADDR="198.51.100.7")
    text = page.content.decode()
    assert page.status_code == 200 and page["Cache-Control"] == "private, no-store"
    assert page["X-Robots-Tag"] == "noindex, nofollow" and page["Referrer-Policy"] == "no-referrer"
    for heading in ("Executive summary", "Training", "Benchmarks", "Before and after", "Technical appendix"):
        assert f"<h2>{heading}</h2>" in text
    assert "Not ready to deliver" in text and "Knowledge retention" in text
    assert "this link is valid for 30 days" in text
    assert 'src="data:image/png;base64,' in text  # the loss chart, as in the PDF
    pdf = Client().get(f"/share/reports/{token}/report.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")
    views = list(ReportShareView.objects.filter(share=made).order_by("at", "pk"))
    assert [(v.what, v.version, v.refused) for v in views] == [("page", 1, ""), ("pdf", 1, "")]
    assert (views[0].ip, views[0].user_agent) == ("198.51.100.7", "Mail client/1.0")
    listed = api(owner).get(f"/api/training/jobs/{reported.pk}/report-shares").json()
    assert [(s["hint"], s["views"], s["state"]) for s in listed] == [(token[-4:], 2, "active")]
    assert token not in str(listed)  # the link itself is shown only when made


def test_an_expired_link_answers_410_and_says_so(reported, owner):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        made, token = issue_share(reported, owner, days=30)
    with time_machine.travel(start + timedelta(days=30) - timedelta(seconds=1), tick=False):
        assert Client().get(f"/share/reports/{token}/").status_code == 200
    with time_machine.travel(start + timedelta(days=30), tick=False):
        page = Client().get(f"/share/reports/{token}/")
        assert page.status_code == 410 and "This share link has expired" in page.content.decode()
        assert Client().get(f"/share/reports/{token}/report.pdf").status_code == 410
    assert list(made.views.order_by("at", "pk").values_list("refused", flat=True)) == ["", "expired", "expired"]


def test_a_revoked_link_answers_410_and_says_so(reported, owner, qa):
    made, token = issue_share(reported, owner)
    api(qa).post(f"/api/validation/report-shares/{made.pk}/revoke")
    made.refresh_from_db()
    assert made.revoked_by == qa and made.revoked_at is not None
    page = Client().get(f"/share/reports/{token}/")
    assert page.status_code == 410 and "This share link was revoked" in page.content.decode()
    assert made.views.get().refused == "revoked"


def test_unknown_or_malformed_tokens_are_404(reported):
    assert Client().get("/share/reports/" + "x" * 43 + "/").status_code == 404
    assert Client().get("/share/reports/short/").status_code == 404
    assert not ReportShareView.objects.exists()


def test_days_are_bounded(reported, owner, settings):
    settings.VALIDATION_SHARE_MAX_DAYS = 90
    response = api(owner).post(f"/api/training/jobs/{reported.pk}/report-shares", {"days": 91}, format="json")
    assert response.status_code == 400 and response.json()["days"] == ["At most 90 days."]
    response = api(owner).post(f"/api/training/jobs/{reported.pk}/report-shares", {"days": 7}, format="json")
    assert response.status_code == 201
    assert ReportShare.objects.get().expires_at - ReportShare.objects.get().created_at == timedelta(days=7)


def test_before_the_report_exists_the_page_says_it_is_being_prepared(job, owner):
    made, token = issue_share(job, owner)
    page = Client().get(f"/share/reports/{token}/")
    assert page.status_code == 200 and "The report is being prepared" in page.content.decode()
    assert Client().get(f"/share/reports/{token}/report.pdf").status_code == 404
