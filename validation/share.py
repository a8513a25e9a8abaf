"""Share links of a job's validation report: the newest report's read-only web view and its PDF,
opened without a login until the link expires (VALIDATION_SHARE_DAYS) or is revoked.

    GET /share/reports/<token>/            the web view
    GET /share/reports/<token>/report.pdf  the PDF

A token is 32 random bytes (256 bits, URL-safe base64); only its SHA-256 is stored, so the link
is shown once, when it is made. Every opening is audited (ReportShareView: when, address, user
agent, the version shown), refused ones included. An unknown token is a 404; an expired or
revoked one a 410 page that says which, and when.

Who may share: the job's owner and QA (validation.models.can_score), among those who can see
the job; the same, or the link's maker, may revoke it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from core import humanize, storage
from training.models import TrainingJob

from .models import ReportShare, ReportShareView, ValidationReport, can_score

S3_REDIRECT_TTL_SECONDS = 300
TOKEN_BYTES = 32


class ShareRefused(Exception):
    """The user may not share or revoke (the message says why, for a person)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def may_share(user, job: TrainingJob) -> bool:
    """The job's owner or QA, if they can see the job."""
    if not user.is_authenticated or not TrainingJob.objects.visible_to(user).filter(pk=job.pk).exists():
        return False
    return job.created_by_id == user.pk or can_score(user)


def may_revoke(user, share: ReportShare) -> bool:
    return share.created_by_id == user.pk or may_share(user, share.job)


def share_url(token: str, request: HttpRequest | None = None, *, pdf: bool = False) -> str:
    path = reverse("validation:share-pdf" if pdf else "validation:share", args=[token])
    if request is not None:
        return request.build_absolute_uri(path)
    # The site people open (as in emails): `manage.py train` points PUBLIC_BASE_URL at the
    # short-lived server its worker reports to, which is gone once the command ends.
    return (settings.NOTIFICATIONS_SITE_URL or settings.PUBLIC_BASE_URL) + path


def issue_share(job: TrainingJob, user, *, days: int | None = None) -> tuple[ReportShare, str]:
    """A new link for `job`'s report, made by `user`: (the row, the token, shown only now)."""
    if not may_share(user, job):
        raise ShareRefused("Only the job's owner or QA can share its report.")
    days = settings.VALIDATION_SHARE_DAYS if days is None else days
    if not 1 <= days <= settings.VALIDATION_SHARE_MAX_DAYS:
        raise ValueError(f"days must be between 1 and {settings.VALIDATION_SHARE_MAX_DAYS}")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = timezone.now()
    share = ReportShare.objects.create(job=job, token_hash=token_hash(token), hint=token[-4:], created_by=user,
                                       created_at=now, expires_at=now + timedelta(days=days))
    return share, token


def revoke_share(share: ReportShare, user) -> ReportShare:
    """Revoked from now on (revoking twice keeps the first time)."""
    if not may_revoke(user, share):
        raise ShareRefused("Only the link's maker, the job's owner or QA can revoke it.")
    with transaction.atomic():
        ReportShare.objects.filter(pk=share.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=user)
    share.refresh_from_db()
    return share


# --- The public views ----------------------------------------------------------------------


def _opened(request: HttpRequest, token: str, what: str) -> tuple[ReportShare, ValidationReport | None]:
    """The share a token opens and its job's newest report, audited; Http404 for an unknown
    token; a refused (expired or revoked) opening is audited and raises _Gone."""
    share = (ReportShare.objects.select_related("job").filter(token_hash=token_hash(token)).first()
             if 20 <= len(token) <= 64 else None)
    if share is None:
        raise Http404("No such share link.")
    state = share.state()
    report = ValidationReport.objects.filter(job=share.job).order_by("-version").first() if state == "active" else None
    ReportShareView.objects.create(share=share, ip=request.META.get("REMOTE_ADDR") or None,
                                   user_agent=request.headers.get("user-agent", "")[:512], what=what,
                                   version=report.version if report else None,
                                   refused="" if state == "active" else state)
    if state != "active":
        raise _Gone(share, state)
    return share, report


class _Gone(Exception):
    def __init__(self, share: ReportShare, state: str) -> None:
        self.share, self.state = share, state


def _private(response: HttpResponse) -> HttpResponse:
    # A shared report is for whoever holds the link: not cached, not indexed, not leaked onwards.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _gone(request: HttpRequest, gone: _Gone) -> HttpResponse:
    when: datetime = gone.share.revoked_at if gone.state == "revoked" else gone.share.expires_at
    response = TemplateResponse(request, "validation/share/gone.html", {
        "state": gone.state, "when": when, "job_name": gone.share.job.name}, status=410)
    return _private(response)


def _left(left: timedelta) -> str:
    """How long a link still opens the report: "30 days", "1 day", "5h 12m"."""
    days = round(left.total_seconds() / 86400)
    return f"{days} days" if days >= 2 else humanize.duration(left.total_seconds())


def _loss_chart(document: dict[str, Any] | None) -> str:
    """The PDF's loss chart, base64 for an <img> data URI ("" without a document or points)."""
    if not document:
        return ""
    from .report_pdf import loss_chart_png  # matplotlib: loaded by the views that draw

    png = loss_chart_png((document.get("training") or {}).get("loss") or {})
    return base64.b64encode(png).decode() if png else ""


@require_GET
def share_view(request: HttpRequest, token: str) -> HttpResponse:
    try:
        share, report = _opened(request, token, ReportShareView.What.PAGE)
    except _Gone as gone:
        return _gone(request, gone)
    document = report.document if report else None
    examples = document.get("examples") or {} if document else {}
    context: dict[str, Any] = {
        "share": share, "report": report, "document": document,
        "examples": [("Where training helped most", examples.get("best") or []),
                     ("Where it helped least", examples.get("worst") or [])],
        "loss_chart": _loss_chart(document),
        "pdf_url": reverse("validation:share-pdf", args=[token]),
        "expires": _left(share.expires_at - timezone.now())}
    return _private(TemplateResponse(request, "validation/share/report.html", context))


@require_GET
def share_pdf(request: HttpRequest, token: str) -> HttpResponse:
    try:
        share, report = _opened(request, token, ReportShareView.What.PDF)
    except _Gone as gone:
        return _gone(request, gone)
    if report is None or not storage.exists(report.key):
        raise Http404("The report is not ready yet.")
    filename = f"validation-report-v{report.version}.pdf"
    if storage.is_s3():
        return _private(HttpResponseRedirect(storage.presigned_url(
            report.key, "GET", S3_REDIRECT_TTL_SECONDS, filename=filename, content_type="application/pdf")))
    return _private(storage.serve_blob(report.key, filename=filename, content_type="application/pdf"))
