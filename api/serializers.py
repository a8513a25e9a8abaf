"""Serializers: shapes in and out. They validate input and hand it to the services; they
never change a job's state."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_slug
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api_errors import validation_error_detail
from training.defaults import DEFAULT_PRESET_SLUG
from training.metric_summaries import MIN_MAX_POINTS
from training.models import (
    BaseModel,
    ConfigurationTemplate,
    HyperparameterPreset,
    JobAttempt,
    JobEvent,
    MetricPoint,
    TrainingFile,
    TrainingJob,
    mask_secret,
)
from training.services.jobs import resolve_configuration
from training.services.progress import job_progress

from .permissions import scope_to_user


class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A reference to a row the requesting user may see; anything else reads as "does not
    exist", so a foreign id is indistinguishable from a missing one."""

    def get_queryset(self):
        return scope_to_user(super().get_queryset(), self.context["request"].user)


# --- Catalogue -------------------------------------------------------------------------------


class PresetSerializer(serializers.ModelSerializer):
    hyperparameters = serializers.DictField(read_only=True)

    class Meta:
        model = HyperparameterPreset
        fields = [
            "slug", "name", "explanation", "best_for", "sort_order", "hyperparameters",
            *HyperparameterPreset.HYPERPARAMETER_FIELDS,
        ]


class BaseModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = BaseModel
        fields = [
            "slug", "name", "model_id", "parameter_count", "parameters_billions", "recommended_gpu",
            "context_length", "is_embedded", "requires_access", "notes",
        ]


# --- Training files --------------------------------------------------------------------------


class TrainingFileSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    is_trainable = serializers.BooleanField(read_only=True)

    class Meta:
        model = TrainingFile
        fields = [
            "id", "name", "description", "format", "validation_status", "is_trainable", "record_count",
            "problem_count", "size_bytes", "sha256", "created_by", "created_at",
        ]
        read_only_fields = fields


class DatasetProblemSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="The line the record starts on (1-based).")
    field = serializers.CharField(help_text="The field at fault; empty for the whole record.")
    reason = serializers.CharField()
    record = serializers.IntegerField(required=False, help_text="The record's 1-based index in a JSON array file.")


class ValidationProgressSerializer(serializers.Serializer):
    records = serializers.IntegerField(help_text="Records checked so far.")
    bytes = serializers.IntegerField(help_text="Bytes read so far.")
    total_bytes = serializers.IntegerField()


class TrainingFileDetailSerializer(TrainingFileSerializer):
    total_tokens = serializers.IntegerField(
        read_only=True, allow_null=True,
        help_text="Tokens in the dataset as trained (each conversation cut at max_seq_length): "
                  "token_stats.total_tokens. Null when only a character-based estimate exists.")
    trainable_tokens = serializers.IntegerField(
        read_only=True, allow_null=True,
        help_text="The assistant tokens among total_tokens, the ones the loss trains on: token_stats.trainable_tokens.")
    problems = DatasetProblemSerializer(many=True, read_only=True,
                                        help_text="Errors by line, field and reason (at most 1000; problem_count has all).")
    warnings = DatasetProblemSerializer(
        many=True, read_only=True,
        help_text="Records the maximum sequence length would cut, by line (not errors: the file stays valid).")
    warning_count = serializers.IntegerField(read_only=True)
    validation_progress = ValidationProgressSerializer(
        read_only=True, allow_null=True, help_text="The background validation's progress.")

    class Meta(TrainingFileSerializer.Meta):
        fields = [
            *TrainingFileSerializer.Meta.fields, "validation_report", "problems", "warnings", "warning_count",
            "validation_progress", "token_stats", "token_stats_model", "total_tokens", "trainable_tokens",
        ]
        read_only_fields = fields


class TrainingFileUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A JSON or JSONL file of training records.")
    name = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                 help_text="Defaults to the uploaded file's name without its extension.")
    description = serializers.CharField(required=False, allow_blank=True, default="")


