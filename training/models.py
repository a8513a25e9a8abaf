"""Datasets, presets, base models, jobs and what jobs report.

Behaviour lives here (fat models); `services.py` holds the cross-cutting operations that also
enqueue tasks or talk to executors. Status changes go through `lifecycle.transition` only.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.functional import cached_property

from .liveness import SilenceDeadlines, silence_deadlines
from .states import ACTIVE, NOT_STARTED, TERMINAL, Status


def dataset_upload_path(instance: DatasetBlob | TrainingFile, filename: str) -> str:
    # Content-addressed: the same bytes are stored once whatever they were called.
    ext = "jsonl" if filename.lower().endswith(".jsonl") else "json"
    return f"datasets/{instance.sha256}.{ext}"


class DatasetFormat(models.TextChoices):
    MESSAGES = "messages", "Chat messages"
    TRAINING_PAIRS = "training_pairs", "Training pairs"
    PROMPT_COMPLETION = "prompt_completion", "Prompt / completion"
    UNKNOWN = "unknown", "Unknown"


class DatasetValidationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    VALIDATING = "validating", "Validating"
    VALID = "valid", "Valid"
    INVALID = "invalid", "Invalid"


class DatasetBlob(models.Model):
    """The stored bytes of a dataset, once per content hash, with what validating them found.

    Shared by every user's TrainingFile with these bytes; validated once (a Celery task,
    `training.tasks.validate_dataset`), which copies the results onto those records. Deleted
    with its last record.
    """

    RESULT_FIELDS = ("format", "validation_status", "record_count", "problem_count", "validation_report",
                     "token_stats", "token_stats_model")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sha256 = models.CharField(max_length=64, unique=True, editable=False)
    file = models.FileField(upload_to=dataset_upload_path, max_length=255)
    size_bytes = models.BigIntegerField(default=0, editable=False)
    format = models.CharField(max_length=32, choices=DatasetFormat.choices, default=DatasetFormat.UNKNOWN,
                              editable=False)
    validation_status = models.CharField(max_length=16, choices=DatasetValidationStatus.choices,
                                         default=DatasetValidationStatus.PENDING, editable=False)
    record_count = models.PositiveIntegerField(default=0, editable=False)
    problem_count = models.PositiveIntegerField(default=0, editable=False)
    # {"problems": [...], "warnings": [...], "warning_count": int, "message": str}
    validation_report = models.JSONField(default=dict, blank=True, editable=False)
    token_stats = models.JSONField(default=dict, blank=True, editable=False)
    token_stats_model = models.CharField(max_length=255, blank=True, editable=False)
    # Progress of the validation task: records checked and bytes read so far.
    records_validated = models.BigIntegerField(default=0, editable=False)
    bytes_validated = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    validated_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return self.sha256

    @property
    def is_validated(self) -> bool:
        return self.validation_status in (DatasetValidationStatus.VALID, DatasetValidationStatus.INVALID)

    def results(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.RESULT_FIELDS}

    def publish_results(self) -> int:
        """Copy this blob's status and results onto every record that points at it."""
        return self.records.update(**self.results())


