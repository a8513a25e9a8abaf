"""Checking and saving a user's notification choices: the rules the API, the settings page and
the admin share, and the forms of the page and the admin.

- `kinds_problems(value)`: what is wrong with a {kind: [channels]} mapping, keyed by the kind;
  `normalized_kinds` puts it in the canonical order (Kind's, then email, slack, webhook).
- `target_problem(kind, target)`: why a channel target cannot be used (the channel's own
  `check_target`: https only outside DEBUG, no private or loopback hosts unless
  NOTIFICATIONS_ALLOW_PRIVATE_URLS; a valid address for email), or None.
- `save_channel` / `rotate_secret`: the one place a UserChannel is written from a user's or
  staff's input; a target typed anew switches a channel that a failure switched off back on.

Secrets (a Slack incoming-webhook URL, a webhook's whsec_ key) are never put back into a form:
the field starts empty, says what is stored (masked) and keeps it when left blank.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.db import transaction

from training.models import TrainingJob

from .channels import CHANNELS
from .kinds import LABELS, URGENT, Kind
from .models import CHANNEL_KINDS, NotificationSettings, UserChannel, mask, new_webhook_secret

CHANNEL_NAMES = [name for name, _ in CHANNEL_KINDS]
CHANNEL_LABELS = dict(CHANNEL_KINDS)
KIND_NAMES = [kind.value for kind in Kind]
PROJECT_MAX_LENGTH = TrainingJob._meta.get_field("project").max_length
MAX_PROJECTS = 100
# Channels whose target is needed to send anything (email falls back to the account's address).
NEEDS_TARGET = {"slack": "a Slack webhook URL", "webhook": "a webhook URL"}


# --- Shared rules ---------------------------------------------------------------------------


def kinds_problems(value: Any) -> dict[str, str]:
    """What is wrong with a kinds mapping, keyed by the kind ("" for the mapping itself)."""
    if not isinstance(value, dict):
        return {"": "must be an object mapping a notification kind to a list of channels"}
    problems: dict[str, str] = {}
    for kind, channels in value.items():
        if kind not in KIND_NAMES:
            problems[str(kind)] = f"{kind!r} is not a notification kind; known: {', '.join(KIND_NAMES)}"
        elif not isinstance(channels, list):
            problems[kind] = "must be a list of channels"
        else:
            unknown = [c for c in channels if c not in CHANNEL_NAMES]
            if unknown:
                problems[kind] = (f"{unknown[0]!r} is not a channel; choose from {', '.join(CHANNEL_NAMES)}"
                                  if isinstance(unknown[0], str) else
                                  f"channels are names ({', '.join(CHANNEL_NAMES)}), not {unknown[0]!r}")
    return problems


def normalized_kinds(value: dict[str, list[str]]) -> dict[str, list[str]]:
    """Kinds in Kind's order, channels in CHANNEL_KINDS' order, once each; kinds with no channel left out."""
    found = {str(k): set(v) for k, v in (value or {}).items()}
    return {kind: [c for c in CHANNEL_NAMES if c in found[kind]] for kind in KIND_NAMES if found.get(kind)}


def target_problem(kind: str, target: str) -> str | None:
    """Why `target` cannot be where this user's `kind` messages go, or None."""
    if not target:
        return f"Give {NEEDS_TARGET[kind]}." if kind in NEEDS_TARGET else None
    try:
        return CHANNELS.get(kind).check_target(target)
    except ValueError as exc:  # urllib's refusals: a port out of range, an unclosed IPv6 bracket
        return f"{target!r} is not a valid URL: {exc}"


def parse_projects(text: str) -> list[str]:
    """Project names from a textarea: one per line or comma-separated, each once, in order."""
    return list(dict.fromkeys(p.strip() for p in re.split(r"[,\n]", text or "") if p.strip()))


def visible_projects(user) -> list[str]:
    return sorted(set(TrainingJob.objects.visible_to(user).exclude(project="")
                      .values_list("project", flat=True).distinct()[:200]))


