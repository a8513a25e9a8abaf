"""Benchmark sets, the suite a job is validated with, its replies and what they scored.

A job's validation is one JobValidation: the sets it used (frozen when its first attempt is
configured), the worker's raw results, and the summary the API and dashboard show. The
emotional-intelligence and brand-voice replies are rows of their own (ValidationReply) so
people and the judge can score them one at a time.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import sets


def _in_qa(user, permission: str) -> bool:
    """QA for `permission`: holding it, or membership of VALIDATION_QA_GROUP."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.has_perm(permission) or user.groups.filter(name=settings.VALIDATION_QA_GROUP).exists()


def can_score(user) -> bool:
    """QA who score replies: `validation.score_replies`, or the QA group."""
    return _in_qa(user, "validation.score_replies")


def can_decide(user) -> bool:
    """QA who approve or reject models: `validation.decide_reviews`, or the QA group."""
    return _in_qa(user, "validation.decide_reviews")


class BenchmarkSetQuerySet(models.QuerySet):
    def visible_to(self, user) -> BenchmarkSetQuerySet:
        """Built-in sets and the user's own (staff see every set)."""
        if user.is_staff:
            return self
        return self.filter(Q(owner__isnull=True) | Q(owner=user))


class BenchmarkSet(models.Model):
    """One versioned benchmark: the built-in Elena sets, or a user's upload in the same format."""

    class Kind(models.TextChoices):
        EMOTIONAL_INTELLIGENCE = sets.EMOTIONAL_INTELLIGENCE, "Emotional intelligence"
        KNOWLEDGE_RETENTION = sets.KNOWLEDGE_RETENTION, "Knowledge retention"
        BRAND_VOICE = sets.BRAND_VOICE, "Brand voice"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=32, default="1")
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="benchmark_sets", help_text="Empty for the built-in sets.")
    is_builtin = models.BooleanField(default=False, editable=False)
    sha256 = models.CharField(max_length=64, editable=False, help_text="Of the bytes parsed (and the rubric's).")
    content = models.JSONField(default=dict, editable=False, help_text="The checked items (and rubric).")
    item_count = models.PositiveIntegerField(default=0, editable=False)
    source_name = models.CharField(max_length=255, blank=True, editable=False)

    # Where a set applies; the most specific wins: job, then template, then dataset, then built-in.
    datasets = models.ManyToManyField("training.TrainingFile", blank=True, related_name="benchmark_sets")
    templates = models.ManyToManyField("training.ConfigurationTemplate", blank=True, related_name="benchmark_sets")
    jobs = models.ManyToManyField("training.TrainingJob", blank=True, related_name="benchmark_sets",
                                  help_text="Jobs not yet started that should use this set.")

    created_at = models.DateTimeField(auto_now_add=True)

    objects = BenchmarkSetQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "kind", "name", "version"], name="benchmark_set_unique_version"),
            models.UniqueConstraint(fields=["kind", "name", "version"], condition=Q(owner__isnull=True),
                                    name="builtin_benchmark_set_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.get_kind_display()}, {self.item_count} items)"

    @property
    def items(self) -> list[dict[str, Any]]:
        return list(self.content.get("items", []))

    @property
    def characteristics(self) -> list[dict[str, Any]]:
        return list(self.content.get("characteristics", []))

    def item(self, item_id: str) -> dict[str, Any] | None:
        return next((i for i in self.items if i.get("id") == item_id), None)

    def identity(self) -> dict[str, str]:
        """What a report names: enough to find these exact items again."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def worker_payload(self) -> dict[str, Any]:
        return {**self.identity(), **self.content}

    def replace_content(self, parsed: sets.ParsedSet, source_name: str = "") -> None:
        if parsed.kind != self.kind:
            raise ValueError(f"a {self.kind} set cannot take {parsed.kind} items")
        self.content = parsed.content()
        self.sha256 = parsed.sha256
        self.item_count = len(parsed.items)
        self.source_name = source_name[:255]


class JobValidation(models.Model):
    """The validation of one job: its suite, the worker's results, the summary of them."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the worker"
        COMPLETE = "complete", "Complete"
        PARTIAL = "partial", "Partly complete"  # an evaluator failed; the others' results stand
        FAILED = "failed", "Failed"

    job = models.OneToOneField("training.TrainingJob", on_delete=models.CASCADE, related_name="validation")
    sets = models.ManyToManyField(BenchmarkSet, blank=True, related_name="validations")
    system_prompt = models.TextField(blank=True, help_text="Empty: the worker uses the training data's own.")
    suite_key = models.CharField(max_length=512, blank=True, help_text="Storage key of the suite sent to the worker.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    worker_results = models.JSONField(default=dict, blank=True, editable=False,
                                      help_text="The worker's validation_results, as reported.")
    summary = models.JSONField(default=dict, blank=True, editable=False,
                               help_text="Per benchmark: base, trained, change, interval, threshold, pass.")
    judge_usage = models.JSONField(default=dict, blank=True, editable=False,
                                   help_text="The judge's last run: model, calls, tokens, cost, items scored and skipped.")
    received_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"validation of {self.job_id} ({self.get_status_display()})"

    def set_of(self, kind: str) -> BenchmarkSet | None:
        return next((s for s in self.sets.all() if s.kind == kind), None)

    def evaluator(self, name: str) -> dict[str, Any]:
        result = (self.worker_results or {}).get(name)
        return result if isinstance(result, dict) else {}


class ValidationReply(models.Model):
    """One benchmark item's base and trained replies, and what the rules found in each."""

    validation = models.ForeignKey(JobValidation, on_delete=models.CASCADE, related_name="replies")
    benchmark = models.CharField(max_length=32, choices=BenchmarkSet.Kind.choices)
    item_id = models.CharField(max_length=64)
    position = models.PositiveIntegerField(default=0, help_text="The item's place in its set.")
    base_reply = models.TextField(blank=True)
    trained_reply = models.TextField(blank=True)
    base_hit_cap = models.BooleanField(default=False)
    trained_hit_cap = models.BooleanField(default=False)
    automatic = models.JSONField(default=dict, blank=True,
                                 help_text="{base: {check: bool|null}, trained: {...}, reference_nll: {...}}")

    class Meta:
        ordering = ["validation", "benchmark", "position"]
        constraints = [models.UniqueConstraint(fields=["validation", "benchmark", "item_id"],
                                               name="validation_reply_unique_item")]

    def __str__(self) -> str:
        return f"{self.benchmark} {self.item_id}"


class ReplyScore(models.Model):
    """Scores one scorer gave one reply: a person (blind, through the scoring page), the judge
    model, or the rules. `criteria` maps a criterion (empathy, clarity, appropriateness; or a
    brand-voice characteristic) to 1-5."""

    class Variant(models.TextChoices):
        BASE = "base"
        TRAINED = "trained"

    reply = models.ForeignKey(ValidationReply, on_delete=models.CASCADE, related_name="scores")
    variant = models.CharField(max_length=8, choices=Variant.choices)
    scorer = models.CharField(max_length=128, help_text="'people', 'judge:<model>' or 'automatic'.")
    evaluator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="validation_scores", help_text="The person, for people's scores.")
    criteria = models.JSONField(default=dict)
    note = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="The judge's reason, tokens and cost.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reply", "variant", "scorer"]
        permissions = [("score_replies", "Can score validation replies (QA)")]
        constraints = [models.UniqueConstraint(fields=["reply", "variant", "scorer", "evaluator"],
                                               name="reply_score_unique_scorer")]

    def __str__(self) -> str:
        return f"{self.scorer} on {self.reply} ({self.variant})"

    def mean(self) -> float | None:
        values = [v for v in self.criteria.values() if isinstance(v, int | float)]
        return sum(values) / len(values) if values else None