class TrainingFile(models.Model):
    """One user's dataset: a name and description over a shared, content-addressed DatasetBlob.

    The validation results are the blob's, copied here when they change (publish_results), so
    listing, filtering and ordering stay plain column lookups.
    """

    Format = DatasetFormat
    ValidationStatus = DatasetValidationStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    blob = models.ForeignKey(DatasetBlob, null=True, blank=True, on_delete=models.PROTECT, related_name="records",
                             editable=False)
    # The blob's storage key (kept here so everything that opens `training_file.file` works).
    file = models.FileField(upload_to=dataset_upload_path, max_length=255)
    sha256 = models.CharField(max_length=64, editable=False)
    size_bytes = models.BigIntegerField(default=0, editable=False)
    format = models.CharField(max_length=32, choices=Format.choices, default=Format.UNKNOWN, editable=False)
    validation_status = models.CharField(
        max_length=16, choices=ValidationStatus.choices, default=ValidationStatus.PENDING, editable=False
    )
    record_count = models.PositiveIntegerField(default=0, editable=False)
    problem_count = models.PositiveIntegerField(default=0, editable=False)
    # {"problems": [{"line", "field", "reason"}...], "message": str} — capped list, full count above.
    validation_report = models.JSONField(default=dict, blank=True, editable=False)
    # Token statistics computed with `token_stats_model`'s tokenizer.
    token_stats = models.JSONField(default=dict, blank=True, editable=False)
    token_stats_model = models.CharField(max_length=255, blank=True, editable=False)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_files"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_by", "-created_at"])]
        constraints = [
            # One record per user, content and name: the same upload again is the same record, a new
            # name is a new record (over the same stored bytes); another user's identical bytes get their own.
            models.UniqueConstraint(fields=["created_by", "sha256", "name"], name="training_file_unique_per_user"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_trainable(self) -> bool:
        return self.validation_status == self.ValidationStatus.VALID

    @property
    def is_validated(self) -> bool:
        return self.validation_status in (self.ValidationStatus.VALID, self.ValidationStatus.INVALID)

    def untrainable_reason(self) -> str:
        """Why this dataset cannot be trained yet, as one sentence ('' when it can)."""
        if self.is_trainable:
            return ""
        if not self.is_validated:
            progress = self.validation_progress or {}
            so_far = f" ({progress.get('records', 0):,} records checked so far)" if progress.get("records") else ""
            return (f"Dataset '{self.name}' is still being validated{so_far}; create the job once its "
                    "validation_status is valid.")
        return (f"Dataset '{self.name}' is invalid ({self.problem_count} problem(s)); fix the records listed "
                "in its validation report and upload it again.")

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """Records the maximum sequence length would cut ({"line", "field", "reason"}), capped."""
        return list((self.validation_report or {}).get("warnings") or [])

    @property
    def warning_count(self) -> int:
        return int((self.validation_report or {}).get("warning_count") or len(self.warnings))

    @property
    def validation_progress(self) -> dict[str, int] | None:
        """Records checked and bytes read so far by the validation task (None without a blob)."""
        if self.blob_id is None:
            return None
        blob = self.blob
        return {"records": blob.records_validated, "bytes": blob.bytes_validated, "total_bytes": blob.size_bytes}

    # Two counts, each named for what it counts, both read from token_stats (so the API's top-level
    # fields and token_stats never disagree): every token of every conversation (each cut at
    # max_seq_length), and the assistant tokens among them, which are the ones the loss trains on.
    @property
    def total_tokens(self) -> int | None:
        """Tokens in the dataset as trained (each conversation cut at max_seq_length); None when the
        tokenizer could not count them (token_stats then holds a character-based estimate)."""
        return self._token_stat("total_tokens")

    @property
    def trainable_tokens(self) -> int | None:
        """The assistant tokens among total_tokens: what the loss is computed on."""
        return self._token_stat("trainable_tokens")

    def _token_stat(self, key: str) -> int | None:
        value = (self.token_stats or {}).get(key)
        return int(value) if isinstance(value, int | float) else None

    @property
    def problems(self) -> list[dict[str, Any]]:
        """The stored problems ({"line", "field", "reason"}), at most 1000; problem_count has all."""
        return list((self.validation_report or {}).get("problems") or [])

    def report_lines(self) -> list[str]:
        """The problems as sentences: 'line 4: messages[1].content is empty'."""
        return [
            f"line {p.get('line')}: " + " ".join(x for x in (p.get("field"), p.get("reason")) if x)
            for p in self.problems
        ]


class HyperparameterPreset(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=64)
    lora_r = models.PositiveIntegerField()
    lora_alpha = models.PositiveIntegerField()
    lora_dropout = models.FloatField()
    learning_rate = models.FloatField()
    num_epochs = models.FloatField()
    per_device_batch_size = models.PositiveIntegerField()
    gradient_accumulation_steps = models.PositiveIntegerField()
    max_seq_length = models.PositiveIntegerField()
    warmup_ratio = models.FloatField(default=0.03)
    lr_scheduler = models.CharField(max_length=32, default="cosine")
    explanation = models.TextField(help_text="What this preset does, in plain language.")
    best_for = models.TextField()
    sort_order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    HYPERPARAMETER_FIELDS = (
        "lora_r", "lora_alpha", "lora_dropout", "learning_rate", "num_epochs",
        "per_device_batch_size", "gradient_accumulation_steps", "max_seq_length",
        "warmup_ratio", "lr_scheduler",
    )

    class Meta:
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return f"{self.name} (r={self.lora_r}, lr={self.learning_rate:g}, {self.num_epochs:g} epochs)"

    def hyperparameters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.HYPERPARAMETER_FIELDS}


class BaseModel(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=128)
    # What the worker's `base_model` field gets: "embedded:...", a Hub id or a local folder.
    model_id = models.CharField(max_length=255)
    parameter_count = models.BigIntegerField(help_text="Number of parameters, e.g. 70000000000.")
    recommended_gpu = models.CharField(max_length=64, help_text="A key of settings.GPU_TABLE.")
    context_length = models.PositiveIntegerField(default=8192)
    is_embedded = models.BooleanField(default=False, help_text="Runs on this machine's CPU with no download.")
    requires_access = models.BooleanField(default=False, help_text="Gated on the Hub: needs an accepted licence and HF_TOKEN.")
    notes = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["parameter_count"]

    def __str__(self) -> str:
        return self.name

    @property
    def parameters_billions(self) -> float:
        return self.parameter_count / 1e9


class Tag(models.Model):
    name = models.SlugField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConfigurationTemplate(models.Model):
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="templates")
    preset = models.ForeignKey(HyperparameterPreset, null=True, blank=True, on_delete=models.SET_NULL)
    # The job configuration it stands for: hyperparameter overrides and job options.
    configuration = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="training_templates")
    usage_count = models.PositiveIntegerField(default=0, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["created_by", "name"], name="unique_template_name_per_user")]

    def __str__(self) -> str:
        return self.name

    def record_use(self) -> None:
        # F() so that two jobs created from the template at once both count.
        ConfigurationTemplate.objects.filter(pk=self.pk).update(
            usage_count=models.F("usage_count") + 1, last_used_at=timezone.now()
        )


