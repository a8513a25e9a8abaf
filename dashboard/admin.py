"""The Django admin: the operators' main UI.

Jobs are created, started, cancelled and retried only through `training.services.jobs`, and
datasets are uploaded only through `training.services.datasets`, exactly as the API does; the
admin never writes a field the lifecycle or the worker owns. A refused action is a warning
message, never an error page.
"""

from __future__ import annotations

import copy
import json
import logging
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import HttpResponseRedirect, JsonResponse
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from artifacts.admin import download_urls
from core import humanize
from gpu_worker.config import ConfigError, WorkerConfig
from training import defaults
from training.executors import EXECUTORS
from training.lifecycle import IllegalTransition, Status
from training.models import (
    BaseModel,
    ConfigurationTemplate,
    HyperparameterPreset,
    JobEvent,
    MetricPoint,
    Tag,
    TrainingFile,
    TrainingJob,
)
from training.services import jobs as job_services
from training.services.datasets import delete_training_file, ingest_training_file
from training.uploads import upload_too_large
from validation import review_admin
from validation.models import can_decide

from .forms import OVERRIDE_FIELDS, UPLOAD_TOO_LARGE, TrainingFileUploadForm, TrainingJobCreateForm
from .views import dashboard_urls, stage_text

logger = logging.getLogger(__name__)

admin.site.site_header = "LoRA fine-tuning"
admin.site.site_title = "LoRA fine-tuning"
admin.site.index_title = "Datasets, presets and training jobs"

STATUS_COLORS = {
    Status.PENDING: "#6b7280",
    Status.QUEUED: "#2563eb",
    Status.PROVISIONING: "#0891b2",
    Status.PREPROCESSING: "#0891b2",
    Status.MODEL_LOADING: "#0891b2",
    Status.TRAINING: "#7c3aed",
    Status.FINALIZING: "#7c3aed",
    Status.VALIDATING: "#7c3aed",
    Status.RECOVERING: "#d97706",
    Status.COMPLETED: "#16a34a",
    Status.FAILED: "#dc2626",
    Status.CANCELLED: "#9ca3af",
}
VALIDATION_COLORS = {"valid": "#16a34a", "invalid": "#dc2626", "pending": "#6b7280"}


def badge(label: str, color: str):
    return format_html(
        '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;'
        'font-size:11px;font-weight:600;white-space:nowrap">{}</span>', color, label,
    )


def progress_bar(percentage, width_px: int = 90) -> str:
    pct = max(0.0, min(100.0, float(percentage or 0)))
    return format_html(
        '<div style="display:flex;align-items:center;gap:6px">'
        '<div style="width:{}px;height:8px;background:#e5e7eb;border-radius:4px;overflow:hidden">'
        '<div style="width:{}%;height:8px;background:#16a34a"></div></div><span>{}%</span></div>',
        width_px, f"{pct:.1f}", f"{pct:.0f}",
    )


def minutes_text(minutes: float | None) -> str:
    if minutes is None:
        return "—"
    minutes = round(minutes)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"




def setting_text(value: Any) -> str:
    """A configured value: floats to four significant digits (2e-4 stays 0.0002), lists joined."""
    if isinstance(value, float):
        return humanize.significant(value, trim=True)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "—" if value is None else str(value)


def pretty_json(value: Any):
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', json.dumps(value, indent=2, default=str))


