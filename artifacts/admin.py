"""Admin: each job's artifact with signed download links, its download audit, storage used; and
the download buttons of the job's own page (`download_urls`, mounted by the job's ModelAdmin)."""

from __future__ import annotations

from contextvars import ContextVar

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from training.lifecycle import Status
from training.models import TrainingJob

from . import packaging, services
from .models import DownloadAudit, ModelArtifact
from .views import LINKS, signed_link

# The request being rendered: links are signed for whoever is looking. A ContextVar, because
# the ModelAdmin instance is shared by every thread.
_current_request: ContextVar = ContextVar("artifacts_admin_request", default=None)


class DownloadAuditInline(admin.TabularInline):
    model = DownloadAudit
    fields = ("at", "kind", "format", "user", "ip", "user_agent")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-at",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelArtifact)
class ModelArtifactAdmin(admin.ModelAdmin):
    list_display = ("job", "adapter_size", "storage_used", "perplexity_improvement_pct",
                    "download_count", "last_downloaded_at", "created_at")
    list_select_related = ("job",)
    search_fields = ("job__name", "job__id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "job", "download_links", "adapter_path", "adapter_config_path", "adapter_size_bytes",
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
    list_display = ("at", "job", "kind", "format", "user", "ip")
    list_filter = ("kind",)
    search_fields = ("job__name", "user__username", "ip")
    date_hierarchy = "at"
    readonly_fields = ("artifact", "job", "user", "kind", "format", "at", "ip", "user_agent")

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


def admin_download(model_admin, request: HttpRequest, object_id, kind: str) -> HttpResponse:
    """A download button: a link signed now for whoever clicked (so a page left open for days
    still works), then the file itself through it, as an attachment. A job this user cannot see
    is a 404; a job with nothing to download yet goes back to its page with the reason."""
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
    packaging.export_for(artifact, kind, fmt)  # built here, so the link's response is immediate
    return HttpResponseRedirect(signed_link(request, job.pk, kind, fmt, request.user)["url"])