class TrainingJobQuerySet(models.QuerySet):
    def visible_to(self, user) -> TrainingJobQuerySet:
        if user.is_staff or user.groups.filter(name=settings.TRAINING_ALL_JOBS_GROUP).exists():
            return self
        return self.filter(created_by=user)

    def merge_results(self, job_id: Any, **values: Any) -> dict[str, Any]:
        """Set these keys of a job's `results` under its row lock, keeping every other key (the
        apps above training keep their figures there, each under its own key); the merged dict."""
        with transaction.atomic():
            current = self.select_for_update().values_list("results", flat=True).get(pk=job_id)
            merged = {**(current or {}), **values}
            self.filter(pk=job_id).update(results=merged)
        return merged

    def active(self) -> TrainingJobQuerySet:
        return self.filter(status__in=ACTIVE)


class TrainingJob(models.Model):
    class PricingTier(models.TextChoices):
        SPOT = "spot", "Spot (interruptible)"
        ON_DEMAND = "on_demand", "On-demand"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    training_file = models.ForeignKey(TrainingFile, on_delete=models.PROTECT, related_name="jobs")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="jobs")
    preset = models.ForeignKey(HyperparameterPreset, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    template = models.ForeignKey(ConfigurationTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries",
                               help_text="The failed job this one retries.")

    # Configuration, frozen at creation.
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    notes = models.TextField(blank=True)
    client = models.CharField(max_length=255, blank=True)
    project = models.CharField(max_length=255, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="jobs")
    configuration = models.JSONField(default=dict, help_text="Resolved hyperparameters and options.")
    executor = models.CharField(max_length=32, default="local")
    gpu_type = models.CharField(max_length=64, blank=True)
    gpu_pricing_tier = models.CharField(max_length=16, choices=PricingTier.choices, default=PricingTier.SPOT)

    # Status and progress (written by lifecycle.transition and webhook ingestion only).
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.PENDING, editable=False)
    current_stage = models.CharField(max_length=32, blank=True, editable=False)
    progress_percentage = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("0"), editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Cost and duration.
    cost_estimate = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True, editable=False)
    cost_estimate_low = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True, editable=False)
    cost_estimate_high = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True, editable=False)
    estimate = models.JSONField(default=dict, blank=True, editable=False, help_text="The full estimate, per stage.")
    actual_cost = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"), editable=False)
    hourly_rate = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal("0"), editable=False)
    billable_seconds = models.FloatField(default=0, editable=False)
    estimated_duration_minutes = models.PositiveIntegerField(null=True, blank=True, editable=False)
    actual_duration_minutes = models.PositiveIntegerField(null=True, blank=True, editable=False)

    # Execution.
    attempt = models.PositiveIntegerField(default=0, editable=False)
    # The current attempt's launch (its JobAttempt row has the rest: executor ref, rate, bill).
    attempt_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    secret = models.CharField(max_length=64, blank=True, editable=False)
    last_checkpoint_step = models.PositiveIntegerField(null=True, blank=True, editable=False)
    resumed_from_step = models.PositiveIntegerField(null=True, blank=True, editable=False)

    # Latest metrics.
    current_epoch = models.FloatField(null=True, blank=True, editable=False)
    current_step = models.PositiveIntegerField(null=True, blank=True, editable=False)
    total_steps = models.PositiveIntegerField(null=True, blank=True, editable=False)
    latest_loss = models.FloatField(null=True, blank=True, editable=False)
    latest_eval_loss = models.FloatField(null=True, blank=True, editable=False)
    latest_learning_rate = models.FloatField(null=True, blank=True, editable=False)
    latest_perplexity = models.FloatField(null=True, blank=True, editable=False)
    estimated_time_remaining_minutes = models.PositiveIntegerField(null=True, blank=True, editable=False)
    results = models.JSONField(default=dict, blank=True, editable=False, help_text="validation_results and completed payloads.")

    # Trend analysis (monitoring/services.py): the incremental analyser's state, the milestones
    # reached (25/50/75/100) and the quality score computed when the job completes.
    trend_state = models.JSONField(default=dict, blank=True, editable=False)
    milestones = models.JSONField(default=list, blank=True, editable=False)
    quality = models.JSONField(default=dict, blank=True, editable=False)

    # Errors and recovery.
    error_type = models.CharField(max_length=64, blank=True, editable=False)
    error_message = models.TextField(blank=True, editable=False)
    error_suggested_fix = models.TextField(blank=True, editable=False)
    error_details = models.JSONField(default=dict, blank=True, editable=False)
    retry_count = models.PositiveIntegerField(default=0, editable=False)
    checkpoint_recovery_count = models.PositiveIntegerField(default=0, editable=False)
    lost_seconds = models.FloatField(default=0, editable=False, help_text="Training time lost to interruptions.")

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="training_jobs")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TrainingJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["created_by", "-created_at"]),
            models.Index(fields=["preset", "-created_at"]),
            # The beat poll scans active jobs only.
            models.Index(fields=["status"], name="job_active_idx",
                         condition=~Q(status__in=["completed", "failed", "cancelled", "pending"])),
        ]

    def __str__(self) -> str:
        return self.name

    # --- State questions -------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def was_started(self) -> bool:
        return self.status not in NOT_STARTED

    def silence_deadlines(self) -> SilenceDeadlines | None:
        """When the current attempt's worker, silent since its last event (or its launch), is
        late and when it is hung (training/liveness.py; start-up has its own grace)."""
        return silence_deadlines(
            launched_at=self.attempt_started_at, last_heartbeat_at=self.last_heartbeat_at,
            stale_seconds=settings.HEARTBEAT_INTERVAL_SECONDS * settings.HEARTBEAT_STALE_FACTOR,
            startup_grace_seconds=settings.WORKER_STARTUP_GRACE_SECONDS,
            hard_limit_seconds=settings.HEARTBEAT_HARD_LIMIT_SECONDS)

    def heartbeat_is_stale(self, now=None) -> bool:
        """Late: no sign of life past the stale limit (past the start-up grace before the first)."""
        deadlines = self.silence_deadlines()
        return deadlines is not None and (now or timezone.now()) > deadlines.late_at

    def heartbeat_is_hung(self, now=None) -> bool:
        """Silent past HEARTBEAT_HARD_LIMIT_SECONDS: stopped even if its executor says running."""
        deadlines = self.silence_deadlines()
        return deadlines is not None and (now or timezone.now()) > deadlines.hung_at

    # --- The current attempt ---------------------------------------------------------------

    @cached_property
    def current_attempt(self) -> JobAttempt | None:
        """The JobAttempt row of `attempt` (None before the first launch). Cached on the
        instance; refresh_from_db forgets it."""
        if not self.attempt or self._state.adding:  # an unsaved job has no rows
            return None
        return self.attempts.filter(number=self.attempt).first()

    @property
    def attempt_ref(self) -> dict[str, Any]:
        """What the executor recorded when it launched the current attempt (host/pid, pod id,
        log): what its poll, cancel and log_tail read. {} while none is recorded."""
        attempt = self.current_attempt
        return attempt.ref if attempt is not None else {}

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__.pop("current_attempt", None)
        super().refresh_from_db(*args, **kwargs)

    # --- Derived figures -------------------------------------------------------------------

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return self.configuration.get("hyperparameters", {})

    def hyperparameter(self, *names: str) -> Any:
        """A hyperparameter under its worker name, or an alias (per_device_train_batch_size...)."""
        return next((self.hyperparameters[n] for n in names if self.hyperparameters.get(n) is not None), None)

    @property
    def run_summary(self) -> dict[str, Any]:
        """The worker's summary.json as the completed event carried it ({} before)."""
        summary = ((self.results or {}).get("final") or {}).get("summary")
        return summary if isinstance(summary, dict) else {}

    @property
    def elapsed(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.completed_at or timezone.now()) - self.started_at

    def recovery_summary(self) -> str:
        if not self.checkpoint_recovery_count:
            return ""
        minutes = round(self.lost_seconds / 60)
        lost_cost = Decimal(self.lost_seconds / 3600) * self.hourly_rate
        text = f"Interrupted {self.checkpoint_recovery_count}×"
        if self.resumed_from_step is not None:
            text += f", resumed from step {self.resumed_from_step}"
        text += f", {minutes} min lost"
        if lost_cost >= Decimal("0.01"):
            text += f" (${lost_cost.quantize(settings.MONEY)})"
        return text

    def new_secret(self) -> str:
        return secrets.token_urlsafe(32)

    SECRET_MASK = "[secret]"

    def mask_secret(self, value: Any) -> Any:
        """`value` (a string, or JSON-like dicts and lists of them) with this job's webhook secret
        replaced by [secret] wherever it occurs, keys included.

        The one place the secret is hidden from what the worker wrote (error text, event payloads,
        results): every view of them (API, admin, dashboard, error report) goes through here, so
        rows stored before masking existed, or text that quotes the secret, never show it.
        """
        return mask_secret(value, self.secret)


