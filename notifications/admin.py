"""The admin for notifications: users' settings and channels, every message and its delivery,
the daily reports.

Secrets are masked everywhere here: a Slack URL reads https://hooks.slack.com/…last4 and a
webhook secret whsec_…last4; staff may replace one (forms.UserChannelAdminForm) but never read
it back. Notifications are read-only apart from "Resend" (services.resend). A daily report's
page shows its HTML in a sandboxed frame: no script in it runs, and it cannot reach the admin.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import ngettext

from . import services
from .forms import NotificationSettingsAdminForm, UserChannelAdminForm
from .models import DailyReport, Notification, NotificationSettings, UserChannel, mask

STATUS_COLORS = {
    Notification.Status.PENDING: "#2563eb",
    Notification.Status.SENDING: "#7c3aed",
    Notification.Status.SENT: "#16a34a",
    Notification.Status.FAILED: "#dc2626",
    Notification.Status.DIGEST: "#0891b2",
    Notification.Status.DIGESTED: "#6b7280",
    Notification.Status.SKIPPED: "#d97706",
}


def badge(label: str, color: str):
    return format_html('<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;font-size:11px;'
                       'font-weight:600;white-space:nowrap">{}</span>', color, label)


# --- Settings and channels ----------------------------------------------------------------------


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    form = NotificationSettingsAdminForm
    list_display = ("user", "kinds_summary", "scope", "digest", "daily_report", "updated_at")
    list_filter = ("scope", "digest", "daily_report")
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    readonly_fields = ("channels", "last_digest_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("user", "kinds", "scope", "projects", "digest", "daily_report")}),
        ("Channels", {"fields": ("channels",)}),
        ("Record", {"fields": ("last_digest_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description="kinds → channels")
    def kinds_summary(self, obj: NotificationSettings) -> str:
        kinds = obj.kinds or {}
        text = "; ".join(f"{kind}: {', '.join(channels)}" for kind, channels in kinds.items() if channels)
        return Truncator(text or "nothing").chars(90)

    @admin.display(description="the user's channels")
    def channels(self, obj: NotificationSettings):
        if obj.pk is None:
            return "Save first."
        rows = UserChannel.objects.filter(user_id=obj.user_id).order_by("kind")
        if not rows:
            return "None set up: email goes to the account's address."
        return format_html_join(
            "", '<div><a href="{}">{}</a>: {} {}</div>',
            ((reverse("admin:notifications_userchannel_change", args=[c.pk]), c.get_kind_display(),
              c.masked_target() or c.address() or "the account's address",
              "(switched off)" if not c.enabled else "") for c in rows))


@admin.register(UserChannel)
class UserChannelAdmin(admin.ModelAdmin):
    form = UserChannelAdminForm
    list_display = ("user", "kind", "masked_target_display", "masked_secret", "enabled", "disabled_at")
    list_filter = ("kind", "enabled")
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    readonly_fields = ("masked_target_display", "masked_secret", "disabled_reason", "disabled_at", "created_at")

    def get_fieldsets(self, request, obj=None):
        main = ["user", "kind", "target", "enabled"]
        if obj is None:
            return ((None, {"fields": main + ["new_secret"]}),)
        extra: tuple = ()
        if obj.kind == "slack":
            extra = (("Stored (masked)", {"fields": ["masked_target_display"]}),)
        elif obj.kind == "webhook":
            extra = (("Signing secret", {"fields": ["masked_secret", "new_secret", "rotate_secret"]}),)
        return ((None, {"fields": main}), *extra,
                ("Delivery", {"fields": ["disabled_reason", "disabled_at", "created_at"]}))

    @admin.display(description="target")
    def masked_target_display(self, obj: UserChannel) -> str:
        return obj.masked_target() or (f"the account's address ({obj.user.email})" if obj.kind == "email" else "—")

    @admin.display(description="signing secret")
    def masked_secret(self, obj: UserChannel) -> str:
        return mask(obj.secret) or "—"


# --- Notifications ------------------------------------------------------------------------------


class ProblemFilter(admin.SimpleListFilter):
    """The ones someone may need to look at, one click from the list."""

    title = "delivery problems"
    parameter_name = "problem"

    def lookups(self, request, model_admin):
        return (("failed", "Failed"), ("failed_or_skipped", "Failed or skipped"),
                ("retrying", "Retrying (tried, not sent yet)"))

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "failed":
            return queryset.filter(status=Notification.Status.FAILED)
        if value == "failed_or_skipped":
            return queryset.filter(status__in=[Notification.Status.FAILED, Notification.Status.SKIPPED])
        if value == "retrying":
            return queryset.filter(Q(status=Notification.Status.PENDING) & Q(attempts__gt=0))
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "recipient", "channel", "job_link", "status_badge", "attempts",
                    "last_error_short")
    list_filter = (ProblemFilter, "status", "kind", "channel", "created_at")
    list_select_related = ("recipient", "job")
    search_fields = ("recipient__username", "recipient__email", "subject", "job__name")
    date_hierarchy = "created_at"
    actions = ["resend"]
    fields = ("kind", "channel", "recipient", "job_link", "event", "status_badge", "attempts", "next_attempt_at",
              "sent_at", "subject", "last_error", "payload_json", "dedupe_key", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # written by the services, from job events

    def has_change_permission(self, request, obj=None) -> bool:
        # The list's actions (Resend) need it; one notification's page is read-only.
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="job", ordering="job__name")
    def job_link(self, obj: Notification):
        if obj.job_id is None:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:training_trainingjob_change", args=[obj.job_id]),
                           obj.job.name if obj.job is not None else obj.job_id)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Notification):
        return badge(obj.get_status_display(), STATUS_COLORS.get(obj.status, "#6b7280"))

    @admin.display(description="last error")
    def last_error_short(self, obj: Notification) -> str:
        return Truncator(obj.last_error).chars(80) if obj.last_error else ""

    @admin.display(description="payload")
    def payload_json(self, obj: Notification):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True, default=str))

    @admin.action(description="Resend selected failed or skipped notifications", permissions=["change"])
    def resend(self, request, queryset: QuerySet) -> None:
        selected = queryset.count()
        count = services.resend(queryset.select_related("recipient"))
        if count:
            self.message_user(request, ngettext("%(count)d notification is queued to be sent again.",
                                                "%(count)d notifications are queued to be sent again.",
                                                count) % {"count": count}, messages.SUCCESS)
        left = selected - count
        if left:
            self.message_user(request, ngettext(
                "%(count)d was not failed or skipped and is left as it is.",
                "%(count)d were not failed or skipped and are left as they are.", left) % {"count": left},
                messages.WARNING if not count else messages.INFO)


# --- Daily reports ------------------------------------------------------------------------------


@admin.register(DailyReport)
class DailyReportAdmin(admin.ModelAdmin):
    list_display = ("__str__", "period_start", "period_end", "created_at")
    date_hierarchy = "period_end"
    fields = ("period_start", "period_end", "created_at", "report", "text_block")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="report")
    def report(self, obj: DailyReport):
        if not obj.html:
            return "No HTML version; the text is below."
        # srcdoc is an attribute, so format_html escapes the whole document into it; the frame's
        # empty sandbox runs no script, submits no form and has an origin of its own.
        return format_html('<iframe title="Daily report" sandbox="" referrerpolicy="no-referrer" srcdoc="{}" '
                           'style="width:100%;max-width:960px;height:640px;border:1px solid #e5e7eb;'
                           'border-radius:6px;background:#fff"></iframe>', obj.html)

    @admin.display(description="text")
    def text_block(self, obj: DailyReport):
        return format_html('<pre style="white-space:pre-wrap;max-width:960px">{}</pre>', obj.text)
