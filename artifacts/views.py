"""Downloads: signed 24-hour links to a completed job's adapter, metrics, deployment package and
validation reports.

    GET /api/training/jobs/<id>/artifacts                   list, with sizes and signed links
    GET /api/training/jobs/<id>/download/<kind>[?format=]   {"url", "expires_at"} (or ?redirect=1)
    GET /api/artifacts/<id>/<token>                          the signed link: serves the file

The first two need an authenticated user who can see the job (404 otherwise, like the rest of
the API). The link needs no session, so it can be handed to a client for
ARTIFACT_URL_TTL_SECONDS; it answers 403 when it is expired, altered, for another job, or when
the user it was issued to can no longer see the job. Each download it serves is counted and
audited (DownloadAudit). On S3 the link redirects to a short-lived presigned S3 URL, so the
bytes never pass through the control plane.

The deployment package is released once QA approves the model (ModelArtifact.package_released).
Before that its link is refused (403, saying why) unless staff pass `override_reason=<why>`: the
link then carries the reason, which the audit keeps. The state is checked again when a link is
opened, so a link issued while approved stops working if the approval is withdrawn.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core import storage
from core.api_errors import Conflict
from core.url_signing import TokenError, read_download_token, sign_download_token
from training.lifecycle import Status
from training.models import TrainingJob

from . import packaging
from .models import (
    ONLY_STAFF_OVERRIDE,
    OVERRIDE_REASON_MAX_LENGTH,
    DownloadAudit,
    ModelArtifact,
    clean_override_reason,
    may_override_package,
)
from .services import artifact_for

logger = logging.getLogger("artifacts.downloads")

S3_REDIRECT_TTL_SECONDS = 300
LINKS = (
    (DownloadAudit.Kind.ADAPTERS, ""),
    (DownloadAudit.Kind.METRICS, "csv"),
    (DownloadAudit.Kind.METRICS, "json"),
    (DownloadAudit.Kind.DEPLOYMENT_PACKAGE, ""),
)


def signed_link(request: HttpRequest | None, job_id, kind: str, fmt: str, user,
                override: str = "") -> dict[str, str]:
    token, expires_at = sign_download_token(job_id, kind, fmt, user.pk, settings.ARTIFACT_URL_TTL_SECONDS,
                                            override=override)
    path = reverse("artifact-download", kwargs={"job_id": job_id, "token": token})
    url = request.build_absolute_uri(path) if request is not None else settings.PUBLIC_BASE_URL + path
    return {"url": url, "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat().replace("+00:00", "Z")}


class _JSONOnly(BaseContentNegotiation):
    """`?format=` means the metrics format here, not DRF's renderer override."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _JobArtifactView(APIView):
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _JSONOnly

    def artifact(self, request, job_id) -> ModelArtifact:
        job = TrainingJob.objects.visible_to(request.user).filter(pk=job_id).first()
        if job is None:
            raise exceptions.NotFound("No such training job.")
        if job.status != Status.COMPLETED:
            raise Conflict(f"This job is {job.status}; artifacts are available once it has completed.")
        artifact = artifact_for(job)
        if artifact is None:
            raise Conflict("The job completed but its adapter is not in storage; contact an operator.")
        return artifact


_LINK_FIELDS = {
    "url": serializers.URLField(help_text="Signed; works without a session until expires_at."),
    "expires_at": serializers.DateTimeField(),
}
_LINK = inline_serializer("ArtifactDownloadLink", {**_LINK_FIELDS, "filename": serializers.CharField()})
_LIST = inline_serializer("JobArtifacts", {
    "job_id": serializers.UUIDField(),
    "adapter_size_bytes": serializers.IntegerField(allow_null=True),
    "storage_bytes": serializers.IntegerField(),
    "download_count": serializers.IntegerField(),
    "last_downloaded_at": serializers.DateTimeField(allow_null=True),
    "metrics_summary": serializers.JSONField(),
    "validation": serializers.JSONField(),
    "review_state": serializers.ChoiceField(choices=ModelArtifact.Review.values,
                                            help_text="QA's decision on the model; \"\" not reviewed yet."),
    "package": inline_serializer("DeploymentPackageRelease", {
        "released": serializers.BooleanField(help_text="True once QA approved the model; until then "
                                                       "`downloads` has no deployment-package link."),
        "reason": serializers.CharField(help_text="Why it is not released (\"\" when it is)."),
    }),
    "files": inline_serializer("ArtifactFile", {"key": serializers.CharField(),
                                                "size_bytes": serializers.IntegerField()}, many=True),
    "downloads": inline_serializer("ArtifactDownload", {
        "kind": serializers.ChoiceField(choices=DownloadAudit.Kind.values),
        "format": serializers.CharField(allow_null=True), **_LINK_FIELDS}, many=True),
})


