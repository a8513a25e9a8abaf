"""Admin: each job's artifact with signed download links, its download audit, storage used; and
the download buttons of the job's own page (`download_urls`, mounted by the job's ModelAdmin).

Before QA approves the model, the deployment package button leads to a page asking staff why it
is needed; the reason goes into the link and from there into the download's audit row."""

from __future__ import annotations

from contextvars import ContextVar

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from training.lifecycle import Status
from training.models import TrainingJob

from . import packaging, services
from .models import OVERRIDE_REASON_MAX_LENGTH, DownloadAudit, ModelArtifact, clean_override_reason
from .views import LINKS, signed_link

# The request being rendered: links are signed for whoever is looking. A ContextVar, because
# the ModelAdmin instance is shared by every thread.
_current_request: ContextVar = ContextVar("artifacts_admin_request", default=None)


class DownloadAuditInline(admin.TabularInline):
    model = DownloadAudit
    fields = ("at", "kind", "format", "user", "ip", "user_agent", "override_reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-at",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelArtifact)
class ModelArtifactAdmin(admin.ModelAdmin):
    list_display = ("job", "adapter_size", "storage_used", "perplexity_improvement_pct", "review_state",
                    "download_count", "last_downloaded_at", "created_at")
    list_select_related = ("job",)
    search_fields = ("job__name", "job__id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "job", "review_state", "download_links", "adapter_path", "adapter_config_path", "adapter_size_bytes",
        "adapter_files", "metrics_file_path", "summary_file_path", "metrics_summary",
        "validation_report_path", "perplexity_baseline", "perplexity_trained",
        "perplexity_improvement_pct", "adapter_zip_path", "deployment_package_path",
        "storage_used", "download_count", "last_downloaded_at", "last_downloaded_by", "created_at",
    )
    fields = readonly_fields + (
        "ei_score_baseline", "ei_score_trained", "ei_improvement_pct", "forgetting_retention_pct",
        "brand_voice_consistency_pct",
    )
    inlines = [DownloadAuditInline]
    actions = ["measure_storage"]

    def has_add_permission(self, request) -> bool:
        return False  # built from storage by services.register_artifacts

    @admin.display(description="adapter", ordering="adapter_size_bytes")
    def adapter_size(self, obj: ModelArtifact) -> str:
        return filesizeformat(obj.adapter_size_bytes or 0)

    @admin.display(description="storage used", ordering="storage_bytes")
    def storage_used(self, obj: ModelArtifact) -> str:
        return filesizeformat(obj.storage_bytes)

    @admin.display(description="download links (signed, issued to you)")
    def download_links(self, obj: ModelArtifact) -> str:
        if obj.pk is None:
            return "-"
        request = _current_request.get()
        if request is None:
            return "-"
        links = []
        for kind, fmt in LINKS:
            if kind == DownloadAudit.Kind.DEPLOYMENT_PACKAGE and not obj.package_released:
                # The job page's button asks for the override reason first.
                url = reverse("admin:training_trainingjob_download", args=[obj.job_id, kind])
                links.append((url, f"{kind} (not approved: asks for a reason)"))
                continue
            link = signed_link(request, obj.job_id, kind, fmt, request.user)
            links.append((link["url"], f"{kind} {fmt}".strip()))
        return format_html_join(mark_safe(" &middot; "), '<a href="{}">{}</a>', links)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        token = _current_request.set(request)
        try:
            response = super().change_view(request, object_id, form_url, extra_context)
            # A TemplateResponse renders lazily, after we return: render while the var is set.
            if hasattr(response, "render") and not response.is_rendered:
                response.render()
            return response
        finally:
            _current_request.reset(token)

    @admin.action(description="Measure storage used again")
    def measure_storage(self, request, queryset) -> None:
        for artifact in queryset:
            ModelArtifact.objects.filter(pk=artifact.pk).update(
                storage_bytes=services.storage_used(artifact.job_id))
        self.message_user(request, f"Measured {queryset.count()} job(s).")


@admin.register(DownloadAudit)
class DownloadAuditAdmin(admin.ModelAdmin):
    list_display = ("at", "job", "kind", "format", "user", "ip", "override_reason")
    list_filter = ("kind",)
    search_fields = ("job__name", "user__username", "ip", "override_reason")
    date_hierarchy = "at"
    readonly_fields = ("artifact", "job", "user", "kind", "format", "at", "ip", "user_agent", "override_reason")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- The job page's download buttons ------------------------------------------------------------


def download_urls(model_admin) -> list:
    """`<job id>/download/<kind>/[?format=csv|json]` under the job's admin, named
    `admin:training_trainingjob_download` (templates/admin/training/trainingjob/change_form.html)."""
    name = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_download"
    view = model_admin.admin_site.admin_view(
        lambda request, object_id, kind: admin_download(model_admin, request, object_id, kind))
    return [path("<uuid:object_id>/download/<str:kind>/", view, name=name)]


class PackageOverrideForm(forms.Form):
    override_reason = forms.CharField(
        label="Why is it needed now?", required=False, strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80, "required": True,
                                     "maxlength": OVERRIDE_REASON_MAX_LENGTH}),
        help_text=f"1 to {OVERRIDE_REASON_MAX_LENGTH} characters. Kept in the download audit, and "
                  "readable by whoever gets the link.")

    def clean_override_reason(self) -> str:
        # The model's rule, so the admin and the API refuse the same reasons with the same words.
        return clean_override_reason(self.cleaned_data["override_reason"])


def admin_download(model_admin, request: HttpRequest, object_id, kind: str) -> HttpResponse:
    """A download button: a link signed now for whoever clicked (so a page left open for days
    still works), then the file itself through it, as an attachment. A job this user cannot see
    is a 404; a job with nothing to download yet goes back to its page with the reason. A
    deployment package QA has not approved first asks for the override's reason (a form POSTed
    back here); only staff reach this view at all (admin_view)."""
    job = TrainingJob.objects.visible_to(request.user).filter(pk=object_id).first()
    if job is None or not model_admin.has_view_permission(request, job):
        raise Http404("No such training job.")
    try:
        kind, fmt = packaging.choose(kind, request.GET.get("format"))
    except packaging.ExportError as exc:
        raise Http404(str(exc)) from exc
    try:
        artifact = services.downloadable_artifact(job)
    except services.NoArtifacts as exc:
        level = messages.WARNING if job.status != Status.COMPLETED else messages.ERROR
        model_admin.message_user(request, str(exc), level)
        return HttpResponseRedirect(reverse("admin:training_trainingjob_change", args=[job.pk]))
    override = ""
    if kind == DownloadAudit.Kind.DEPLOYMENT_PACKAGE and not artifact.package_released:
        form = PackageOverrideForm(request.POST if request.method == "POST" else None)
        if not form.is_valid():
            return package_override_page(model_admin, request, job, artifact, form)
        override = form.cleaned_data["override_reason"]
    packaging.export_for(artifact, kind, fmt)  # built here, so the link's response is immediate
    return HttpResponseRedirect(signed_link(request, job.pk, kind, fmt, request.user, override=override)["url"])


def package_override_page(model_admin, request: HttpRequest, job: TrainingJob, artifact: ModelArtifact,
                          form: PackageOverrideForm) -> TemplateResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Deployment package before QA approval",
        "opts": model_admin.opts,
        "job": job,
        "locked_reason": artifact.package_locked_reason(),
        "form": form,
        "job_url": reverse("admin:training_trainingjob_change", args=[job.pk]),
    }
    return TemplateResponse(request, "admin/artifacts/package_override.html", context)