# --- Jobs ------------------------------------------------------------------------------------


def validate_tags(tags: list[str]) -> list[str]:
    cleaned = []
    for tag in tags:
        tag = tag.strip().lower()
        try:
            validate_slug(tag)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                f"'{tag}' is not a tag: use letters, numbers, hyphens or underscores."
            ) from exc
        cleaned.append(tag)
    return list(dict.fromkeys(cleaned))


class JobOptionsSerializer(serializers.Serializer):
    """Fields shared by every way of creating a job."""

    training_file = ScopedPrimaryKeyRelatedField(queryset=TrainingFile.objects.all())
    overrides = serializers.DictField(
        required=False, default=dict,
        help_text="Hyperparameters and job options (executor, gpu_type, gpu_pricing_tier) to change.",
    )
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    client = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    project = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list
    )

    def validate_tags(self, tags: list[str]) -> list[str]:
        return validate_tags(tags)


class JobCreateSerializer(JobOptionsSerializer):
    preset = serializers.SlugRelatedField(
        slug_field="slug", queryset=HyperparameterPreset.objects.filter(is_active=True),
        required=False, allow_null=True, help_text=f"Preset slug; '{DEFAULT_PRESET_SLUG}' when neither preset, template nor overrides are given.",
    )
    template = ScopedPrimaryKeyRelatedField(
        queryset=ConfigurationTemplate.objects.all(), required=False, allow_null=True,
    )
    base_model = serializers.SlugRelatedField(
        slug_field="slug", queryset=BaseModel.objects.filter(is_active=True), required=False, allow_null=True,
        help_text="Base model slug; the template's, else the embedded model.",
    )


class TemplateJobCreateSerializer(JobOptionsSerializer):
    pass


class RetrySerializer(serializers.Serializer):
    overrides = serializers.DictField(
        required=False, allow_null=True, default=None,
        help_text="Settings to change; omitted: the failure's suggested change, if any.",
    )


class SaveAsTemplateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class JobSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingJob
        fields = ["id", "name", "status", "created_at"]
        read_only_fields = fields


class JobListSerializer(serializers.ModelSerializer):
    training_file = serializers.PrimaryKeyRelatedField(read_only=True)
    training_file_name = serializers.CharField(source="training_file.name", read_only=True)
    base_model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    preset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    tags = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = TrainingJob
        fields = [
            "id", "name", "status", "current_stage", "progress_percentage", "training_file",
            "training_file_name", "base_model", "preset", "template", "parent", "client", "project", "tags",
            "executor", "gpu_type", "gpu_pricing_tier", "cost_estimate", "actual_cost",
            "estimated_duration_minutes", "latest_loss", "created_by", "created_at", "started_at",
            "completed_at",
        ]
        read_only_fields = fields


class JobAttemptSerializer(serializers.ModelSerializer):
    """One attempt of a job: its worker's executor, tier, GPU and rate, when it ran, what it cost,
    how it ended and, if interrupted, the training minutes and dollars it lost."""

    cost = serializers.DecimalField(max_digits=10, decimal_places=2, read_only=True)
    lost_minutes = serializers.IntegerField(read_only=True)
    lost_dollars = serializers.DecimalField(max_digits=10, decimal_places=2, read_only=True)
    lost_summary = serializers.CharField(read_only=True, help_text='For people: "12 min lost ($0.42)".')

    class Meta:
        model = JobAttempt
        fields = [
            "number", "executor", "pricing_tier", "gpu_type", "hourly_rate", "launched_at", "started_at",
            "ended_at", "billable_seconds", "cost", "outcome", "reason", "exit_code", "resumed_from_step",
            "lost_seconds", "lost_minutes", "lost_dollars", "lost_summary",
        ]
        read_only_fields = fields