def mask_secret(value: Any, secret: str) -> Any:
    """TrainingJob.mask_secret for a secret at hand (a list of one job's events needs no job row)."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, TrainingJob.SECRET_MASK)
    if isinstance(value, dict):
        return {mask_secret(k, secret): mask_secret(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secret(v, secret) for v in value]
    return value


def dollars(seconds: float, hourly_rate: Decimal) -> Decimal:
    """The price of `seconds` at `hourly_rate` dollars an hour, unrounded (sum, then round)."""
    return Decimal(seconds) / Decimal(3600) * hourly_rate


class JobAttemptQuerySet(models.QuerySet):
    def of(self, job_id: Any, number: int) -> JobAttemptQuerySet:
        return self.filter(job_id=job_id, number=number)

    def interruptions(self) -> JobAttemptQuerySet:
        return self.filter(outcome=JobAttempt.Outcome.INTERRUPTED)

    def locked(self, job_id: Any, number: int, **job_lookups: Any) -> JobAttempt | None:
        """Inside a transaction: lock the job's row if it is still on attempt `number` (and
        matches `job_lookups`, e.g. status__in), then lock and return that attempt's row; None if
        the job moved on. The job's row lock is the one status transitions and webhook ingestion
        take, so nothing moves the job until the caller's transaction ends, and one lock order
        (job, then attempt) everywhere keeps writers from deadlocking. An attempt begun before
        attempts were recorded (or a job made by hand) gets its row from the job's columns."""
        job = TrainingJob.objects.select_for_update().filter(pk=job_id, attempt=number, **job_lookups).first()
        if job is None or number < 1:
            return None
        attempt = self.select_for_update().of(job_id, number).first()
        if attempt is None:
            attempt = JobAttempt.for_job(job)
            attempt.save()
        attempt.job = job
        return attempt

    def record_worker_started(self, job_id: Any, number: int, worker: dict[str, Any], at: Any) -> int:
        """The worker's `started` report: what it says it runs on, and (first report only) when."""
        return self.of(job_id, number).update(worker=worker, started_at=Coalesce(F("started_at"), Value(at)))

    def record_resumed(self, job_id: Any, number: int, step: int) -> int:
        return self.of(job_id, number).update(resumed_from_step=step)


