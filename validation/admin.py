"""The admin for validation: benchmark sets (the built-in ones read-only; uploads checked by line
and field) and each job's validation with its summary and replies."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from artifacts.views import signed_link
from core import humanize
from training.models import TrainingJob

from . import compare, report_tasks, review_admin, scoring
from .models import (
    BenchmarkSet,
    JobValidation,
    ModelReview,
    ReviewDecision,
    ValidationReply,
    ValidationReport,
)
from .review import verdict_words
from .services import parse_upload, refuse_existing_version
from .summary import benchmark_rows


class BenchmarkSetUploadForm(forms.ModelForm):
    file = forms.FileField(help_text="The items, one JSON object per line (docs/validation.md has each kind's fields).")
    rubric = forms.FileField(required=False, help_text="Brand voice only: the rubric, a JSON file.")
    user = None  # the uploader, set by BenchmarkSetAdmin.get_form

    class Meta:
        model = BenchmarkSet
        fields = ("kind", "name", "version", "description", "datasets", "templates", "jobs")

    def clean(self):
        cleaned = super().clean()
        upload, rubric = cleaned.get("file"), cleaned.get("rubric")
        if not upload or not cleaned.get("kind") or not cleaned.get("name") or not cleaned.get("version"):
            return cleaned
        # The API's checks (services.parse_upload): size, then every problem by line and field.
        self.parsed = parse_upload(cleaned["kind"], upload.read(), file_name=upload.name,
                                   rubric=rubric.read() if rubric else None, rubric_name=rubric.name if rubric else "")
        refuse_existing_version(self.user, cleaned["kind"], cleaned["name"], cleaned["version"])
        return cleaned


@admin.register(BenchmarkSet)
class BenchmarkSetAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "kind", "item_count", "owner", "is_builtin", "short_hash", "created_at")
    list_filter = ("kind", "is_builtin")
    search_fields = ("name", "description")
    filter_horizontal = ("datasets", "templates", "jobs")
    readonly_fields = ("sha256", "item_count", "source_name", "owner", "is_builtin", "preview")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = type("BenchmarkSetUploadForm", (BenchmarkSetUploadForm,), {"user": request.user})
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("kind", "name", "version", "description", "file", "rubric", "datasets", "templates", "jobs")
        return ("kind", "name", "version", "description", "owner", "is_builtin", "sha256", "item_count",
                "source_name", "datasets", "templates", "jobs", "preview")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        fixed = ("kind", "name", "version") if not obj.is_builtin else ("kind", "name", "version", "description")
        return (*self.readonly_fields, *fixed)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj and (obj.is_builtin or obj.validations.exists()))

    def save_model(self, request, obj, form, change):
        if not change:
            obj.owner = request.user
            obj.replace_content(form.parsed, form.cleaned_data["file"].name)
        super().save_model(request, obj, form, change)

    @admin.display(description="sha256")
    def short_hash(self, obj: BenchmarkSet) -> str:
        return obj.sha256[:12]

    @admin.display(description="first items")
    def preview(self, obj: BenchmarkSet):
        rows = []
        for item in obj.items[:5]:
            text = item.get("question") or next((m["content"] for m in reversed(item.get("messages", []))
                                                 if m.get("role") == "user"), "")
            rows.append((item.get("id"), item.get("category") or item.get("topic") or "", text[:200]))
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows))


class ValidationReplyInline(admin.TabularInline):
    model = ValidationReply
    fields = ("benchmark", "item_id", "base_reply", "trained_reply")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(JobValidation)
class JobValidationAdmin(admin.ModelAdmin):
    list_display = ("job", "status", "verdict", "received_at")
    list_filter = ("status",)
    search_fields = ("job__name", "job__id")
    readonly_fields = ("job", "status", "sets_used", "results_table", "reports", "received_at", "suite_key")
    fields = ("job", "status", "system_prompt", "sets_used", "results_table", "reports", "received_at", "suite_key")
    inlines = [ValidationReplyInline]
    actions = ["make_report"]
    # Its object tools link to the scoring pages, the before/after view and the playground.
    change_form_template = "admin/validation/scoring/change_form.html"

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        # The scoring pages (scoring.py) and the before/after view and playground (compare.py).
        report = path("<str:object_id>/report/<int:version>/", self.admin_site.admin_view(self.report_view),
                      name="validation_jobvalidation_report")
        return [*scoring.scoring_urls(self), *compare.compare_urls(self), report, *super().get_urls()]

    def report_view(self, request, object_id: str, version: int):
        """A report version's PDF: a fresh signed download link (audited like every download)."""
        validation = JobValidation.objects.filter(
            pk=object_id, job__in=TrainingJob.objects.visible_to(request.user)).first() if object_id.isdigit() else None
        if validation is None or not self.has_view_permission(request, validation):
            raise Http404("No such job validation.")
        if not ValidationReport.objects.filter(job_id=validation.job_id, version=version).exists():
            raise Http404(f"This job has no report version {version}.")
        return HttpResponseRedirect(signed_link(request, validation.job_id, "validation-report", f"v{version}",
                                                request.user)["url"])

    @admin.action(description="Make a new validation report")
    def make_report(self, request, queryset):
        made = [v for v in queryset if v.received_at is not None]
        for validation in made:
            report_tasks.generate_validation_report.delay(str(validation.job_id), ValidationReport.Reason.REQUESTED)
        left = queryset.count() - len(made)
        self.message_user(request, f"A new report was asked for {len(made)} job{'s' if len(made) != 1 else ''}."
                          + (f" {left} without the worker's results yet were left out." if left else ""),
                          messages.SUCCESS if made else messages.WARNING)

    @admin.display(description="reports")
    def reports(self, obj: JobValidation):
        rows = [(reverse("admin:validation_jobvalidation_report", args=[obj.pk, r.version]), r.version,
                 r.get_reason_display(), humanize.integer(r.size_bytes // 1024 or 1), f"{r.generated_at:%Y-%m-%d %H:%M}")
                for r in ValidationReport.objects.filter(job_id=obj.job_id).order_by("-version")]
        if not rows:
            return "None yet: the first is made when validation finishes."
        return format_html("<table><tr><th>version</th><th>why</th><th>size</th><th>made</th></tr>{}</table>",
                           format_html_join("", '<tr><td><a href="{}">version {}</a></td><td>{}</td>'
                                                '<td>{} KB</td><td>{}</td></tr>', rows))

    @admin.display(description="passed")
    def verdict(self, obj: JobValidation) -> str:
        passed = (obj.summary or {}).get("passed")
        return "—" if passed is None else "yes" if passed else "no"

    @admin.display(description="sets")
    def sets_used(self, obj: JobValidation):
        return format_html_join(", ", "{} v{} ({})", ((s.name, s.version, s.sha256[:12]) for s in obj.sets.all()))

    @admin.display(description="results")
    def results_table(self, obj: JobValidation):
        rows = [(r["label"], r["base"], r["trained"], r["change"], r["scorer"], r["verdict"], r["headline"])
                for r in benchmark_rows(obj.summary)]
        return format_html("<table><tr><th>benchmark</th><th>base</th><th>trained</th><th>change</th><th>scorer</th>"
                           "<th>verdict</th><th>detail</th></tr>{}</table>",
                           format_html_join("", "<tr>" + "<td>{}</td>" * 7 + "</tr>", rows))



class ReviewDecisionInline(admin.TabularInline):
    model = ReviewDecision
    fields = ("at", "state", "by", "reason", "report_version", "via")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ModelReview)
class ModelReviewAdmin(admin.ModelAdmin):
    """QA's queue: models awaiting review first (the list opens filtered to them)."""

    list_display = ("job", "owner", "state", "validation", "created_at", "decided_by", "decided_at")
    list_filter = ("state",)
    search_fields = ("job__name", "job__id", "job__created_by__username")
    readonly_fields = ("job", "state", "reason", "decided_by", "decided_at", "report_version", "created_at")
    fields = readonly_fields
    inlines = [ReviewDecisionInline]
    actions = list(review_admin.ACTIONS)
    list_select_related = ("job", "job__created_by", "job__validation", "decided_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # decided through the actions, which audit each decision

    def get_queryset(self, request):
        return super().get_queryset(request).filter(job__in=TrainingJob.objects.visible_to(request.user))

    def get_urls(self):
        decide = path("job/<uuid:job_id>/<str:decision>/", self.admin_site.admin_view(
            lambda request, job_id, decision: review_admin.decide_one_view(self, request, str(job_id), decision)),
            name="validation_modelreview_decide")
        return [decide, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET" and not request.GET:
            return HttpResponseRedirect(request.path + "?state__exact=awaiting_review")
        return super().changelist_view(request, extra_context)

    @admin.display(description="owner", ordering="job__created_by__username")
    def owner(self, obj: ModelReview) -> str:
        return obj.job.created_by.get_username() if obj.job.created_by else "—"

    @admin.display(description="validation")
    def validation(self, obj: ModelReview) -> str:
        return verdict_words(getattr(obj.job, "validation", None))
