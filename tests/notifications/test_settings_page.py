"""/notifications/settings/: one's own settings on one page, for any signed-in user; errors
name the field; a webhook secret is shown once; a Slack URL never."""

from __future__ import annotations

import pytest
from django.urls import reverse

from notifications.models import NotificationSettings, UserChannel
from tests.notifications.test_preferences_api import SLACK_URL, fake_dns  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

URL = "/notifications/settings/"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def page(client, owner):
    client.force_login(owner)
    return client


def form_data(**values) -> dict:
    """The page's fields as a browser posts them: the defaults, `values` on top; grid boxes as
    kind__channel=True."""
    data = {"scope": "mine", "projects": "", "digest": "off", "email_address": "", "slack_url": "",
            "webhook_url": ""}
    for name, value in values.items():
        if value is True:
            data[name] = "on"
        elif value not in (False, None):
            data[name] = value
    return data


def errors(response) -> dict:
    return response.context["form"].errors


def test_signing_in_uses_the_admins_login_page_and_works_for_non_staff(client, owner):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("notifications:login"))
    login = client.get(response["Location"])
    assert login.status_code == 200 and 'id="login-form"' in login.content.decode()
    done = client.post(response["Location"], {"username": "olivia", "password": "pw-olivia-123", "next": URL})
    assert done.status_code == 302 and done["Location"] == URL
    assert client.get(URL).status_code == 200


def test_the_page_shows_the_defaults_in_the_admins_look(page):
    response = page.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="user-tools"' in html and "admin/css/base.css" in html and "olivia" in html
    form = response.context["form"]
    assert form["completed__email"].value() is True and form["failed__email"].value() is True
    assert form["completed__slack"].value() in (False, None)
    assert 'name="milestone__webhook"' in html and "Milestones (25, 50, 75, 100 %)" in html
    assert response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]


def test_saving_stores_the_settings_and_says_so(page, owner):
    data = form_data(**{"completed__email": True, "failed__email": True, "failed__slack": True,
                        "milestone__email": True}, scope="projects", projects="support-bot\nsearch, support-bot",
                     digest="daily", daily_report=True, slack_url=SLACK_URL, email_address="alerts@example.com")
    response = page.post(URL, data, follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert "Your notification settings are saved." in [str(m) for m in response.context["messages"]]
    prefs = NotificationSettings.objects.get(user=owner)
    assert prefs.kinds == {"completed": ["email"], "failed": ["email", "slack"], "milestone": ["email"]}
    assert prefs.scope == "projects" and prefs.projects == ["support-bot", "search"]
    assert prefs.digest == "daily" and prefs.daily_report is True
    assert UserChannel.objects.get(user=owner, kind="slack").target == SLACK_URL
    assert UserChannel.objects.get(user=owner, kind="email").target == "alerts@example.com"

    html = response.content.decode()
    assert SLACK_URL not in html and "https://hooks.slack.com/…WXYZ" in html
    assert response.context["form"]["failed__slack"].value() is True


def test_a_stored_slack_url_is_kept_when_the_field_is_left_blank_and_removed_on_request(page, owner):
    UserChannel.objects.create(user=owner, kind="slack", target=SLACK_URL)
    assert page.post(URL, form_data(**{"failed__slack": True})).status_code == 302
    assert UserChannel.objects.get(user=owner, kind="slack").target == SLACK_URL
    assert page.post(URL, form_data(slack_remove=True)).status_code == 302
    assert not UserChannel.objects.filter(user=owner, kind="slack").exists()


@pytest.mark.parametrize(("values", "field", "words"), [
    ({"scope": "projects"}, "projects", "Name at least one project"),
    ({"failed__slack": True}, "slack_url", "Give a Slack webhook URL"),
    ({"milestone__webhook": True}, "webhook_url", "Give a webhook URL"),
    ({"slack_url": "http://hooks.example.com/x"}, "slack_url", "must use https"),
    ({"webhook_url": "https://intranet.example.com/hook"}, "webhook_url", "private or local address"),
    ({"webhook_url": "https://127.0.0.1/hook"}, "webhook_url", "private or local address"),
    ({"email_address": "not-an-address"}, "email_address", "valid email"),
    ({"digest": "weekly"}, "digest", "Select a valid choice"),
])
def test_errors_name_the_field_and_save_nothing(page, owner, settings, values, field, words):
    settings.DEBUG = False
    response = page.post(URL, form_data(**values))
    assert response.status_code == 200
    assert words in " ".join(errors(response)[field])
    html = response.content.decode()
    assert "Please correct the error below." in html and f'field-{field}' in html
    assert not NotificationSettings.objects.filter(user=owner).exists()
    assert not UserChannel.objects.filter(user=owner).exists()


def test_a_new_webhook_secret_is_shown_once_then_masked(page, owner):
    response = page.post(URL, form_data(**{"failed__webhook": True}, webhook_url="https://hooks.example.com/lora"),
                         follow=True)
    secret = UserChannel.objects.get(user=owner, kind="webhook").secret
    html = response.content.decode()
    assert secret.startswith("whsec_") and secret in html and 'id="new-webhook-secret"' in html
    again = page.get(URL).content.decode()
    assert secret not in again and "whsec_…" + secret[-4:] in again

    rotated = page.post(URL, form_data(**{"failed__webhook": True}, webhook_url="https://hooks.example.com/lora",
                                       webhook_rotate=True), follow=True)
    new_secret = UserChannel.objects.get(user=owner, kind="webhook").secret
    assert new_secret != secret and new_secret in rotated.content.decode()
    # Saving again without rotating keeps the secret and shows none.
    kept = page.post(URL, form_data(**{"failed__webhook": True}, webhook_url="https://hooks.example.com/lora"),
                     follow=True)
    assert UserChannel.objects.get(user=owner, kind="webhook").secret == new_secret
    assert new_secret not in kept.content.decode()


def test_a_channel_switched_off_by_a_failure_is_shown_and_can_be_switched_on(page, owner):
    channel = UserChannel.objects.create(user=owner, kind="email")
    channel.disable("the mail server refused olivia@example.com: 550 no such user")
    html = page.get(URL).content.decode()
    assert "Email is switched off" in html and "550 no such user" in html
    assert page.post(URL, form_data(**{"completed__email": True}, email_enable=True)).status_code == 302
    channel.refresh_from_db()
    assert channel.enabled and channel.disabled_reason == ""


def test_logging_out_goes_back_to_the_login_page(page):
    response = page.post(reverse("notifications:logout"))
    assert response.status_code == 302 and response["Location"] == reverse("notifications:login")
    assert page.get(URL).status_code == 302