class JobAttempt(models.Model):
    """One attempt of a job: one worker (a local process or a pod) from its launch to its end,
    what it cost and, if it was interrupted, what the interruption lost.

    Attempts are numbered from 1 per job; `TrainingJob.attempt` is the current one's number. A
    recovery closes one (interrupted) and launches the next. The job's cost (`billable_seconds`,
    `actual_cost`) and recovery figures (`checkpoint_recovery_count`, `lost_seconds`) are sums
    over its attempts, cached on the job row by the services that close them.

    The life of a row, one method per step (the services call them holding the job's row lock,
    on the attempt they checked is current):
        launching: created with the move to PROVISIONING; a transient launch failure counts
            `launch_retries` and waits until `retry_at` (note_launch_retry)
        launched: record_launch stores the executor's `ref` and the hourly rate; billed from
            `launched_at` (bill_until), `last_state` follows the executor (note_state),
            `ended_at` is when the executor first saw the worker end (note_end)
        closed: close (the job finished) or record_interruption (lost seconds and dollars);
            `billing_closed` from then on, the bill never changes again
    """

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"
        CANCELLED = "cancelled", "Cancelled"

    # The attempt's outcome when its job ends during it.
    OUTCOME_OF_STATUS = {Status.COMPLETED: Outcome.COMPLETED, Status.FAILED: Outcome.FAILED,
                         Status.CANCELLED: Outcome.CANCELLED}

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    executor = models.CharField(max_length=32)
    pricing_tier = models.CharField(max_length=16, choices=TrainingJob.PricingTier.choices)
    gpu_type = models.CharField(max_length=64, blank=True)
    hourly_rate = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal("0"))
    ref = models.JSONField(default=dict, blank=True,
                           help_text="The executor's own reference: host/pid/log of a process, pod id of a pod.")
    worker = models.JSONField(default=dict, blank=True,
                              help_text="What the worker reported on start: device, quantization, precision, host, pid.")

    launched_at = models.DateTimeField(default=timezone.now, help_text="The move to provisioning; billed from here.")
    ref_recorded_at = models.DateTimeField(null=True, blank=True,
                                           help_text="When the executor's launch returned and its ref was stored.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="The worker's first report.")
    ended_at = models.DateTimeField(null=True, blank=True,
                                    help_text="When the worker was first seen ended, or the attempt was closed.")

    billable_seconds = models.FloatField(default=0)
    billing_closed = models.BooleanField(default=False)

    exit_code = models.IntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    reason = models.TextField(blank=True)
    resumed_from_step = models.PositiveIntegerField(null=True, blank=True)
    lost_seconds = models.FloatField(default=0, help_text="Training since the last committed checkpoint, lost.")
    lost_cost = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"),
                                    help_text="lost_seconds at this attempt's hourly rate.")

    # Launch and poll control.
    launch_retries = models.PositiveIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True, help_text="A transient launch failure's next try.")
    last_launch_error = models.CharField(max_length=64, blank=True)
    last_state = models.CharField(max_length=16, blank=True, help_text="The executor's last answer to a poll.")
    silence_warned = models.CharField(max_length=40, blank=True,
                                      help_text="The silent spell (its start) already warned about.")

    objects = JobAttemptQuerySet.as_manager()

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="one_row_per_attempt")]
        indexes = [models.Index(fields=["job"], name="attempt_open_bill_idx", condition=Q(billing_closed=False))]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.number}"

    @classmethod
    def for_job(cls, job: TrainingJob, **fields: Any) -> JobAttempt:
        """An unsaved row for the job's current attempt, with its executor, tier, GPU and rate."""
        return cls(job=job, number=job.attempt, executor=job.executor, pricing_tier=job.gpu_pricing_tier,
                   gpu_type=job.gpu_type, hourly_rate=job.hourly_rate,
                   launched_at=job.attempt_started_at or timezone.now(), **fields)

    # --- Figures ---------------------------------------------------------------------------

    @property
    def launch_recorded(self) -> bool:
        return self.ref_recorded_at is not None

    @property
    def is_open(self) -> bool:
        return self.launch_recorded and not self.billing_closed

    @property
    def cost(self) -> Decimal:
        return dollars(self.billable_seconds, self.hourly_rate).quantize(settings.MONEY)

    @property
    def lost_minutes(self) -> int:
        return round(self.lost_seconds / 60)

    @property
    def lost_dollars(self) -> Decimal:
        return self.lost_cost.quantize(settings.MONEY)

    @property
    def lost_summary(self) -> str:
        """What the interruption lost, for people: "12 min lost ($0.42)"; "" if nothing."""
        if self.outcome != self.Outcome.INTERRUPTED:
            return ""
        text = f"{self.lost_minutes} min lost"
        return text + (f" (${self.lost_dollars})" if self.lost_dollars >= Decimal("0.01") else "")

    def seconds_until(self, until: Any) -> float:
        return max(0.0, (until - self.launched_at).total_seconds())

    # --- The state machine -----------------------------------------------------------------

    def record_launch(self, ref: dict[str, Any], hourly_rate: Decimal, at: Any) -> None:
        self.ref, self.hourly_rate, self.ref_recorded_at = ref, hourly_rate, at
        self.save(update_fields=["ref", "hourly_rate", "ref_recorded_at"])

    def note_launch_retry(self, error_type: str, retry_at: Any) -> None:
        self.launch_retries += 1
        self.retry_at, self.last_launch_error = retry_at, error_type
        self.save(update_fields=["launch_retries", "retry_at", "last_launch_error"])

    def note_state(self, state: str, exit_code: int | None) -> bool:
        """The executor's answer to a poll; whether it differs from the last one."""
        changed = state != self.last_state
        self.last_state = state
        if exit_code is not None:
            self.exit_code = exit_code
        if changed or exit_code is not None:
            self.save(update_fields=["last_state", "exit_code"])
        return changed

    def note_end(self, at: Any) -> Any:
        """The worker was seen ended: keep the first time (the bill stops there)."""
        if self.ended_at is None:
            self.ended_at = at
            self.save(update_fields=["ended_at"])
        return self.ended_at

    def note_silence_warned(self, key: str) -> bool:
        """Mark the silent spell `key` warned about; False if it already was."""
        if self.silence_warned == key:
            return False
        self.silence_warned = key
        self.save(update_fields=["silence_warned"])
        return True

    def bill_until(self, until: Any) -> bool:
        """Recompute (never add to) the seconds billed, launch to `until`; False once closed or
        before the launch is recorded (nothing runs to pay for)."""
        if not self.is_open:
            return False
        self.billable_seconds = self.seconds_until(until)
        self.save(update_fields=["billable_seconds"])
        return True

    def close(self, outcome: str, *, until: Any, reason: str = "") -> None:
        """The attempt is over: bill it one last time up to `until` and close the bill."""
        if self.launch_recorded and not self.billing_closed:
            self.billable_seconds = self.seconds_until(until)
        self.billing_closed = True
        self.outcome = outcome
        self.reason = reason or self.reason
        self.ended_at = self.ended_at or until
        self.save(update_fields=["billable_seconds", "billing_closed", "outcome", "reason", "ended_at"])

    def record_interruption(self, reason: str, *, at: Any, lost_seconds: float) -> None:
        """Interrupted: closed at its end (or `at`), with the training it lost and that at its rate."""
        until = self.ended_at or at
        if not self.billing_closed:
            # The worker ran, and was paid for, until it ended, whether or not its launch was
            # recorded (a launch task that died mid-way).
            self.billable_seconds = self.seconds_until(until)
        self.lost_seconds = lost_seconds
        self.lost_cost = dollars(lost_seconds, self.hourly_rate)
        self.save(update_fields=["billable_seconds", "lost_seconds", "lost_cost"])
        self.close(self.Outcome.INTERRUPTED, until=until, reason=reason)