class ArtifactListView(_JobArtifactView):
    @extend_schema(operation_id="job_artifacts", responses={200: _LIST, 409: None}, tags=["artifacts"],
                   summary="A completed job's files, sizes and signed download links")
    def get(self, request, job_id):
        artifact = self.artifact(request, job_id)
        prefix = storage.job_prefix(artifact.job_id)
        files = [{"key": key[len(prefix):], "size_bytes": size}
                 for key, size in storage.list_keys(prefix)
                 if key[len(prefix):].startswith(("adapter/", "reports/", "exports/"))]
        links = [*LINKS, *([(DownloadAudit.Kind.VALIDATION_REPORT, "")] if artifact.validation_report_path else [])]
        if not artifact.package_released:
            # A link that would only answer 403; `package` says why, and staff ask for one with a reason.
            links = [(kind, fmt) for kind, fmt in links if kind != DownloadAudit.Kind.DEPLOYMENT_PACKAGE]
        downloads = [{"kind": kind, "format": fmt or None, **signed_link(request, artifact.job_id, kind, fmt, request.user)}
                     for kind, fmt in links]
        return Response({
            "job_id": str(artifact.job_id),
            "adapter_size_bytes": artifact.adapter_size_bytes,
            "storage_bytes": sum(f["size_bytes"] for f in files),
            "download_count": artifact.download_count,
            "last_downloaded_at": artifact.last_downloaded_at,
            "metrics_summary": artifact.metrics_summary,
            "validation": {
                "perplexity_baseline": artifact.perplexity_baseline,
                "perplexity_trained": artifact.perplexity_trained,
                "perplexity_improvement_pct": artifact.perplexity_improvement_pct,
            },
            "review_state": artifact.review_state,
            "package": {"released": artifact.package_released, "reason": artifact.package_locked_reason()},
            "files": files,
            "downloads": downloads,
        })