class ValidationReport(models.Model):
    """One numbered version of a job's validation report: the PDF in storage (the artifact's
    downloads serve it) and the document it was drawn from (the shared web view shows it)."""

    class Reason(models.TextChoices):
        VALIDATION_FINISHED = "validation_finished", "validation finished"
        SCORES_CHANGED = "scores_changed", "people's scores changed"
        REQUESTED = "requested", "asked for"

    job = models.ForeignKey("training.TrainingJob", on_delete=models.CASCADE, related_name="validation_reports")
    version = models.PositiveIntegerField()
    key = models.CharField(max_length=512, help_text="The PDF's storage key.")
    size_bytes = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    # What the scores were when it was made: a report is remade only when they have changed.
    scores_fingerprint = models.CharField(max_length=64, blank=True)
    document = models.JSONField(default=dict, help_text="What the PDF shows, as rendered.")
    generated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "-version"]
        constraints = [models.UniqueConstraint(fields=["job", "version"], name="validation_report_unique_version")]

    def __str__(self) -> str:
        return f"validation report v{self.version} of {self.job_id}"


class ReportShare(models.Model):
    """A link that shows a job's validation report (the web view and the PDF) without a login,
    until it expires or is revoked. Only the token's SHA-256 is kept: the link is shown once,
    when it is made, and a copy of the database cannot open it."""

    job = models.ForeignKey("training.TrainingJob", on_delete=models.CASCADE, related_name="report_shares")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=8, editable=False, help_text="The token's last characters, to tell links apart.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["job", "-created_at"])]

    def __str__(self) -> str:
        return f"share …{self.hint} of {self.job_id}"

    def state(self, now=None) -> str:
        """"active", "expired" or "revoked"."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if (now or timezone.now()) >= self.expires_at else "active"


class ReportShareView(models.Model):
    """One opening of a share link: when, from where, with what, and which report version it showed."""

    class What(models.TextChoices):
        PAGE = "page"
        PDF = "pdf"

    share = models.ForeignKey(ReportShare, on_delete=models.CASCADE, related_name="views")
    at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    what = models.CharField(max_length=8, choices=What.choices)
    version = models.PositiveIntegerField(null=True, blank=True)
    refused = models.CharField(max_length=16, blank=True, help_text="expired or revoked: the link was refused.")

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["share", "-at"])]

    def __str__(self) -> str:
        return f"{self.what} of {self.share} at {self.at:%Y-%m-%d %H:%M}"


class ModelReview(models.Model):
    """QA's review of a completed job's model: awaiting review until a QA user approves it,
    rejects it or asks for changes (both with a reason). A retrained model is a new job, with a
    review of its own. ModelArtifact.review_state mirrors `state` (it gates the package)."""

    class State(models.TextChoices):
        AWAITING = "awaiting_review", "awaiting review"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        CHANGES_REQUESTED = "changes_requested", "changes requested"

    job = models.OneToOneField("training.TrainingJob", on_delete=models.CASCADE, related_name="review")
    state = models.CharField(max_length=32, choices=State.choices, default=State.AWAITING, db_index=True)
    reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    report_version = models.PositiveIntegerField(null=True, blank=True,
                                                 help_text="The validation report version the decision was made on.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        permissions = [("decide_reviews", "Can approve or reject models (QA)")]

    def __str__(self) -> str:
        return f"review of {self.job_id}: {self.get_state_display()}"


class ReviewDecision(models.Model):
    """The audit of every decision on a review: who, when, what, why, and which report version
    they saw (None: no report had been made)."""

    review = models.ForeignKey(ModelReview, on_delete=models.CASCADE, related_name="decisions")
    state = models.CharField(max_length=32, choices=ModelReview.State.choices)
    reason = models.TextField(blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    report_version = models.PositiveIntegerField(null=True, blank=True)
    via = models.CharField(max_length=16, default="admin", help_text="admin or api.")

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.state} by {self.by_id} at {self.at:%Y-%m-%d %H:%M}"