class MetricPointQuerySet(models.QuerySet):
    # Rows per INSERT: 16 parameters each, under SQLite's 32,766-variable limit.
    UPSERT_ROWS = 1000

    def store_batch(self, job_id: Any, attempt: int, points: dict[int, dict[str, Any]], reported_at) -> set[int]:
        """Insert or update one row per step in one statement per UPSERT_ROWS points; returns
        the steps that were already stored (their summaries must be recomputed, not merged).

        The merge rule, in SQL so a re-reported step costs what a new one does: within an
        attempt a later partial point (eval_loss only) fills in and never nulls out; a newer
        attempt that re-trains the step replaces the superseded attempt's figures. The caller
        holds the job's row lock (ingestion), so no other batch of the job interleaves."""
        if not points:
            return set()
        steps = sorted(points)
        existing = set(self.filter(job_id=job_id, step__in=steps).order_by().values_list("step", flat=True))
        table = connection.ops.quote_name(self.model._meta.db_table)
        names = self.model.VALUE_FIELDS
        columns = ", ".join(connection.ops.quote_name(c) for c in ("job_id", "attempt", "step", *names, "reported_at"))
        merge = ", ".join(
            f"{q} = CASE WHEN {table}.attempt < excluded.attempt THEN excluded.{q} "
            f"ELSE COALESCE(excluded.{q}, {table}.{q}) END"
            for q in (connection.ops.quote_name(n) for n in names)
        )
        job_value = self.model._meta.get_field("job").get_db_prep_value(job_id, connection)
        at = self.model._meta.get_field("reported_at").get_db_prep_value(reported_at, connection)
        conflict = (f"ON CONFLICT (job_id, step) DO UPDATE SET {merge}, "
                    "attempt = excluded.attempt, reported_at = excluded.reported_at")
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One array per column: a 1,000-point batch is 15 parameters, not 16,000 for the
                # driver to splice into the statement.
                types = [self.model._meta.get_field(n).db_type(connection) for n in ("step", *names)]
                arrays = ", ".join(f"%s::{t}[]" for t in types)
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) SELECT %s, %s, u.*, %s FROM UNNEST({arrays}) AS u {conflict}",
                    [job_value, attempt, at, steps, *([points[step][n] for step in steps] for n in names)],
                )
                return existing
            row = "(" + ", ".join(["%s"] * (len(names) + 4)) + ")"
            for start in range(0, len(steps), self.UPSERT_ROWS):
                chunk = steps[start:start + self.UPSERT_ROWS]
                params: list[Any] = []
                for step in chunk:
                    params += [job_value, attempt, step, *(points[step][n] for n in names), at]
                cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(chunk))} {conflict}",
                               params)
        return existing


