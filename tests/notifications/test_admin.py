"""The notifications admin: secrets masked and never put back into a form, Resend re-queues a
failed notification (and, delivered, it goes out), daily reports shown without running them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from notifications.models import DailyReport, Notification, NotificationSettings, UserChannel
from tests.notifications.test_preferences_api import SLACK_URL, fake_dns  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def failed(user, key="k1", **fields) -> Notification:
    values = {"kind": "failed", "channel": "email", "recipient": user, "dedupe_key": key,
              "status": Notification.Status.FAILED, "attempts": 8, "last_error": "gave up after 8 tries: 451"}
    values.update(fields)
    return Notification.objects.create(**values)


@pytest.mark.parametrize("model", ["notificationsettings", "userchannel", "notification", "dailyreport"])
def test_every_changelist_opens(admin_client, owner, model):
    NotificationSettings.objects.create(user=owner, kinds={"failed": ["email"]})
    UserChannel.objects.create(user=owner, kind="slack", target=SLACK_URL)
    failed(owner)
    assert admin_client.get(reverse(f"admin:notifications_{model}_changelist")).status_code == 200


# --- Secrets ------------------------------------------------------------------------------------


def test_a_slack_url_is_masked_on_the_list_the_change_page_and_the_settings_page(admin_client, owner):
    channel = UserChannel.objects.create(user=owner, kind="slack", target=SLACK_URL)
    prefs = NotificationSettings.objects.create(user=owner, kinds={"failed": ["slack"]})
    for url in (reverse("admin:notifications_userchannel_changelist"), change_url(channel), change_url(prefs)):
        html = admin_client.get(url).content.decode()
        assert "https://hooks.slack.com/…WXYZ" in html, url
        assert SLACK_URL not in html and "abcdefghijklmnopqrst" not in html, url


def test_a_webhook_secret_is_masked_and_blank_keeps_it(admin_client, owner):
    channel = UserChannel.objects.create(user=owner, kind="webhook", target="https://hooks.example.com/lora")
    secret = channel.secret
    html = admin_client.get(change_url(channel)).content.decode()
    assert "whsec_…" + secret[-4:] in html and secret not in html

    data = {"user": owner.pk, "kind": "webhook", "target": "https://hooks.example.com/v2", "enabled": "on",
            "new_secret": ""}
    response = admin_client.post(change_url(channel), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    channel.refresh_from_db()
    assert channel.secret == secret and channel.target == "https://hooks.example.com/v2"

    replacement = "whsec_" + "A" * 32
    assert admin_client.post(change_url(channel), {**data, "new_secret": replacement}).status_code == 302
    channel.refresh_from_db()
    assert channel.secret == replacement
    assert replacement not in admin_client.get(change_url(channel)).content.decode()


def test_staff_replace_a_slack_url_but_blank_keeps_it(admin_client, owner):
    channel = UserChannel.objects.create(user=owner, kind="slack", target=SLACK_URL)
    data = {"user": owner.pk, "kind": "slack", "target": "", "enabled": "on"}
    assert admin_client.post(change_url(channel), data).status_code == 302
    channel.refresh_from_db()
    assert channel.target == SLACK_URL

    new_url = "https://hooks.slack.com/services/T0001/B0003/zyxwvutsrqponmlkjih0NEW1"
    assert admin_client.post(change_url(channel), {**data, "target": new_url}).status_code == 302
    channel.refresh_from_db()
    assert channel.target == new_url


def test_a_private_url_is_refused_naming_the_field(admin_client, owner, settings):
    settings.NOTIFICATIONS_ALLOW_PRIVATE_URLS = False
    data = {"user": owner.pk, "kind": "webhook", "target": "https://intranet.example.com/hook", "enabled": "on"}
    response = admin_client.post(reverse("admin:notifications_userchannel_add"), data)
    assert response.status_code == 200
    assert "private or local address" in str(response.context["adminform"].form.errors["target"])
    assert not UserChannel.objects.exists()


def test_settings_with_an_unknown_kind_are_refused(admin_client, owner):
    data = {"user": owner.pk, "kinds": '{"completed": ["email"], "bogus": ["email"]}', "scope": "mine",
            "projects": "[]", "digest": "off"}
    response = admin_client.post(reverse("admin:notifications_notificationsettings_add"), data)
    assert response.status_code == 200
    assert "not a notification kind" in str(response.context["adminform"].form.errors["kinds"])
    response = admin_client.post(reverse("admin:notifications_notificationsettings_add"),
                                 {**data, "kinds": '{"completed": ["slack", "email", "email"]}'})
    assert response.status_code == 302
    assert NotificationSettings.objects.get(user=owner).kinds == {"completed": ["email", "slack"]}


# --- Notifications ------------------------------------------------------------------------------


def test_the_failed_filter_lists_only_failed_notifications(admin_client, owner):
    failed(owner, "a", last_error="550 mailbox unavailable")
    failed(owner, "b", status=Notification.Status.SENT, last_error="", attempts=1)
    url = reverse("admin:notifications_notification_changelist")
    page = admin_client.get(url)
    assert "?problem=failed" in page.content.decode()  # the filter, one click away
    response = admin_client.get(url + "?problem=failed")
    rows = list(response.context["cl"].queryset)
    assert [n.dedupe_key for n in rows] == ["a"]
    assert "550 mailbox unavailable" in response.content.decode()


def test_resend_requeues_a_failed_notification_and_says_how_many(admin_client, owner):
    row = failed(owner, "a")
    sent = failed(owner, "b", status=Notification.Status.SENT, attempts=1, last_error="")
    UserChannel.objects.create(user=owner, kind="email", enabled=False, disabled_reason="550")
    response = admin_client.post(reverse("admin:notifications_notification_changelist"),
                                 {"action": "resend", "_selected_action": [row.pk, sent.pk]}, follow=True)
    texts = [str(m) for m in response.context["messages"]]
    assert "1 notification is queued to be sent again." in texts
    assert "1 was not failed or skipped and is left as it is." in texts
    row.refresh_from_db()
    assert row.status == Notification.Status.PENDING and row.attempts == 0
    sent.refresh_from_db()
    assert sent.status == Notification.Status.SENT
    assert UserChannel.objects.get(user=owner, kind="email").enabled  # switched back on


def test_a_resent_notification_is_delivered(admin_client, owner, smtp, make_job, django_capture_on_commit_callbacks):
    row = failed(owner, "a", job=make_job())
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:notifications_notification_changelist"),
                          {"action": "resend", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.status == Notification.Status.SENT and row.attempts == 1
    [message] = smtp.messages()
    assert message["To"] == owner.email


def test_a_notifications_page_is_read_only(admin_client, owner):
    row = failed(owner, "a")
    response = admin_client.get(change_url(row))
    assert response.status_code == 200 and 'name="_save"' not in response.content.decode()
    assert admin_client.get(reverse("admin:notifications_notification_add")).status_code == 403


# --- Daily reports ------------------------------------------------------------------------------


def test_a_daily_reports_html_is_shown_in_a_sandbox_and_its_text_escaped(admin_client):
    from django.utils import timezone

    now = timezone.now()
    report = DailyReport.objects.create(
        period_start=now - timezone.timedelta(days=1), period_end=now,
        text="3 jobs finished; <b>elena</b> v1 is best",
        html='<h1>Daily report</h1><p>elena v1</p><script>alert("x")</script>')
    html = admin_client.get(change_url(report)).content.decode()
    assert 'sandbox=""' in html and "srcdoc=" in html
    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html  # inside srcdoc, for the frame only
    assert "&lt;b&gt;elena&lt;/b&gt;" in html
    assert admin_client.get(reverse("admin:notifications_dailyreport_add")).status_code == 403
    assert 'name="_save"' not in html
