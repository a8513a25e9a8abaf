"""What a completed job delivers (seed 002's model_artifacts) and who downloaded it."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

OVERRIDE_REASON_MAX_LENGTH = 1000
ONLY_STAFF_OVERRIDE = "Only staff can download a deployment package before QA approves the model."


class ModelArtifact(models.Model):
    """The adapter, reports and exports of one completed job, as stored under jobs/<id>/.

    Paths are storage keys (core.storage). Built by services.register_artifacts from what
    the worker uploaded; the export ZIPs are filled in the first time someone asks for them.
    """

    job = models.OneToOneField("training.TrainingJob", on_delete=models.CASCADE, related_name="artifact")

    adapter_path = models.CharField(max_length=512, help_text="adapter_model.safetensors (or .bin)")
    adapter_config_path = models.CharField(max_length=512)
    adapter_size_bytes = models.BigIntegerField(null=True, blank=True)
    adapter_files = models.JSONField(default=dict, blank=True, help_text="Every file under adapter/: name -> bytes.")

    metrics_file_path = models.CharField(max_length=512, blank=True)
    summary_file_path = models.CharField(max_length=512, blank=True)
    metrics_summary = models.JSONField(default=dict, blank=True)

    validation_report_path = models.CharField(max_length=512, blank=True)
    perplexity_baseline = models.FloatField(null=True, blank=True)
    perplexity_trained = models.FloatField(null=True, blank=True)
    perplexity_improvement_pct = models.FloatField(null=True, blank=True)
    # Evaluators that later versions of the worker will report; null until then.
    ei_score_baseline = models.FloatField(null=True, blank=True)
    ei_score_trained = models.FloatField(null=True, blank=True)
    ei_improvement_pct = models.FloatField(null=True, blank=True)
    forgetting_retention_pct = models.FloatField(null=True, blank=True)
    brand_voice_consistency_pct = models.FloatField(null=True, blank=True)

    class Review(models.TextChoices):
        NONE = "", "not reviewed"
        AWAITING = "awaiting_review", "awaiting review"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        CHANGES_REQUESTED = "changes_requested", "changes requested"

    # QA's decision on the model (validation's review writes it): approval releases the
    # client-facing deployment package; before it, a download needs a staff override.
    review_state = models.CharField(max_length=32, choices=Review.choices, blank=True, default=Review.NONE)

    adapter_zip_path = models.CharField(max_length=512, blank=True)
    deployment_package_path = models.CharField(max_length=512, blank=True)

    storage_bytes = models.BigIntegerField(default=0, help_text="Bytes under jobs/<id>/ when last measured.")

    download_count = models.PositiveIntegerField(default=0)
    last_downloaded_at = models.DateTimeField(null=True, blank=True)
    last_downloaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                           on_delete=models.SET_NULL, related_name="+")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"artifacts of {self.job_id}"

    @property
    def package_released(self) -> bool:
        """Whether the client-facing deployment package may be downloaded without an override."""
        return self.review_state == self.Review.APPROVED

    def package_locked_reason(self) -> str:
        """Why the deployment package is not released, in one sentence for a person; "" once it is."""
        if self.package_released:
            return ""
        now = self.get_review_state_display() if self.review_state else "not reviewed yet"
        return f"The deployment package is released once QA approves this model (now: {now})."

    def package_refusal(self, user, override_reason: str = "") -> str:
        """Why `user` may not download the deployment package now, or "" when they may: it is
        released, or staff gave an override reason. Checked again when a link is opened, so a
        link issued while approved stops working if the approval is withdrawn."""
        if self.package_released:
            return ""
        if not override_reason:
            return self.package_locked_reason()
        if not may_override_package(user):
            return ONLY_STAFF_OVERRIDE
        return ""

    def record_download(self, user, kind: str, fmt: str = "", ip: str | None = None,
                        user_agent: str = "", override_reason: str = "") -> DownloadAudit:
        """Count one served download and keep who, what, when, from where and, for a deployment
        package served before QA approved it, the override's reason."""
        now = timezone.now()
        with transaction.atomic():
            # F() so two downloads at once both count.
            ModelArtifact.objects.filter(pk=self.pk).update(
                download_count=F("download_count") + 1, last_downloaded_at=now,
                last_downloaded_by=user,
            )
            return DownloadAudit.objects.create(
                artifact=self, job_id=self.job_id, user=user, kind=kind, format=fmt, at=now,
                ip=ip, user_agent=user_agent[:512], override_reason=override_reason,
            )


class DownloadAudit(models.Model):
    """One download served through a signed link (the audit trail for client deliveries)."""

    class Kind(models.TextChoices):
        ADAPTERS = "adapters"
        METRICS = "metrics"
        DEPLOYMENT_PACKAGE = "deployment-package"
        VALIDATION_REPORT = "validation-report"

    artifact = models.ForeignKey(ModelArtifact, on_delete=models.CASCADE, related_name="downloads")
    job = models.ForeignKey("training.TrainingJob", on_delete=models.CASCADE, related_name="downloads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="artifact_downloads", help_text="Who the link was issued to.")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    format = models.CharField(max_length=8, blank=True, help_text="metrics: csv or json; validation-report: vN.")
    at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    override_reason = models.TextField(blank=True, help_text="Why staff downloaded a deployment package before QA "
                                                             "approved the model.")

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["job", "-at"]), models.Index(fields=["user", "-at"])]

    def __str__(self) -> str:
        return f"{self.kind} of {self.job_id} at {self.at:%Y-%m-%d %H:%M}"


def may_override_package(user) -> bool:
    """Whether `user` may download a deployment package QA has not approved (with a reason)."""
    return bool(user is not None and user.is_active and user.is_staff)


def clean_override_reason(raw: str | None) -> str:
    """The override reason, trimmed; ValidationError saying what to fix when it is blank or too long."""
    reason = (raw or "").strip()
    if not reason:
        raise ValidationError(f"Say why the package is needed before QA approves the model (1 to "
                              f"{OVERRIDE_REASON_MAX_LENGTH} characters); it is kept in the download audit.")
    if len(reason) > OVERRIDE_REASON_MAX_LENGTH:
        raise ValidationError(f"The reason is {len(reason)} characters long; shorten it to at most "
                              f"{OVERRIDE_REASON_MAX_LENGTH}.")
    if "\x00" in reason:
        # PostgreSQL text cannot hold NUL; refused here rather than as a failed audit write.
        raise ValidationError("The reason must not contain NUL bytes.")
    return reason