def save_channel(user, kind: str, *, target: str | None = None, enabled: bool | None = None,
                 secret: str | None = None) -> tuple[UserChannel, bool]:
    """Create or update the user's channel of `kind` (None: leave that column as it is); a
    webhook gets its whsec_ secret on creation. Returns (channel, created)."""
    with transaction.atomic():
        channel, created = UserChannel.objects.select_for_update().get_or_create(
            user=user, kind=kind, defaults={"target": target or ""})
        if target is not None and (created or target != channel.target):
            channel.target = target
            if enabled is None and not channel.enabled:
                enabled = True  # a new target is a fresh start for a channel a failure switched off
        if secret:
            channel.secret = secret
        if enabled is not None:
            channel.enabled = enabled
            if enabled:
                channel.disabled_reason, channel.disabled_at = "", None
        channel.save()
    return channel, created


def rotate_secret(channel: UserChannel) -> str:
    channel.secret = new_webhook_secret()
    channel.save(update_fields=["secret"])
    return channel.secret


# --- The settings page ----------------------------------------------------------------------


def grid_field_name(kind: str, channel: str) -> str:
    return f"{kind}__{channel}"


class SettingsForm(forms.Form):
    """One user's settings and channel targets, on one page (views.settings_page)."""

    scope = forms.ChoiceField(label="Which jobs", choices=NotificationSettings.Scope.choices,
                              widget=forms.RadioSelect)
    projects = forms.CharField(
        label="Projects", required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="One per line or separated by commas; used when “Which jobs” is the projects choice.")
    digest = forms.ChoiceField(label="Digest", choices=NotificationSettings.Digest.choices, widget=forms.RadioSelect,
                               help_text=NotificationSettings._meta.get_field("digest").help_text)
    daily_report = forms.BooleanField(label="Email me the daily training report", required=False)

    email_address = forms.EmailField(label="Email address", required=False, max_length=254,
                                     help_text="Leave blank to use your account's address.")
    slack_url = forms.CharField(label="Slack incoming-webhook URL", required=False, max_length=500,
                                widget=forms.TextInput(attrs={"size": 60, "autocomplete": "off"}))
    slack_remove = forms.BooleanField(label="Remove the Slack URL", required=False)
    webhook_url = forms.CharField(label="Webhook URL", required=False, max_length=500,
                                  widget=forms.URLInput(attrs={"size": 60}),
                                  help_text="We POST signed JSON (Standard Webhooks) here. Leave blank to remove it.")
    webhook_rotate = forms.BooleanField(label="Make a new signing secret", required=False,
                                        help_text="The old one stops working at once.")

    def __init__(self, *args: Any, user, **kwargs: Any) -> None:
        self.user = user
        self.prefs = NotificationSettings.for_user(user)
        self.channels = {c.kind: c for c in UserChannel.objects.filter(user=user)}
        kwargs.setdefault("initial", self._initial())
        super().__init__(*args, **kwargs)
        for kind in Kind:
            for channel in CHANNEL_NAMES:
                self.fields[grid_field_name(kind, channel)] = forms.BooleanField(
                    required=False, label=f"{LABELS[kind]} by {CHANNEL_LABELS[channel]}")
        for name, channel in self.channels.items():
            if not channel.enabled:
                self.fields[f"{name}_enable"] = forms.BooleanField(
                    required=False, label=f"Switch {CHANNEL_LABELS[name]} back on")
        self.fields["email_address"].widget.attrs["placeholder"] = user.email or "your account has no address"
        slack = self.channels.get("slack")
        if slack is not None and slack.target:
            self.fields["slack_url"].help_text = f"Stored: {mask(slack.target)}. Leave blank to keep it."
            self.fields["slack_url"].widget.attrs["placeholder"] = mask(slack.target)
        else:
            del self.fields["slack_remove"]
            self.fields["slack_url"].help_text = "Slack → Apps → Incoming Webhooks → Add New Webhook."
        if "webhook" not in self.channels:
            del self.fields["webhook_rotate"]
        self.fields["projects"].help_text += self._projects_hint()

    def _initial(self) -> dict[str, Any]:
        prefs, channels = self.prefs, self.channels
        initial: dict[str, Any] = {"scope": prefs.scope, "projects": "\n".join(prefs.projects or []),
                                   "digest": prefs.digest, "daily_report": prefs.daily_report,
                                   "email_address": channels["email"].target if "email" in channels else "",
                                   "webhook_url": channels["webhook"].target if "webhook" in channels else ""}
        for kind in Kind:
            for channel in prefs.channels_for(kind):
                initial[grid_field_name(kind, channel)] = True
        return initial

    def _projects_hint(self) -> str:
        known = visible_projects(self.user)
        return f" Projects of the jobs you may see: {', '.join(known)}." if known else ""

    # Template helpers.
    def grid(self) -> list[dict[str, Any]]:
        return [{"kind": kind.value, "label": LABELS[kind], "urgent": kind in URGENT,
                 "fields": [self[grid_field_name(kind, c)] for c in CHANNEL_NAMES]} for kind in Kind]

    def channel_labels(self) -> list[str]:
        return [CHANNEL_LABELS[c] for c in CHANNEL_NAMES]

    def disabled_channels(self) -> list[dict[str, Any]]:
        return [{"label": CHANNEL_LABELS[k], "reason": c.disabled_reason, "at": c.disabled_at,
                 "field": self[f"{k}_enable"]} for k, c in self.channels.items() if not c.enabled]

    def webhook_secret_masked(self) -> str:
        channel = self.channels.get("webhook")
        return mask(channel.secret) if channel is not None else ""

    # Validation.
    def clean_projects(self) -> list[str]:
        projects = parse_projects(self.cleaned_data.get("projects", ""))
        too_long = [p for p in projects if len(p) > PROJECT_MAX_LENGTH]
        if too_long:
            raise forms.ValidationError(f"A project name has at most {PROJECT_MAX_LENGTH} characters.")
        if len(projects) > MAX_PROJECTS:
            raise forms.ValidationError(f"Name at most {MAX_PROJECTS} projects.")
        return projects

    def clean_email_address(self) -> str:
        value = self.cleaned_data.get("email_address", "").strip()
        problem = target_problem("email", value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_slack_url(self) -> str:
        value = self.cleaned_data.get("slack_url", "").strip()
        if value:
            problem = target_problem("slack", value)
            if problem:
                raise forms.ValidationError(problem)
        return value

    def clean_webhook_url(self) -> str:
        value = self.cleaned_data.get("webhook_url", "").strip()
        if value:
            problem = target_problem("webhook", value)
            if problem:
                raise forms.ValidationError(problem)
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kinds = {kind.value: [c for c in CHANNEL_NAMES if data.get(grid_field_name(kind, c))] for kind in Kind}
        data["kinds"] = normalized_kinds(kinds)
        if data.get("scope") == NotificationSettings.Scope.PROJECTS and not data.get("projects") \
                and "projects" not in self.errors:
            self.add_error("projects", "Name at least one project, or choose another “Which jobs”.")
        used = {c for channels in data["kinds"].values() for c in channels}
        slack_stored = "slack" in self.channels and bool(self.channels["slack"].target) and not data.get("slack_remove")
        if "slack" in used and not (data.get("slack_url") or slack_stored) and "slack_url" not in self.errors:
            self.add_error("slack_url", "Give a Slack webhook URL, or untick Slack in the table above.")
        if "webhook" in used and not data.get("webhook_url") and "webhook_url" not in self.errors:
            self.add_error("webhook_url", "Give a webhook URL, or untick Webhook in the table above.")
        return data

    @transaction.atomic
    def save(self) -> dict[str, Any]:
        """Store everything; returns {"new_secret": the webhook secret when one was made, else ""}."""
        data, user = self.cleaned_data, self.user
        prefs, _ = NotificationSettings.objects.select_for_update().get_or_create(user=user)
        prefs.kinds, prefs.scope, prefs.projects = data["kinds"], data["scope"], data["projects"]
        prefs.digest, prefs.daily_report = data["digest"], data["daily_report"]
        prefs.save()
        enable = {name: data.get(f"{name}_enable") or None for name in CHANNEL_NAMES}

        if data["email_address"] or "email" in self.channels:
            save_channel(user, "email", target=data["email_address"], enabled=enable["email"])
        if data.get("slack_remove"):
            UserChannel.objects.filter(user=user, kind="slack").delete()
        elif data["slack_url"] or "slack" in self.channels:
            save_channel(user, "slack", target=data["slack_url"] or None, enabled=enable["slack"])

        new_secret = ""
        if not data["webhook_url"]:
            UserChannel.objects.filter(user=user, kind="webhook").delete()
        else:
            channel, created = save_channel(user, "webhook", target=data["webhook_url"], enabled=enable["webhook"])
            if created:
                new_secret = channel.secret
            elif data.get("webhook_rotate"):
                new_secret = rotate_secret(channel)
        return {"new_secret": new_secret}


# --- The admin ------------------------------------------------------------------------------


class NotificationSettingsAdminForm(forms.ModelForm):
    """The kinds JSON checked like the API's; projects required with the projects scope."""

    class Meta:
        model = NotificationSettings
        fields = ["user", "kinds", "scope", "projects", "digest", "daily_report"]
        help_texts = {"kinds": "Kind → channels, e.g. {\"completed\": [\"email\", \"slack\"]}. Kinds: "
                               + ", ".join(KIND_NAMES) + ". Channels: " + ", ".join(CHANNEL_NAMES) + "."}

    def clean_kinds(self) -> dict[str, list[str]]:
        value = self.cleaned_data.get("kinds") or {}
        problems = kinds_problems(value)
        if problems:
            raise forms.ValidationError([f"{k}: {v}" if k else v for k, v in problems.items()])
        return normalized_kinds(value)

    def clean_projects(self) -> list[str]:
        value = self.cleaned_data.get("projects") or []
        if not isinstance(value, list) or not all(isinstance(p, str) and 0 < len(p) <= PROJECT_MAX_LENGTH
                                                  for p in value):
            raise forms.ValidationError("A list of project names, e.g. [\"support-bot\"].")
        return list(dict.fromkeys(value))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("scope") == NotificationSettings.Scope.PROJECTS and not data.get("projects") \
                and "projects" not in self.errors:
            self.add_error("projects", "Name at least one project with the projects scope.")
        return data


class SecretInput(forms.PasswordInput):
    """Never renders the stored value (render_value=False), whatever the form's initial is."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"autocomplete": "new-password", "size": 60, **(attrs or {})}, render_value=False)


class UserChannelAdminForm(forms.ModelForm):
    """Staff may replace a Slack URL or a webhook secret, never read one back: those fields start
    empty, name what is stored (masked) and keep it when left blank. Email addresses and webhook
    URLs are not secrets and are shown as they are."""

    new_secret = forms.CharField(label="Replace the signing secret", required=False, max_length=128,
                                 widget=SecretInput())
    rotate_secret = forms.BooleanField(
        label="Revoke: generate a new signing secret", required=False,
        help_text="The stored secret stops working at once. Nobody sees the new one here: the user rotates it "
                  "on their settings page or through the API to get one they can read.")

    class Meta:
        model = UserChannel
        fields = ["user", "kind", "target", "enabled"]
        widgets = {"target": forms.TextInput(attrs={"size": 70, "autocomplete": "off"})}
        help_texts = {"target": "Email: an address (blank: the account's). Slack: the incoming-webhook URL. "
                                "Webhook: the customer's https endpoint."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk and instance.kind == "slack":
            self.initial["target"] = ""
            self.fields["target"].widget = SecretInput()
            self.fields["target"].help_text = (f"Stored: {mask(instance.target) or 'nothing'}. "
                                               "Type a new URL to replace it; leave blank to keep it.")
        if instance.pk and instance.kind == "webhook":
            self.fields["new_secret"].help_text = (f"Stored: {mask(instance.secret)}. Type a whsec_ secret to replace "
                                                   "it, or tick the box below; leave blank to keep it.")
        else:
            self.fields["new_secret"].help_text = "Webhook channels only; a new webhook gets one generated."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        instance, kind = self.instance, data.get("kind")
        target = (data.get("target") or "").strip()
        if instance.pk and instance.kind == "slack" and kind == "slack" and not target:
            target = instance.target  # blank keeps the stored URL
        data["target"] = target
        if kind and "target" not in self.errors:
            problem = target_problem(kind, target)
            if problem:
                self.add_error("target", problem)
        secret = (data.get("new_secret") or "").strip()
        if secret and kind != "webhook":
            self.add_error("new_secret", "Only a webhook channel has a signing secret.")
        elif secret and not (secret.startswith("whsec_") and len(secret) >= 30):
            self.add_error("new_secret", "A signing secret looks like whsec_ followed by base64 (at least 24 characters).")
        return data

    def save(self, commit: bool = True) -> UserChannel:
        channel = super().save(commit=False)
        channel.target = self.cleaned_data["target"]
        if self.cleaned_data.get("rotate_secret") and channel.kind == "webhook":
            channel.secret = new_webhook_secret()
        elif self.cleaned_data.get("new_secret"):
            channel.secret = self.cleaned_data["new_secret"].strip()
        if channel.kind != "webhook":
            channel.secret = ""
        if channel.enabled:
            channel.disabled_reason, channel.disabled_at = "", None
        if commit:
            channel.save()
        return channel