def messages_of(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def estimate_table(estimate: dict[str, Any]):
    """The per-stage breakdown of an estimate dict, as a small HTML table (the raw JSON for an
    estimate in an older or foreign shape: a job page must render whatever is stored)."""
    if not estimate:
        return "—"
    try:
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>",
            ((name.replace("_", " ").capitalize(), minutes_text(float(m))) for name, m in estimate["stages"].items()),
        )
        throughput = estimate.get("throughput") or {}
        return format_html(
            "<p><strong>{}</strong><br>Expected: {}, ${}</p><table><tbody>{}</tbody></table>"
            "<p>{} steps · {} tokens processed · {} tokens/s ({})</p>",
            estimate.get("summary", ""), minutes_text(float(estimate["duration_minutes"]["expected"])),
            estimate["cost"]["expected"], rows, estimate.get("total_steps", "?"),
            f"{int(estimate.get('tokens_processed') or 0):,}", f"{float(throughput.get('tokens_per_second') or 0):.1f}",
            throughput.get("note") or throughput.get("source", ""),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return pretty_json(estimate)


# --- Datasets ---------------------------------------------------------------------------------


@admin.register(TrainingFile)
class TrainingFileAdmin(admin.ModelAdmin):
    list_display = ("name", "validation_badge", "format", "record_count", "problem_count", "size",
                    "tokens", "created_by", "created_at")
    list_filter = ("validation_status", "format", "created_at", "created_by")
    search_fields = ("name", "description", "sha256")
    date_hierarchy = "created_at"
    list_select_related = ("created_by",)
    add_form_template = "admin/training/trainingfile/add_form.html"
    # The add page uploads a file through the service (as UserAdmin's add_form creates a user);
    # the change page shows what validation found.
    add_form = TrainingFileUploadForm
    add_fieldsets = ((None, {"fields": ("file", "name", "description")}),)
    fieldsets = (
        (None, {"fields": ("name", "description", "validation_badge", "validation_message")}),
        ("File", {"fields": ("file", "format", "record_count", "size", "sha256", "created_by", "created_at", "used_by")}),
        ("Problems", {"fields": ("problems_table",)}),
        ("Warnings", {"fields": ("warnings_table",)}),
        ("Token statistics", {"fields": ("token_stats_model", "token_stats_table")}),
    )
    readonly_fields = ("validation_badge", "validation_message", "file", "format", "record_count", "size",
                       "sha256", "created_by", "created_at", "used_by", "problems_table", "warnings_table",
                       "token_stats_model", "token_stats_table")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("blob").annotate(job_count=Count("jobs"))

    @admin.display(description="Validation", ordering="validation_status")
    def validation_badge(self, obj: TrainingFile):
        label = obj.get_validation_status_display()
        progress = obj.validation_progress if not obj.is_validated else None
        if progress and progress["total_bytes"]:
            label = f"{label} ({progress['bytes'] * 100 // progress['total_bytes']}%, {progress['records']:,} records)"
        return badge(label, VALIDATION_COLORS.get(obj.validation_status, "#6b7280"))

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, obj: TrainingFile) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="Tokens")
    def tokens(self, obj: TrainingFile) -> str:
        stats = obj.token_stats or {}
        for key, prefix in (("total_tokens", ""), ("estimated_total_tokens", "~")):
            if isinstance(stats.get(key), int | float):
                return f"{prefix}{round(stats[key]):,}"
        return "—"

    @admin.display(description="Report")
    def validation_message(self, obj: TrainingFile) -> str:
        return (obj.validation_report or {}).get("message") or "—"

    @admin.display(description="Used by")
    def used_by(self, obj: TrainingFile) -> str:
        count = getattr(obj, "job_count", None)
        count = obj.jobs.count() if count is None else count
        return f"{count} job{'s' if count != 1 else ''}"

    @admin.display(description="Problems (line, field, reason)")
    def problems_table(self, obj: TrainingFile):
        problems = obj.problems
        if not problems:
            return "No problems." if obj.validation_status == TrainingFile.ValidationStatus.VALID else "—"
        rows = format_html_join(
            "", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            ((p.get("line"), p.get("field") or "(record)", p.get("reason")) for p in problems),
        )
        hidden = obj.problem_count - len(problems)
        more = format_html("<p>… and {} more not stored.</p>", hidden) if hidden > 0 else ""
        return format_html("<table><thead><tr><th>Line</th><th>Field</th><th>Reason</th></tr></thead>"
                           "<tbody>{}</tbody></table>{}", rows, more)

    @admin.display(description="Records the maximum sequence length would cut (line, reason)")
    def warnings_table(self, obj: TrainingFile):
        warnings = obj.warnings
        if not warnings:
            return "None." if obj.is_validated else "—"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>",
                                ((w.get("line"), w.get("reason")) for w in warnings))
        hidden = obj.warning_count - len(warnings)
        more = format_html("<p>… and {} more not stored.</p>", hidden) if hidden > 0 else ""
        return format_html("<table><thead><tr><th>Line</th><th>Reason</th></tr></thead>"
                           "<tbody>{}</tbody></table>{}", rows, more)

    @admin.display(description="Statistics")
    def token_stats_table(self, obj: TrainingFile):
        stats = obj.token_stats or {}
        if not stats:
            return "—"
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>",
                                ((k.replace("_", " "), f"{v:,.1f}" if isinstance(v, float) else v) for k, v in stats.items()))
        return format_html("<table><tbody>{}</tbody></table>", rows)

    def delete_model(self, request, obj: TrainingFile) -> None:
        self.delete_queryset(request, TrainingFile.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset) -> None:
        # The stored bytes are shared by every record with the same content: each goes with
        # its last record, once the deletion has committed (a rolled-back delete keeps them).
        with transaction.atomic():
            for record in queryset:
                delete_training_file(record)

    # --- add: upload through the service -------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else super().get_readonly_fields(request, obj)

    def get_form(self, request, obj=None, **kwargs):
        options = {}
        if obj is None:
            options["form"] = self.add_form
        options.update(kwargs)
        form = super().get_form(request, obj, **options)
        if obj is None:
            # The upload handler stopped the file at the limit (or never read it: its declared
            # length was over): the form refuses it as the API does. The body has been parsed
            # by now (the CSRF check and changeform_view read request.POST first).
            form.upload_refused = request.method == "POST" and upload_too_large(request)
        return form

    def add_view(self, request, form_url="", extra_context=None):
        return super().add_view(request, form_url, {"title": "Upload a dataset", **(extra_context or {})})

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        # Stored by the service the API uses; the form's clean refused what it would refuse.
        data = form.cleaned_data
        return ingest_training_file(uploaded=data["file"], name=data["name"], user=request.user,
                                    description=data["description"])

    def save_model(self, request, obj: TrainingFile, form, change: bool) -> None:
        if change:  # a new record was saved by ingest_training_file (save_form)
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)

    def log_addition(self, request, obj: TrainingFile, message):
        # These exact bytes were already this user's: their record was returned, nothing added.
        if obj.was_duplicate:
            return None
        return super().log_addition(request, obj, message)

    def response_add(self, request, obj: TrainingFile, post_url_continue=None):
        url = reverse("admin:training_trainingfile_change", args=[obj.pk])
        if obj.was_duplicate:
            self.message_user(request, format_html(
                'These exact bytes were already uploaded as <a href="{}">{}</a>; nothing new was stored.',
                url, obj.name), messages.WARNING)
        elif not obj.is_validated:
            self.message_user(request, f"Dataset '{obj.name}' was stored and is being validated in the "
                              "background; this page shows its progress.", messages.INFO)
        elif obj.is_trainable:
            self.message_user(request, f"Dataset '{obj.name}' is valid: "
                              f"{(obj.validation_report or {}).get('message', '')}", messages.SUCCESS)
        else:
            self.message_user(request, f"Dataset '{obj.name}' was stored but is invalid and cannot be "
                              f"trained: {(obj.validation_report or {}).get('message', '')}", messages.WARNING)
        return HttpResponseRedirect(url)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        response = super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)
        # An upload refused for its size is answered 413, as the API answers it.
        if add and context["adminform"].form.has_error("file", UPLOAD_TOO_LARGE):
            response.status_code = 413
        return response