class JobDetailSerializer(JobListSerializer):
    parent = JobSummarySerializer(read_only=True, allow_null=True)
    attempts = JobAttemptSerializer(many=True, read_only=True)
    # The current attempt's executor reference (kept under its old name for API clients).
    executor_ref = serializers.DictField(source="attempt_ref", read_only=True)
    retries = JobSummarySerializer(many=True, read_only=True)
    recovery_summary = serializers.CharField(read_only=True)
    hyperparameters = serializers.DictField(read_only=True)
    elapsed_seconds = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField(help_text=(
        "Live progress from the latest heartbeat: step, total_steps, validation {done, total} while "
        "validating, eta_seconds (the whole job) and stage_eta_seconds, basis (\"measured\" step or "
        "sample times, or \"estimate\" before the first), overdue. A finished job: its final step, "
        "no ETA."))

    class Meta(JobListSerializer.Meta):
        fields = [
            *JobListSerializer.Meta.fields,
            "description", "notes", "configuration", "hyperparameters", "updated_at",
            # Cost and duration
            "cost_estimate_low", "cost_estimate_high", "estimate", "hourly_rate", "billable_seconds",
            "actual_duration_minutes", "elapsed_seconds",
            # Execution
            "attempt", "executor_ref", "attempt_started_at", "last_heartbeat_at", "last_checkpoint_step",
            "resumed_from_step",
            # Latest metrics
            "current_epoch", "current_step", "total_steps", "latest_eval_loss", "latest_learning_rate",
            "latest_perplexity", "estimated_time_remaining_minutes", "progress", "results",
            # Errors and recovery
            "error_type", "error_message", "error_suggested_fix", "error_details", "retry_count",
            "checkpoint_recovery_count", "lost_seconds", "recovery_summary", "retries", "attempts",
        ]
        read_only_fields = fields

    def get_elapsed_seconds(self, job: TrainingJob) -> float | None:
        return job.elapsed.total_seconds() if job.elapsed is not None else None

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_progress(self, job: TrainingJob) -> dict[str, Any]:
        return job_progress(job)

    def to_representation(self, job: TrainingJob):
        # error_message, error_details and results are the worker's text: they may quote the secret.
        data = job.mask_secret(super().to_representation(job))
        if job.is_terminal:  # rows finished before the transition cleared it
            data["estimated_time_remaining_minutes"] = None
        return data


class RetryResultSerializer(serializers.Serializer):
    job = JobDetailSerializer()
    changes = serializers.DictField(
        child=serializers.DictField(), help_text='{setting: {"from": old, "to": new}}'
    )


# --- Metrics and events ----------------------------------------------------------------------


class MetricPointSerializer(serializers.ModelSerializer):
    class Meta:
        model = MetricPoint
        fields = ["step", "attempt", *MetricPoint.VALUE_FIELDS, "reported_at"]
        read_only_fields = fields


class MetricsQuerySerializer(serializers.Serializer):
    max_points = serializers.IntegerField(
        required=False, min_value=MIN_MAX_POINTS, max_value=100_000,
        help_text="Downsample to at most this many points, keeping each step range's lowest and highest train_loss.",
    )


class RecommendationSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["continue", "stop_early", "use_checkpoint"])
    checkpoint_step = serializers.IntegerField(allow_null=True, help_text="With use_checkpoint: the step to use.")
    reason = serializers.CharField()


class TrendAnalysisSerializer(serializers.Serializer):
    """monitoring.recommendation.trend_summary: kept up to date as each metrics batch arrives."""

    best_step = serializers.IntegerField(allow_null=True, help_text="Step of the lowest held-out loss.")
    best_eval_loss = serializers.FloatField(allow_null=True)
    latest_step = serializers.IntegerField(allow_null=True)
    analysed_through_step = serializers.IntegerField(
        allow_null=True, help_text="The window detectors wait for a few later points, so they trail the latest step.")
    steps_since_improvement = serializers.IntegerField(allow_null=True)
    evaluations_since_improvement = serializers.IntegerField()
    diverged_at_step = serializers.IntegerField(allow_null=True)
    overfitting_since_step = serializers.IntegerField(allow_null=True)
    plateau = serializers.BooleanField()
    recommendation = RecommendationSerializer()