class MetricPoint(models.Model):
    """One training step's metrics (seed 002's training_metrics_history). One row per step:
    a repeated or resent point updates the row instead of adding one."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metric_points")
    attempt = models.PositiveIntegerField(default=1)
    step = models.PositiveIntegerField()
    epoch = models.FloatField(null=True, blank=True)
    train_loss = models.FloatField(null=True, blank=True)
    eval_loss = models.FloatField(null=True, blank=True)
    learning_rate = models.FloatField(null=True, blank=True)
    grad_norm = models.FloatField(null=True, blank=True)
    perplexity = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    samples_per_second = models.FloatField(null=True, blank=True)
    gpu_memory_used_mb = models.PositiveIntegerField(null=True, blank=True)
    gpu_memory_total_mb = models.PositiveIntegerField(null=True, blank=True)
    gpu_utilization_pct = models.PositiveSmallIntegerField(null=True, blank=True)
    eta_seconds = models.PositiveIntegerField(null=True, blank=True)
    reported_at = models.DateTimeField(default=timezone.now)

    objects = MetricPointQuerySet.as_manager()

    VALUE_FIELDS = (
        "epoch", "train_loss", "eval_loss", "learning_rate", "grad_norm", "perplexity",
        "tokens_per_second", "samples_per_second", "gpu_memory_used_mb", "gpu_memory_total_mb",
        "gpu_utilization_pct", "eta_seconds",
    )

    class Meta:
        ordering = ["job", "step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="one_metric_point_per_step")]
        indexes = [models.Index(fields=["job", "reported_at"])]

    def __str__(self) -> str:
        return f"{self.job_id} step {self.step}"


class MetricSummary(models.Model):
    """The lowest and highest training loss in one aligned step range [bucket * 2^level,
    (bucket + 1) * 2^level) of a job's metrics, for every level (training.metric_summaries.SUMMARY_LEVELS).
    Kept current by services.metric_summaries as batches are stored, so the downsampled metrics
    API reads a few hundred of these instead of the whole history."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metric_summaries")
    level = models.PositiveSmallIntegerField()
    bucket = models.BigIntegerField()
    first_step = models.PositiveIntegerField()
    lo_step = models.PositiveIntegerField(null=True)
    lo_value = models.FloatField(null=True)
    hi_step = models.PositiveIntegerField(null=True)
    hi_value = models.FloatField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "level", "bucket"], name="one_summary_per_range")]

    def __str__(self) -> str:
        return f"{self.job_id} level {self.level} range {self.bucket}"