# --- Catalogue --------------------------------------------------------------------------------


class HyperparameterPresetForm(forms.ModelForm):
    class Meta:
        model = HyperparameterPreset
        fields = "__all__"

    def clean(self):
        data = super().clean()
        hyper = {name: data[name] for name in HyperparameterPreset.HYPERPARAMETER_FIELDS if data.get(name) is not None}
        if len(hyper) == len(HyperparameterPreset.HYPERPARAMETER_FIELDS):
            try:
                WorkerConfig.from_dict({"job_id": "validation", "dataset": "validation", **hyper})
            except (ConfigError, TypeError) as exc:
                field, _, reason = str(exc).partition(":")
                if field in self.fields:
                    self.add_error(field, reason.strip() or str(exc))
                else:
                    raise ValidationError(str(exc)) from exc
        return data


@admin.register(HyperparameterPreset)
class HyperparameterPresetAdmin(admin.ModelAdmin):
    form = HyperparameterPresetForm
    list_display = ("name", "slug", "lora_r", "lora_alpha", "learning_rate", "num_epochs", "per_device_batch_size",
                    "gradient_accumulation_steps", "max_seq_length", "sort_order", "is_active")
    list_filter = ("is_active", "lr_scheduler")
    search_fields = ("name", "slug", "explanation", "best_for")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "sort_order", "is_active", "explanation", "best_for")}),
        ("LoRA", {"fields": ("lora_r", "lora_alpha", "lora_dropout")}),
        ("Optimisation", {"fields": ("learning_rate", "num_epochs", "per_device_batch_size",
                                     "gradient_accumulation_steps", "max_seq_length", "warmup_ratio", "lr_scheduler")}),
    )


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ("name", "model_id", "parameters", "recommended_gpu", "context_length", "is_embedded",
                    "requires_access", "is_active")
    list_filter = ("is_active", "is_embedded", "requires_access", "recommended_gpu")
    search_fields = ("name", "slug", "model_id", "notes")
    prepopulated_fields = {"slug": ("name",)}

    @admin.display(description="Parameters", ordering="parameter_count")
    def parameters(self, obj: BaseModel) -> str:
        return f"{obj.parameters_billions:.1f} B" if obj.parameters_billions >= 1 else f"{obj.parameter_count / 1e6:.0f} M"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "recommended_gpu":
            return forms.ChoiceField(choices=[(k, f"{k} ({v.get('label', k)})") for k, v in settings.GPU_TABLE.items()],
                                     help_text=db_field.help_text)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "job_count")
    search_fields = ("name",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(job_count=Count("jobs"))

    @admin.display(description="Jobs", ordering="job_count")
    def job_count(self, obj: Tag) -> int:
        return obj.job_count


class ConfigurationTemplateForm(forms.ModelForm):
    class Meta:
        model = ConfigurationTemplate
        fields = ("name", "description", "base_model", "preset", "configuration", "created_by")

    def clean(self):
        data = super().clean()
        if data.get("base_model") and isinstance(data.get("configuration"), dict):
            template = ConfigurationTemplate(base_model=data["base_model"], configuration=data["configuration"])
            try:
                job_services.resolve_configuration(base_model=data["base_model"], preset=data.get("preset"),
                                                   template=template)
            except ValidationError as exc:
                raise ValidationError([f"configuration: {m}" for m in exc.messages]) from exc
        return data


@admin.register(ConfigurationTemplate)
class ConfigurationTemplateAdmin(admin.ModelAdmin):
    form = ConfigurationTemplateForm
    list_display = ("name", "base_model", "preset", "created_by", "usage_count", "last_used_at", "created_at")
    list_filter = ("base_model", "preset", "created_by", "created_at")
    search_fields = ("name", "description")
    date_hierarchy = "created_at"
    list_select_related = ("base_model", "preset", "created_by")
    readonly_fields = ("usage_count", "last_used_at", "created_at")

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


# --- Jobs -------------------------------------------------------------------------------------

# The change page's remaining-time row, left out of a finished job's page.
TIME_LEFT = "time_left"


class RecentEventsFormSet(forms.BaseInlineFormSet):
    LIMIT = 50

    def get_queryset(self):
        # The newest events only: a long job has thousands, most of them metrics and heartbeats.
        qs = super().get_queryset()
        recent = list(qs.order_by("-received_at", "-id").values_list("pk", flat=True)[: self.LIMIT])
        # The job (its secret masks each summary) once, not once per row.
        return qs.filter(pk__in=recent).select_related("job").order_by("-received_at", "-id")


class JobEventInline(admin.TabularInline):
    model = JobEvent
    formset = RecentEventsFormSet
    verbose_name_plural = f"Recent events (newest {RecentEventsFormSet.LIMIT})"
    fields = ("received_at", "event_type", "severity", "source", "attempt", "summary")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="Details")
    def summary(self, obj: JobEvent) -> str:
        payload = obj.job.mask_secret(obj.payload or {})
        for key in ("message", "error_message", "reason", "action"):
            if payload.get(key):
                return str(payload[key])[:200]
        if "from" in payload and "to" in payload:
            return f"{payload['from']} → {payload['to']}"
        return json.dumps(payload, default=str)[:200]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ExecutorFilter(admin.SimpleListFilter):
    """The executor kinds with their labels, from the registry (training.executors.EXECUTORS)."""

    title = "executor"
    parameter_name = "executor"

    def lookups(self, request, model_admin):
        return EXECUTORS.choices()

    def queryset(self, request, queryset):
        return queryset.filter(executor=self.value()) if self.value() else queryset