class MetricsSerializer(serializers.Serializer):
    job = serializers.UUIDField()
    total_points = serializers.IntegerField(help_text="Points in the full history.")
    downsampled = serializers.BooleanField()
    analysis = TrendAnalysisSerializer(help_text="Trend analysis and the recommendation: continue, stop early, "
                                                 "or use a checkpoint.")
    points = MetricPointSerializer(many=True)


class JobEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = [
            "id", "event_type", "severity", "source", "attempt", "seq", "old_status", "new_status",
            "anomaly_kind", "milestone_percent", "step", "payload", "processing_error", "received_at",
        ]
        read_only_fields = fields

    def to_representation(self, event: JobEvent):
        # The payload is the worker's: masked with the job's secret, which the caller listing one
        # job's events passes as context["job_secret"] (else one query per event for it).
        secret = self.context.get("job_secret")
        if secret is None:
            secret = event.job.secret
        return mask_secret(super().to_representation(event), secret)


# --- Templates -------------------------------------------------------------------------------


class TemplateSerializer(serializers.ModelSerializer):
    base_model = serializers.SlugRelatedField(slug_field="slug", queryset=BaseModel.objects.filter(is_active=True))
    preset = serializers.SlugRelatedField(
        slug_field="slug", queryset=HyperparameterPreset.objects.filter(is_active=True), required=False, allow_null=True,
    )
    configuration = serializers.DictField(
        required=False, default=dict, help_text="Hyperparameter overrides and job options, as in a job's `overrides`."
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ConfigurationTemplate
        fields = [
            "id", "name", "description", "base_model", "preset", "configuration", "created_by",
            "usage_count", "last_used_at", "created_at",
        ]
        read_only_fields = ["id", "created_by", "usage_count", "last_used_at", "created_at"]

    def validate(self, attrs):
        owner = self.instance.created_by if self.instance else self.context["request"].user
        name = attrs.get("name", getattr(self.instance, "name", None))
        clash = ConfigurationTemplate.objects.filter(created_by=owner, name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"name": f"There is already a template called '{name}'."})
        base_model = attrs.get("base_model", getattr(self.instance, "base_model", None))
        preset = attrs["preset"] if "preset" in attrs else getattr(self.instance, "preset", None)
        configuration = attrs.get("configuration", getattr(self.instance, "configuration", {}))
        try:
            resolve_configuration(base_model=base_model, preset=preset, overrides=configuration)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"configuration": validation_error_detail(exc)}) from exc
        return attrs


# --- Cost estimate ---------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class JSONObjectField(serializers.Field):
    """A JSON object passed as a query-string value."""

    default_error_messages = {"invalid": "Must be a JSON object, e.g. {{\"lora_r\": 32}}."}

    def to_internal_value(self, data):
        if isinstance(data, dict):
            return data
        try:
            value = json.loads(data)
        except (TypeError, ValueError):
            self.fail("invalid")
        if not isinstance(value, dict):
            self.fail("invalid")
        return value

    def to_representation(self, value):
        return json.dumps(value)


class CostEstimateQuerySerializer(serializers.Serializer):
    training_file = ScopedPrimaryKeyRelatedField(queryset=TrainingFile.objects.all())
    base_model = serializers.SlugRelatedField(
        slug_field="slug", queryset=BaseModel.objects.filter(is_active=True), required=False,
        help_text="Base model slug; the embedded model when omitted.",
    )
    preset = serializers.SlugRelatedField(
        slug_field="slug", queryset=HyperparameterPreset.objects.filter(is_active=True), required=False,
        help_text=f"Preset slug; '{DEFAULT_PRESET_SLUG}' when neither preset nor overrides are given.",
    )
    gpu_type = serializers.CharField(required=False)
    pricing_tier = serializers.ChoiceField(choices=TrainingJob.PricingTier.choices, required=False)
    overrides = JSONObjectField(required=False, help_text="JSON object of hyperparameters to change.")
