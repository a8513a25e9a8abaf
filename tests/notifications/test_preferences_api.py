"""The notification API: one's own settings and channels, validation that names the field,
secrets masked in every response but the one that makes them, one's own notifications only."""

from __future__ import annotations

import socket

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import notifications.channels
from notifications.models import Notification, NotificationSettings, UserChannel

pytestmark = pytest.mark.django_db

SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstWXYZ"
PUBLIC_IP = "93.184.215.14"
HOSTS = {"hooks.slack.com": PUBLIC_IP, "hooks.example.com": PUBLIC_IP, "intranet.example.com": "10.1.2.3",
         "metadata.example.com": "169.254.169.254"}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    """Names resolve without a network: public ones to a public address, the rest as listed;
    IP literals as themselves; anything else does not resolve."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in HOSTS:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (HOSTS[host], port))]
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(notifications.channels.socket, "getaddrinfo", getaddrinfo)


def api_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(owner) -> APIClient:
    return api_client(owner)


def notification(user, key: str, **fields) -> Notification:
    values = {"kind": "completed", "channel": "email", "recipient": user, "dedupe_key": key}
    values.update(fields)
    return Notification.objects.create(**values)


# --- Settings -----------------------------------------------------------------------------------


def test_without_settings_the_owner_hears_of_completed_and_failed_jobs_by_email(api):
    body = api.get("/api/notifications/settings/").json()
    assert body["kinds"] == {"completed": ["email"], "failed": ["email"], "rejected": ["email"]}
    assert body["scope"] == "mine" and body["digest"] == "off" and body["daily_report"] is False
    assert body["is_default"] is True and body["updated_at"] is None
    assert not NotificationSettings.objects.exists()  # reading saves nothing


def test_settings_round_trip(api, owner):
    wanted = {"kinds": {"failed": ["email", "slack"], "milestone": ["webhook"], "completed": ["slack", "email"]},
              "scope": "projects", "projects": ["support-bot", "support-bot", "search"], "digest": "daily",
              "daily_report": True}
    response = api.put("/api/notifications/settings/", wanted, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    # Canonical order (kinds as Kind lists them, channels email, slack, webhook), each once.
    assert body["kinds"] == {"completed": ["email", "slack"], "failed": ["email", "slack"], "milestone": ["webhook"]}
    assert body["projects"] == ["support-bot", "search"]
    assert body["is_default"] is False and body["updated_at"]
    assert api.get("/api/notifications/settings/").json() == body

    prefs = NotificationSettings.objects.get(user=owner)
    assert prefs.channels_for("failed") == ["email", "slack"] and prefs.daily_report is True

    patched = api.patch("/api/notifications/settings/", {"digest": "hourly"}, format="json").json()
    assert patched["digest"] == "hourly" and patched["kinds"] == body["kinds"] and patched["scope"] == "projects"


def test_patch_without_a_row_starts_from_the_defaults(api, owner):
    body = api.patch("/api/notifications/settings/", {"daily_report": True}, format="json").json()
    assert body["kinds"] == {"completed": ["email"], "failed": ["email"], "rejected": ["email"]} and body["daily_report"] is True
    assert NotificationSettings.objects.get(user=owner).kinds == {"completed": ["email"], "failed": ["email"], "rejected": ["email"]}


@pytest.mark.parametrize(("kinds", "key", "words"), [
    ({"completed": ["email"], "bogus": ["email"]}, "bogus", "not a notification kind"),
    ({"completed": ["email", "fax"]}, "completed", "'fax' is not a channel"),
    ({"completed": "email"}, "completed", "must be a list"),
])
def test_an_unknown_kind_or_channel_is_a_400_naming_it(api, kinds, key, words):
    response = api.put("/api/notifications/settings/", {"kinds": kinds}, format="json")
    assert response.status_code == 400
    assert words in response.json()["kinds"][key][0]
    assert not NotificationSettings.objects.exists()


def test_kinds_must_be_an_object(api):
    response = api.patch("/api/notifications/settings/", {"kinds": ["completed"]}, format="json")
    assert response.status_code == 400 and "kinds" in response.json()


def test_the_projects_scope_needs_a_project(api):
    response = api.patch("/api/notifications/settings/", {"scope": "projects"}, format="json")
    assert response.status_code == 400 and "projects" in response.json()
    response = api.patch("/api/notifications/settings/", {"scope": "everything"}, format="json")
    assert response.status_code == 400 and "scope" in response.json()


def test_settings_need_authentication():
    assert APIClient().get("/api/notifications/settings/").status_code == 401


# --- Channels -----------------------------------------------------------------------------------


def test_the_email_channel_defaults_to_the_accounts_address(api, owner):
    body = api.get("/api/notifications/channels/email/").json()
    assert body["kind"] == "email" and body["target"] == "" and body["address"] == owner.email
    response = api.put("/api/notifications/channels/email/", {"target": "not-an-address"}, format="json")
    assert response.status_code == 400 and "is not an email address" in response.json()["target"][0]
    response = api.put("/api/notifications/channels/email/", {"target": "olivia.alerts@example.com"}, format="json")
    assert response.status_code == 201 and response.json()["address"] == "olivia.alerts@example.com"
    assert api.delete("/api/notifications/channels/email/").status_code == 204
    assert api.get("/api/notifications/channels/email/").json()["address"] == owner.email


@pytest.mark.parametrize(("url", "words"), [
    ("http://hooks.example.com/notify", "must use https"),
    ("https://intranet.example.com/notify", "private or local address"),
    ("https://127.0.0.1:8443/notify", "private or local address"),
    ("https://metadata.example.com/latest/meta-data/", "private or local address"),
    ("https://nowhere.invalid/notify", "does not resolve"),
    ("ftp://hooks.example.com/notify", "not an http(s) URL"),
    ("https://hooks.example.com:99999/notify", "not a valid URL"),
    ("https://[::1/notify", "not a valid URL"),
    ("", "Give a webhook URL"),
])
def test_a_webhook_url_we_will_not_post_to_is_a_400_naming_target(api, settings, url, words):
    settings.DEBUG = False
    response = api.put("/api/notifications/channels/webhook/", {"target": url}, format="json")
    assert response.status_code == 400
    assert words in response.json()["target"][0]
    assert not UserChannel.objects.exists()


def test_plain_http_is_allowed_with_debug_and_private_hosts_when_the_deployment_allows_them(api, settings):
    settings.DEBUG = True
    assert api.put("/api/notifications/channels/webhook/", {"target": "http://hooks.example.com/n"},
                   format="json").status_code == 201
    settings.DEBUG = False
    settings.NOTIFICATIONS_ALLOW_PRIVATE_URLS = True
    assert api.put("/api/notifications/channels/slack/", {"target": "http://127.0.0.1:9/hook"},
                   format="json").status_code == 201


def test_a_slack_url_is_masked_in_every_response(api, owner):
    response = api.put("/api/notifications/channels/slack/", {"target": SLACK_URL}, format="json")
    assert response.status_code == 201
    assert response.json()["target"] == "https://hooks.slack.com/…WXYZ"
    assert SLACK_URL not in response.content.decode()
    got = api.get("/api/notifications/channels/slack/")
    assert got.json()["target"] == "https://hooks.slack.com/…WXYZ" and SLACK_URL not in got.content.decode()
    assert UserChannel.objects.get(user=owner, kind="slack").target == SLACK_URL

    # A GET's body sent back (the masked URL) keeps the stored one.
    again = api.put("/api/notifications/channels/slack/", got.json(), format="json")
    assert again.status_code == 200
    assert UserChannel.objects.get(user=owner, kind="slack").target == SLACK_URL


def test_slack_and_webhook_channels_are_404_until_set_and_unknown_kinds_are_404(api):
    assert api.get("/api/notifications/channels/slack/").status_code == 404
    response = api.get("/api/notifications/channels/pager/")
    assert response.status_code == 404 and "pager" in response.json()["detail"]
    assert api.post("/api/notifications/channels/webhook/rotate-secret/").status_code == 404


def test_a_webhook_secret_is_shown_in_full_once_when_created_and_once_when_rotated(api, owner):
    created = api.put("/api/notifications/channels/webhook/", {"target": "https://hooks.example.com/lora"},
                      format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    stored = UserChannel.objects.get(user=owner, kind="webhook")
    assert secret.startswith("whsec_") and secret == stored.secret

    got = api.get("/api/notifications/channels/webhook/")
    assert got.json()["secret"] == "whsec_…" + secret[-4:] and secret not in got.content.decode()
    assert got.json()["target"] == "https://hooks.example.com/lora"  # a webhook URL is no secret

    moved = api.put("/api/notifications/channels/webhook/", {"target": "https://hooks.example.com/v2"}, format="json")
    assert moved.status_code == 200 and secret not in moved.content.decode()
    assert UserChannel.objects.get(pk=stored.pk).secret == secret  # a new URL keeps the secret

    rotated = api.post("/api/notifications/channels/webhook/rotate-secret/")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != secret
    assert UserChannel.objects.get(pk=stored.pk).secret == new_secret
    listed = api.get("/api/notifications/channels/webhook/")
    assert new_secret not in listed.content.decode()


def test_a_channel_switched_off_by_a_failure_can_be_switched_on_again(api, owner):
    channel = UserChannel.objects.create(user=owner, kind="email", target="")
    channel.disable("the mail server refused olivia@example.com: 550")
    body = api.get("/api/notifications/channels/email/").json()
    assert body["enabled"] is False and "550" in body["disabled_reason"] and body["disabled_at"]
    body = api.put("/api/notifications/channels/email/", {"enabled": True}, format="json").json()
    assert body["enabled"] is True and body["disabled_reason"] == "" and body["disabled_at"] is None


def test_a_form_encoded_put_keeps_what_it_leaves_out(api, owner):
    # DRF reads a checkbox missing from a form as false; here left out means kept, as with JSON.
    api.patch("/api/notifications/settings/", {"daily_report": True}, format="json")
    body = api.put("/api/notifications/settings/", {"scope": "all"}, format="multipart").json()
    assert body["scope"] == "all" and body["daily_report"] is True
    body = api.put("/api/notifications/channels/email/", "target=alerts%40example.com",
                   content_type="application/x-www-form-urlencoded").json()
    assert body["address"] == "alerts@example.com" and body["enabled"] is True


def test_channels_are_ones_own(api, teammate):
    api_client(teammate).put("/api/notifications/channels/slack/", {"target": SLACK_URL}, format="json")
    assert api.get("/api/notifications/channels/slack/").status_code == 404
    api.delete("/api/notifications/channels/slack/")
    assert UserChannel.objects.filter(user=teammate, kind="slack").exists()


# --- Notifications ------------------------------------------------------------------------------


def test_one_sees_only_ones_own_notifications(api, owner, outsider):
    mine = notification(owner, "a", status=Notification.Status.FAILED, last_error="550 refused")
    also_mine = notification(owner, "b", kind="failed", status=Notification.Status.SENT)
    theirs = notification(outsider, "c")

    body = api.get("/api/notifications/").json()
    assert body["count"] == 2 and {row["id"] for row in body["results"]} == {mine.pk, also_mine.pk}
    assert api.get(f"/api/notifications/{theirs.pk}/").status_code == 404
    row = api.get(f"/api/notifications/{mine.pk}/").json()
    assert row["status"] == "failed" and row["last_error"] == "550 refused" and row["kind_label"] == "Job completed"
    assert "dedupe_key" not in row and "claim_token" not in row


def test_notifications_filter_by_status_and_kind(api, owner):
    notification(owner, "a", status=Notification.Status.FAILED)
    notification(owner, "b", kind="failed", status=Notification.Status.SENT)
    notification(owner, "c", kind="milestone", status=Notification.Status.SKIPPED)

    def statuses(query: str) -> list[str]:
        return sorted(row["status"] for row in api.get(f"/api/notifications/?{query}").json()["results"])

    assert statuses("status=failed") == ["failed"]
    assert statuses("status=failed,skipped") == ["failed", "skipped"]
    assert statuses("kind=failed") == ["sent"]
    response = api.get("/api/notifications/?status=lost")
    assert response.status_code == 400 and "status" in response.json()


def test_notifications_filter_by_job(api, owner, make_job):
    first, second = make_job(), make_job(name="elena v2")
    notification(owner, "a", job=first)
    notification(owner, "b", job=second)
    body = api.get(f"/api/notifications/?job={second.pk}").json()
    assert [row["job_name"] for row in body["results"]] == ["elena v2"]
    response = api.get("/api/notifications/?job=12")
    assert response.status_code == 400 and "job" in response.json()


def test_the_kinds_and_their_labels(api):
    body = api.get("/api/notifications/kinds/").json()
    by_kind = {row["kind"]: row for row in body}
    assert by_kind["completed"] == {"kind": "completed", "label": "Job completed", "urgent": False,
                                    "default_channels": ["email"]}
    assert by_kind["failed"]["urgent"] is True
    assert len(body) == 14


def test_the_notification_apis_schema_validates_without_warnings(tmp_path):
    # The project's schema test covers the whole API (every operation documents its errors);
    # this checks our routes alone, so a warning here is ours.
    call_command("spectacular", "--validate", "--fail-on-warn", "--urlconf", "notifications.urls",
                 "--file", str(tmp_path / "schema.yaml"))
    schema = (tmp_path / "schema.yaml").read_text()
    for path in ("/api/notifications/settings/", "/api/notifications/channels/{kind}/",
                 "/api/notifications/channels/webhook/rotate-secret/", "/api/notifications/kinds/"):
        assert f"{path}:" in schema