class TrainingJobChangeForm(forms.ModelForm):
    class Meta:
        model = TrainingJob
        fields = ("notes", "tags")


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    form = TrainingJobChangeForm
    # Fits a 1366 px window beside the admin's two sidebars (tests/browser/test_admin_job_list.py):
    # short headers, cells of two or three lines (the status cell holds the progress bar and the
    # Dashboard link), and the list's CSS (change_list.html) wraps long names.
    list_display = ("name", "state", "model_and_preset", "cost", "duration", "created", "tag_list")
    list_filter = ("status", review_admin.ReviewStateFilter, "preset", "created_at", "created_by", "tags",
                   "gpu_pricing_tier", ExecutorFilter, "base_model")
    search_fields = ("name", "notes", "tags__name", "client", "project")
    date_hierarchy = "created_at"
    list_select_related = ("preset", "base_model", "created_by")
    list_per_page = 50
    # QA's decisions come from validation (review_admin), with their confirmation page.
    actions = ("start_jobs", "cancel_jobs", "retry_jobs", *review_admin.ACTIONS)
    inlines = (JobEventInline,)
    filter_horizontal = ("tags",)
    add_form_template = "admin/training/trainingjob/add_form.html"
    # The add page creates through job_services.create_job (as UserAdmin's add_form creates a
    # user); "Preview estimate" (PREVIEW) shows the estimate first and saves nothing.
    add_form = TrainingJobCreateForm
    add_fieldsets = (
        (None, {"fields": ("training_file", "base_model", "preset", "template")}),
        ("Training settings (optional: each empty one keeps the preset's value)", {"fields": OVERRIDE_FIELDS}),
        ("Where it runs", {"fields": ("executor", "gpu_type", "gpu_pricing_tier")}),
        ("Description", {"fields": ("name", "notes", "tags", "client", "project")}),
    )
    PREVIEW = "_preview"
    # "Save and start" on the add page and on a pending job's page: saved as by "Save", then
    # started by job_services.start_job, as the API's POST /jobs/ID/start starts it.
    SAVE_AND_START = "_saveandstart"
    # The user may annotate a job; everything else is the configuration frozen at creation, or
    # belongs to the lifecycle and the worker.
    EDITABLE = ("notes", "tags")
    change_fieldsets = (
        (None, {"fields": ("error_panel", "name", "status_badge", "progress", "stage", "recovery",
                           "training_file", "base_model", "preset", "template", "parent", "created_by",
                           "created_at", "started_at", "completed_at")}),
        ("Cost and duration", {"fields": ("cost", "duration", "estimate_breakdown", "rate", "billable_time",
                                          "gpu_type", "gpu_pricing_tier", "executor")}),
        # Numbers as people read them (the columns hold the worker's raw floats); the remaining
        # time only while the job runs (TIME_LEFT, dropped from a finished job's page).
        ("Training", {"fields": ("settings_table", "epoch", "steps", "train_loss", "eval_loss", "learning_rate",
                                 "perplexity", TIME_LEFT, "last_checkpoint_step", "last_heartbeat_at", "attempt")}),
        ("Attempts", {"fields": ("attempts_table",)}),
        ("Notes", {"fields": ("notes", "tags", "client", "project", "description")}),
        ("Configuration", {"classes": ("collapse",), "fields": ("configuration_json", "results_json", "error_details_json")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tags")

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        if not obj.is_terminal:
            return self.change_fieldsets
        # A finished job has no time left: no row that could say otherwise.
        return tuple((name, {**opts, "fields": tuple(f for f in opts["fields"] if f != TIME_LEFT)})
                     for name, opts in self.change_fieldsets)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        names = [f for _, opts in self.change_fieldsets for f in opts["fields"]]
        return [f for f in names if f not in self.EDITABLE]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a started job is never deleted; see has_delete_permission
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.status != Status.PENDING:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj: TrainingJob) -> None:
        job_services.delete_job(obj)

    def save_model(self, request, obj: TrainingJob, form, change: bool) -> None:
        if not change:
            return  # create_job saved the new job (save_form)
        # Only the annotation columns: saving the whole row would write back stale status,
        # progress and cost over what the worker reported since this page was loaded.
        fields = [f for f in form.changed_data if f in self.EDITABLE and f != "tags"]
        if fields:
            obj.save(update_fields=[*fields, "updated_at"])

    # --- columns ----------------------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: TrainingJob):
        return badge(obj.get_status_display(), STATUS_COLORS.get(obj.status, "#6b7280"))

    @admin.display(description="Progress", ordering="progress_percentage")
    def progress(self, obj: TrainingJob):
        return progress_bar(obj.progress_percentage)

    @admin.display(description="Status", ordering="status")
    def state(self, obj: TrainingJob):
        """The list's status cell: the badge, the progress bar, and the live dashboard's link."""
        return format_html('{}<div style="margin:4px 0">{}</div>{}', self.status_badge(obj),
                           progress_bar(obj.progress_percentage, width_px=48), self.dashboard_link(obj))

    @admin.display(description="Model · preset", ordering="base_model__name")
    def model_and_preset(self, obj: TrainingJob):
        return format_html("{}<br>{}", obj.base_model.name, obj.preset.name if obj.preset else "custom")

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj: TrainingJob):
        return format_html("{}<br>{}", f"{timezone.localtime(obj.created_at):%Y-%m-%d %H:%M}",
                           obj.created_by.get_username() if obj.created_by else "—")

    @admin.display(description="Cost est. / actual", ordering="cost_estimate")
    def cost(self, obj: TrainingJob):
        if obj.cost_estimate is None:
            estimate = "—"
        elif obj.cost_estimate_low is not None and obj.cost_estimate_high is not None:
            estimate = f"${obj.cost_estimate:,} (${obj.cost_estimate_low:,}–{obj.cost_estimate_high:,})"
        else:
            estimate = f"${obj.cost_estimate:,}"
        if not obj.was_started:
            return estimate
        # Seed 002: warn when the actual cost runs more than 20% over the estimate.
        over = obj.cost_estimate is not None and obj.actual_cost > obj.cost_estimate * Decimal("1.2")
        actual = format_html('<span style="color:{}">${}</span>', "#dc2626" if over else "inherit",
                             f"{obj.actual_cost:,}")
        return format_html("{} / {}", estimate, actual)

    ATTEMPT_COLUMNS = ("#", "Executor", "Tier", "GPU", "Rate", "Launched", "Started", "Ended", "Billed", "Outcome",
                       "Reason", "Resumed from step", "Lost")

    @admin.display(description="Attempts")
    def attempts_table(self, obj: TrainingJob) -> str:
        """Each attempt: where it ran, what it cost, how it ended, and what an interruption lost
        (minutes of training, dollars at the attempt's rate). A table, not an inline, so the
        change form posts no formset for it."""
        attempts = list(obj.attempts.order_by("number"))
        if not attempts:
            return "Not launched yet."

        def when(value) -> str:
            return value.isoformat(timespec="seconds") if value else "—"

        rows = format_html_join("", "<tr>{}</tr>", (
            (format_html_join("", "<td>{}</td>", ((cell,) for cell in (
                a.number, a.executor, a.get_pricing_tier_display(), a.gpu_type or "—", f"${a.hourly_rate:.2f}/h",
                when(a.launched_at), when(a.started_at), when(a.ended_at),
                f"{minutes_text(a.billable_seconds / 60)}, ${a.cost}", a.get_outcome_display(),
                obj.mask_secret(a.reason) or "—", "—" if a.resumed_from_step is None else a.resumed_from_step,
                a.lost_summary or "—"))),)
            for a in attempts))
        head = format_html_join("", "<th>{}</th>", ((c,) for c in self.ATTEMPT_COLUMNS))
        return format_html('<table id="attempts-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, rows)

    @admin.display(description="Duration / est.")
    def duration(self, obj: TrainingJob) -> str:
        # Non-breaking spaces inside each figure: a narrow list cell wraps between the figures,
        # never inside "20 h 34 min".
        def unbroken(minutes: float | None) -> str:
            return minutes_text(minutes).replace(" ", "\u00a0")

        estimated = unbroken(obj.estimated_duration_minutes)
        elapsed = obj.elapsed
        if elapsed is None:
            return f"est.\u00a0{estimated}"
        return f"{unbroken(elapsed.total_seconds() / 60)} / {estimated}"

    @admin.display(description="Epoch")
    def epoch(self, obj: TrainingJob) -> str:
        return humanize.significant(obj.current_epoch, 3, trim=True)

    @admin.display(description="Stage")
    def stage(self, obj: TrainingJob) -> str:
        # As the dashboard says it: a finished job's stage is how it ended, not the last one run.
        return stage_text(obj)

    @admin.display(description="Step")
    def steps(self, obj: TrainingJob) -> str:
        if obj.current_step is None and obj.total_steps is None:
            return "—"
        step = "—" if obj.current_step is None else f"{obj.current_step:,}"
        return f"{step} / {obj.total_steps:,}" if obj.total_steps else step

    @admin.display(description="Training loss")
    def train_loss(self, obj: TrainingJob) -> str:
        return humanize.significant(obj.latest_loss)

    @admin.display(description="Held-out loss")
    def eval_loss(self, obj: TrainingJob) -> str:
        return humanize.significant(obj.latest_eval_loss)

    @admin.display(description="Learning rate")
    def learning_rate(self, obj: TrainingJob) -> str:
        return humanize.scientific(obj.latest_learning_rate)

    @admin.display(description="Perplexity")
    def perplexity(self, obj: TrainingJob) -> str:
        return humanize.significant(obj.latest_perplexity)

    @admin.display(description="Time remaining")
    def time_left(self, obj: TrainingJob) -> str:
        return "—" if obj.is_terminal else minutes_text(obj.estimated_time_remaining_minutes)

    @admin.display(description="Rate")
    def rate(self, obj: TrainingJob) -> str:
        return f"${obj.hourly_rate:.2f}/h"

    @admin.display(description="Billed time")
    def billable_time(self, obj: TrainingJob) -> str:
        return minutes_text(obj.billable_seconds / 60) if obj.billable_seconds else "—"

    @admin.display(description="Settings")
    def settings_table(self, obj: TrainingJob):
        """The hyperparameters the job was created with (preset, template and overrides merged)."""
        hyper = obj.hyperparameters or {}
        if not hyper:
            return "—"
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>",
                                ((k.replace("_", " "), setting_text(v)) for k, v in sorted(hyper.items())))
        return format_html('<table id="settings-table"><tbody>{}</tbody></table>', rows)

    @admin.display(description="Dashboard")
    def dashboard_link(self, obj: TrainingJob):
        return format_html('<a href="{}">Dashboard</a>', reverse("admin:training_trainingjob_dashboard", args=[obj.pk]))

    @admin.display(description="Tags")
    def tag_list(self, obj: TrainingJob) -> str:
        return ", ".join(t.name for t in obj.tags.all()) or "—"

    @admin.display(description="Error")
    def error_panel(self, obj: TrainingJob):
        if not (obj.error_type or obj.error_message):
            return "—"
        # The worker's text: the job's secret masked.
        fix = (format_html("<p><strong>Suggested fix:</strong> {}</p>", obj.mask_secret(obj.error_suggested_fix))
               if obj.error_suggested_fix else "")
        return format_html(
            '<div style="border-left:4px solid #dc2626;background:#fef2f2;color:#7f1d1d;padding:8px 12px">'
            "<p><strong>{}</strong></p><p>{}</p>{}</div>",
            obj.mask_secret(obj.error_type) or "Error", obj.mask_secret(obj.error_message), fix,
        )

    @admin.display(description="Recovery")
    def recovery(self, obj: TrainingJob) -> str:
        return obj.recovery_summary() or "No interruptions."

    @admin.display(description="Estimate")
    def estimate_breakdown(self, obj: TrainingJob):
        return estimate_table(obj.estimate)

    @admin.display(description="Configuration")
    def configuration_json(self, obj: TrainingJob):
        return pretty_json(obj.configuration)

    @admin.display(description="Results")
    def results_json(self, obj: TrainingJob):
        return pretty_json(obj.mask_secret(obj.results)) if obj.results else "—"

    @admin.display(description="Error details")
    def error_details_json(self, obj: TrainingJob):
        return pretty_json(obj.mask_secret(obj.error_details)) if obj.error_details else "—"

    # --- actions ----------------------------------------------------------------------------

    def _apply(self, request, queryset, verb: str, service) -> list[tuple[TrainingJob, Any]]:
        done = []
        for job in queryset.select_related(None).order_by("created_at"):
            ok, result = self._try(request, job, verb, service)
            if ok:
                done.append((job, result))
        return done

    def _try(self, request, job: TrainingJob, verb: str, service) -> tuple[bool, Any]:
        """service(job), a refusal or failure told as a message: (True, its result) or (False, None)."""
        try:
            return True, service(job)
        except (IllegalTransition, ValidationError) as exc:
            self.message_user(request, messages_of(exc), messages.WARNING)
        except Exception as exc:  # noqa: BLE001 — an operator sees a sentence, never a trace
            logger.exception("admin action %s failed for job %s", verb, job.pk)
            self.message_user(request, f"Could not {verb} job '{job.name}': {exc}", messages.ERROR)
        return False, None

    def _start(self, request, job: TrainingJob) -> bool:
        started, _ = self._try(request, job, "start", lambda j: job_services.start_job(j, user=request.user))
        return started

    @admin.action(description="Start selected jobs")
    def start_jobs(self, request, queryset):
        done = self._apply(request, queryset, "start", lambda job: job_services.start_job(job, user=request.user))
        if done:
            self.message_user(request, f"Started {len(done)} job(s): {', '.join(j.name for j, _ in done)}.", messages.SUCCESS)

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        done = self._apply(request, queryset, "cancel", lambda job: job_services.cancel_job(job, user=request.user))
        if done:
            self.message_user(request, f"Cancelled {len(done)} job(s): {', '.join(j.name for j, _ in done)}.", messages.SUCCESS)

    @admin.action(description="Retry selected jobs (as new jobs)")
    def retry_jobs(self, request, queryset):
        done = self._apply(request, queryset, "retry", lambda job: job_services.retry_job(job, user=request.user))
        for _, new_job in done:
            url = reverse("admin:training_trainingjob_change", args=[new_job.pk])
            self.message_user(request, format_html('Created retry <a href="{}">{}</a> (pending: start it when ready).',
                                                   url, new_job.name), messages.SUCCESS)

    # --- add: preview the estimate, then create through the service -------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The page's Approve / Reject / Request changes buttons are QA's (validation.review).
        return super().change_view(request, object_id, form_url,
                                   {**(extra_context or {}), "may_review": can_decide(request.user)})

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_estimate"
        return [
            path("estimate/", self.admin_site.admin_view(self.estimate_view), name=name),
            *dashboard_urls(self),
            *download_urls(self),
            *super().get_urls(),
        ]

    def estimate_view(self, request):
        """GET ?training_file=..&preset=..[&base_model&template&executor&gpu_type&gpu_pricing_tier]:
        the estimate as JSON, or {"errors": {field: [messages]}} with status 400."""
        if not (self.has_add_permission(request) or self.has_view_permission(request)):
            raise PermissionDenied
        params = request.GET.copy()
        params.setdefault("executor", defaults.default_executor())
        params.setdefault("gpu_pricing_tier", defaults.DEFAULT_PRICING_TIER)
        form = TrainingJobCreateForm(params)
        estimate = form.estimate() if form.is_valid() else None
        if estimate is None:
            errors = {field: [str(m) for m in msgs] for field, msgs in form.errors.items()}
            return JsonResponse({"errors": errors}, status=400)
        return JsonResponse(estimate)

    def get_form(self, request, obj=None, **kwargs):
        options = {}
        if obj is None:
            options["form"] = self.add_form
        options.update(kwargs)
        return super().get_form(request, obj, **options)

    def get_changeform_initial_data(self, request) -> dict[str, str]:
        # The add form's own fields (tags is comma-separated text, not the M2M Django's default
        # would split on commas); a preview starts from what was posted.
        data = request.POST if self.PREVIEW in request.POST else request.GET
        return {name: data[name] for name in self.add_form.base_fields if name in data}

    def add_view(self, request, form_url="", extra_context=None):
        context = {
            "estimate": None,
            "estimate_html": "",
            "estimate_url": reverse("admin:training_trainingjob_estimate"),
            "override_fields": OVERRIDE_FIELDS,
            "preset_notes": {
                str(p.pk): f"{p.explanation} Best for: {p.best_for}"
                for p in HyperparameterPreset.objects.filter(is_active=True)
            },
            **(extra_context or {}),
        }
        if request.method == "POST" and self.PREVIEW in request.POST and self.has_add_permission(request):
            form = self.get_form(request)(request.POST)
            if form.is_valid():
                # Saves nothing: the page is rendered as the add page's GET, its initial data
                # what was posted (get_changeform_initial_data), with the estimate. An invalid
                # preview goes on as a POST: Django's view shows its errors and saves nothing.
                estimate = form.estimate()
                preview = copy.copy(request)
                preview.method = "GET"
                context |= {"estimate": estimate, "estimate_html": estimate_table(estimate)}
                return super().add_view(preview, form_url, context)
        return super().add_view(request, form_url, context)

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        # Created by the service the API uses; the form's clean refused what it would refuse.
        return form.create(request.user)

    def save_related(self, request, form, formsets, change: bool) -> None:
        if change:  # create_job set the new job's tags
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj: TrainingJob, post_url_continue=None):
        url = reverse("admin:training_trainingjob_change", args=[obj.pk])
        summary = obj.estimate.get("summary", "")
        if self.SAVE_AND_START not in request.POST:
            self.message_user(request, format_html(
                'Created <a href="{}">{}</a>: {}. It is pending: "Save and start" on its page, or "Start selected '
                'jobs" in the list, launches it.', url, obj.name, summary), messages.SUCCESS)
        elif self._start(request, obj):
            self.message_user(request, self.started_message(obj, "Created and started", f": {summary}."),
                              messages.SUCCESS)
        else:  # _start said why; the job exists all the same
            self.message_user(request, f"Job '{obj.name}' was created but not started; it is pending.",
                              messages.WARNING)
        return HttpResponseRedirect(url)

    def response_change(self, request, obj: TrainingJob):
        if self.SAVE_AND_START not in request.POST:
            return super().response_change(request, obj)
        # The notes and tags are saved (save_model); now the start, refused as the API refuses it.
        if self._start(request, obj):
            self.message_user(request, self.started_message(obj, "Saved and started", "."), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:training_trainingjob_change", args=[obj.pk]))

    def started_message(self, job: TrainingJob, verb: str, tail: str):
        return format_html('{} {}{} <a href="{}">Watch it on its dashboard</a>.', verb, job.name, tail,
                           reverse("admin:training_trainingjob_dashboard", args=[job.pk]))


# --- What jobs report (read-only) --------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the worker's reports and the lifecycle only."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(MetricPoint)
class MetricPointAdmin(ReadOnlyAdmin):
    list_display = ("job", "attempt", "step", "epoch", "train_loss", "eval_loss", "learning_rate", "tokens_per_second",
                    "gpu_utilization_pct", "reported_at")
    list_filter = ("job__status", "attempt", "reported_at")
    search_fields = ("job__name",)
    date_hierarchy = "reported_at"
    list_select_related = ("job",)
    raw_id_fields = ("job",)


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "job", "event_type", "severity", "source", "attempt", "short_error")
    list_filter = ("event_type", "severity", "source", "anomaly_kind", "received_at")
    search_fields = ("job__name", "webhook_id", "processing_error")
    date_hierarchy = "received_at"
    list_select_related = ("job",)
    raw_id_fields = ("job",)
    # The payload is the worker's text: shown through masked_payload, never the raw field.
    fields = ("job", "event_type", "severity", "source", "attempt", "seq", "webhook_id", "old_status", "new_status",
              "anomaly_kind", "milestone_percent", "step", "masked_payload", "masked_processing_error", "received_at")
    readonly_fields = ("masked_payload", "masked_processing_error")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("job")

    @admin.display(description="Processing error")
    def short_error(self, obj: JobEvent) -> str:
        return obj.job.mask_secret(obj.processing_error)[:120] or "—"

    @admin.display(description="Payload")
    def masked_payload(self, obj: JobEvent):
        return pretty_json(obj.job.mask_secret(obj.payload))

    @admin.display(description="Processing error")
    def masked_processing_error(self, obj: JobEvent) -> str:
        return obj.job.mask_secret(obj.processing_error) or "—"