class DownloadLinkView(_JobArtifactView):
    @extend_schema(
        operation_id="job_download", tags=["artifacts"], responses={200: _LINK, 302: None, 409: None},
        summary="A signed 24-hour link to the adapters, metrics, deployment package or validation report",
        description="The deployment package is released once QA approves the model; before that the "
                    "answer is 403 with the reason, unless a staff user passes `override_reason`.",
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH,
                             enum=list(DownloadAudit.Kind.values)),
            OpenApiParameter("format", OpenApiTypes.STR,
                             description="Metrics: csv (the default) or json. Validation report: "
                                         "v1, v2, ... (the newest when left out)."),
            OpenApiParameter("redirect", OpenApiTypes.BOOL,
                             description="Answer 302 to the link instead of JSON."),
            OpenApiParameter("override_reason", OpenApiTypes.STR,
                             description="Deployment package only, staff only: why it is needed before QA "
                                         f"approves the model (1 to {OVERRIDE_REASON_MAX_LENGTH} characters, "
                                         "trimmed). The link carries it and its download's audit row keeps "
                                         "it. Ignored once the model is approved."),
        ],
    )
    def get(self, request, job_id, kind):
        if kind not in packaging.KINDS:
            raise exceptions.NotFound(f"No artifact '{kind}'; one of {', '.join(packaging.KINDS)}.")
        try:
            kind, fmt = packaging.choose(kind, request.query_params.get("format"))
        except packaging.ExportError as exc:
            hint = "Use csv or json." if kind == DownloadAudit.Kind.METRICS else f"{str(exc).capitalize()}."
            raise exceptions.ValidationError({"format": hint}) from exc
        artifact = self.artifact(request, job_id)
        override = ""
        if kind == DownloadAudit.Kind.DEPLOYMENT_PACKAGE and not artifact.package_released:
            override = self.override_reason(request, artifact)
        # Build the export now, so an error shows here rather than to whoever opens the link.
        try:
            export = packaging.export_for(artifact, kind, fmt)
        except packaging.ExportMissing as exc:
            raise exceptions.NotFound(f"{str(exc).capitalize()}.") from exc
        link = signed_link(request, artifact.job_id, kind, fmt, request.user, override=override)
        if request.query_params.get("redirect") in ("1", "true"):
            return HttpResponseRedirect(link["url"])
        return Response({**link, "filename": export.filename})

    @staticmethod
    def override_reason(request, artifact: ModelArtifact) -> str:
        """The staff override a link to a package QA has not approved carries; 403 or 400 saying
        what to do when there is none, the user is not staff, or the reason is unusable."""
        raw = request.query_params.get("override_reason")
        if raw is None:
            raise exceptions.PermissionDenied(
                f"{artifact.package_locked_reason()} Ask QA to review it; staff who must deliver it "
                f"before then can pass override_reason=<why> (1 to {OVERRIDE_REASON_MAX_LENGTH} "
                "characters, kept in the download audit).")
        if not may_override_package(request.user):
            raise exceptions.PermissionDenied(ONLY_STAFF_OVERRIDE)
        try:
            return clean_override_reason(raw)
        except ValidationError as exc:
            raise exceptions.ValidationError({"override_reason": exc.messages[0]}) from exc


def _client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it.
    return request.META.get("REMOTE_ADDR") or None


def _forbidden(message: str) -> JsonResponse:
    return JsonResponse({"detail": message}, status=403)


@require_GET
def serve_download(request: HttpRequest, job_id, token: str) -> HttpResponse:
    """The signed link: check it (and, for the deployment package, QA's approval or the staff
    override it carries, as things stand now), count and audit the download, then serve (or
    redirect to S3)."""
    try:
        grant = read_download_token(token)
    except TokenError as exc:
        return _forbidden(f"This download link is invalid: {exc}.")
    if grant.job_id != str(job_id):
        return _forbidden("This download link is for another job.")
    user = get_user_model().objects.filter(pk=grant.user_id, is_active=True).first()
    if user is None or not TrainingJob.objects.visible_to(user).filter(pk=job_id).exists():
        return _forbidden("The user this link was issued to cannot access this job.")
    job = TrainingJob.objects.select_related("base_model").get(pk=job_id)
    artifact = artifact_for(job) if job.status == Status.COMPLETED else None
    if artifact is None:
        return JsonResponse({"detail": "No artifacts for this job."}, status=404)
    override = ""
    if grant.kind == DownloadAudit.Kind.DEPLOYMENT_PACKAGE:
        if refusal := artifact.package_refusal(user, grant.override):
            return _forbidden(refusal)
        # Audited only when it lifted the lock: after approval the link needed none.
        override = grant.override if not artifact.package_released else ""
    try:
        export = packaging.export_for(artifact, grant.kind, grant.fmt)
    except packaging.ExportMissing as exc:
        return JsonResponse({"detail": f"{str(exc).capitalize()}."}, status=404)
    except packaging.ExportError as exc:
        return _forbidden(str(exc))
    artifact.record_download(user, grant.kind, grant.fmt, ip=_client_ip(request),
                             user_agent=request.headers.get("user-agent", ""), override_reason=override)
    logger.info("job %s: %s downloaded via %s's link", job.pk, grant.kind, user)
    if storage.is_s3():
        return HttpResponseRedirect(storage.presigned_url(
            export.key, "GET", S3_REDIRECT_TTL_SECONDS, filename=export.filename,
            content_type=export.content_type))
    response = storage.serve_blob(export.key, filename=export.filename, content_type=export.content_type)
    response["Cache-Control"] = "private, no-store"
    return response