class JobEvent(models.Model):
    """Everything that happened to a job: worker reports (seed 002's training_webhook_events),
    status changes, user actions and anomalies."""

    class Type(models.TextChoices):
        STATUS_CHANGED = "status_changed"
        STARTED = "started"
        STAGE_CHANGED = "stage_changed"
        METRICS = "metrics"
        HEARTBEAT = "heartbeat"
        CHECKPOINT_SAVED = "checkpoint_saved"
        INTERRUPTED = "interrupted"
        RESUMED = "resumed"
        ERROR = "error"
        VALIDATION_RESULTS = "validation_results"
        VALIDATION_FINISHED = "validation_finished"
        REVIEW = "review"  # QA's review of the model: new_status is its state
        COMPLETED = "completed"
        LAUNCHED = "launched"
        POD_STATE = "pod_state"
        ACTION = "action"
        ANOMALY = "anomaly"
        MILESTONE = "milestone"
        LAUNCH_RETRY = "launch_retry"
        FALLBACK = "fallback"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"
        CRITICAL = "critical"

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=64, choices=Type.choices)
    payload = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=32, default="worker")
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.INFO)
    # The webhook-id header: the idempotency key of a worker report.
    webhook_id = models.CharField(max_length=128, null=True, blank=True, unique=True)
    attempt = models.PositiveIntegerField(null=True, blank=True)
    seq = models.PositiveIntegerField(null=True, blank=True)
    # Structured fields, so that receivers (emails, alerts) never parse the human message back.
    old_status = models.CharField(max_length=32, blank=True, help_text="status_changed: the status it left.")
    new_status = models.CharField(max_length=32, blank=True, help_text="status_changed: the status it entered.")
    anomaly_kind = models.CharField(max_length=32, blank=True,
                                    help_text="anomaly: divergence, overfitting, plateau, spike, stall, heartbeat_stale, ...")
    milestone_percent = models.PositiveSmallIntegerField(null=True, blank=True, help_text="milestone: 25, 50, 75 or 100.")
    step = models.PositiveIntegerField(null=True, blank=True, help_text="The training step the event is about.")
    # A report stored without effect (answered 200 so the worker does not resend it): why.
    processing_error = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["received_at", "id"]
        indexes = [
            models.Index(fields=["job", "event_type"]),
            models.Index(fields=["job", "received_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} ({self.job_id})"
