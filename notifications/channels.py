"""Notification channels behind one small base, like healthchecks' transports.

    class Channel:
        def notify(self, message: Message, endpoint: UserChannel) -> None: ...

`notify` returns when the receiver accepted the message and raises `TransportError` when it
did not, saying whether trying again can help (`permanent`) and, for a receiver that asked,
when (`retry_after`). The delivery service (services.deliver_notification) decides the rest:
retry with backoff, or switch the user's channel off and stop.

`CHANNELS` (core.registry) lists the kinds: `email`, `slack`, `webhook`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import smtplib
import socket
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import requests
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email

from core.registry import Registry

TIMEOUT_SECONDS = 10


class TransportError(Exception):
    """The channel did not deliver. `permanent`: the same message will never go through (a
    refused address, a revoked Slack URL, a 4xx); otherwise try again, not before
    `retry_after` seconds when the receiver said so."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass
class Message:
    """One notification rendered for every channel; each channel takes its part."""

    id: str                      # stable across retries: Message-ID, webhook-id
    subject: str
    text: str
    html: str = ""
    slack_blocks: list[dict[str, Any]] = field(default_factory=list)
    webhook_type: str = ""
    webhook_data: dict[str, Any] = field(default_factory=dict)
    url: str = ""                # the page it is about


class Channel:
    """A way to tell someone. Subclasses implement `notify`."""

    def notify(self, message: Message, endpoint: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def check_target(self, target: str) -> str | None:
        """Why `target` cannot be used (for forms and the API), or None."""
        return None


CHANNELS: Registry[Channel] = Registry("notification channel")


@CHANNELS.register("email", label="Email")
class EmailChannel(Channel):
    """Django's email API: the console backend in the embedded default, SMTP or a
    django-anymail provider (EMAIL_BACKEND, ANYMAIL) in production."""

    def notify(self, message: Message, endpoint: Any) -> None:
        address = endpoint.address()
        if not address:
            raise TransportError("the account has no email address", permanent=True)
        email = EmailMultiAlternatives(
            subject=message.subject, body=message.text, from_email=settings.DEFAULT_FROM_EMAIL,
            to=[address], headers={"Message-ID": f"<{message.id}@{_mail_domain()}>"})
        if message.html:
            email.attach_alternative(message.html, "text/html")
        try:
            email.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused as exc:
            raise TransportError(f"the mail server refused {address}: {_smtp_reason(exc)}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            # 5xx is the server's final answer; 4xx asks to come back later.
            raise TransportError(f"mail server answered {exc.smtp_code}: {_decode(exc.smtp_error)}",
                                 permanent=500 <= exc.smtp_code < 600) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"could not reach the mail server: {exc}") from exc
        except Exception as exc:
            raise _anymail_error(exc) from exc

    def check_target(self, target: str) -> str | None:
        if not target:
            return None
        try:
            validate_email(target)
        except ValidationError:
            return f"{target!r} is not an email address"
        return None


@CHANNELS.register("slack", label="Slack")
class SlackChannel(Channel):
    """A Slack incoming webhook: Block Kit blocks with the plain text as the fallback Slack
    shows in notifications. 429 carries Retry-After; 4xx other than 429 are final (a revoked
    or mistyped URL answers 403/404 `no_service`, `invalid_token`...)."""

    def notify(self, message: Message, endpoint: Any) -> None:
        url = endpoint.target
        if not url:
            raise TransportError("no Slack webhook URL is set", permanent=True)
        problem = check_outgoing_url(url)
        if problem:
            raise TransportError(problem, permanent=True)
        body = {"text": message.text[:3000], "blocks": message.slack_blocks}
        _post(url, json.dumps(body).encode(), {"Content-Type": "application/json"}, what="Slack")

    def check_target(self, target: str) -> str | None:
        return check_outgoing_url(target)


@CHANNELS.register("webhook", label="Webhook")
class WebhookChannel(Channel):
    """A signed POST to the customer's URL, the Standard Webhooks scheme: webhook-id (stable
    across retries, so receivers drop repeats), webhook-timestamp, webhook-signature (HMAC-SHA256
    with the whsec_ secret's key). Body: {"id", "type", "timestamp", "data"}."""

    def notify(self, message: Message, endpoint: Any) -> None:
        if not endpoint.target:
            raise TransportError("no webhook URL is set", permanent=True)
        problem = check_outgoing_url(endpoint.target)
        if problem:
            raise TransportError(problem, permanent=True)
        timestamp = int(time.time())
        body = json.dumps({"id": message.id, "type": message.webhook_type,
                           "timestamp": timestamp, "data": message.webhook_data},
                          separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "webhook-id": message.id,
                   "webhook-timestamp": str(timestamp),
                   "webhook-signature": standard_webhooks_signature(endpoint.secret, message.id, timestamp, body)}
        _post(endpoint.target, body, headers, what="webhook")

    def check_target(self, target: str) -> str | None:
        return check_outgoing_url(target)


# --- Helpers ----------------------------------------------------------------------------------


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of "id.timestamp.body", keyed by the whsec_ secret's bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def check_outgoing_url(target: str) -> str | None:
    """Why we will not POST to `target`. A public host must be https (http only with DEBUG on);
    a loopback, private, link-local or reserved address (cloud metadata, the control plane's own
    services) is refused unless NOTIFICATIONS_ALLOW_PRIVATE_URLS (the tests' local receivers, a
    private deployment), which also allows plain http to it."""
    try:
        parsed = urlparse(target or "")
        hostname, port = parsed.hostname, parsed.port  # both raise ValueError on a malformed URL
    except ValueError:
        return f"{target!r} is not a valid URL"
    if parsed.scheme not in ("https", "http") or not hostname:
        return f"{target!r} is not an http(s) URL"
    try:
        infos = socket.getaddrinfo(hostname, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return f"the host {hostname!r} does not resolve"
    private = [a for a in (ipaddress.ip_address(info[4][0]) for info in infos) if not a.is_global]
    if private:
        if settings.NOTIFICATIONS_ALLOW_PRIVATE_URLS:
            return None
        return (f"{hostname!r} is a private or local address ({private[0]}); only public hosts are "
                "allowed")
    if parsed.scheme != "https" and not settings.DEBUG:
        return "the URL must use https"
    return None


def _post(url: str, body: bytes, headers: dict[str, str], *, what: str) -> None:
    try:
        # No redirects: a public URL must not bounce us to a private one.
        response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as exc:
        raise TransportError(f"could not reach the {what} URL: {exc.__class__.__name__}") from exc
    if 200 <= response.status_code < 300:
        return
    detail = f"the {what} URL answered {response.status_code}: {response.text[:200].strip()}"
    if response.status_code == 429 or response.status_code >= 500 or response.status_code == 408:
        raise TransportError(detail, retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    raise TransportError(detail, permanent=True)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _mail_domain() -> str:
    return settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"


def _decode(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _smtp_reason(exc: smtplib.SMTPRecipientsRefused) -> str:
    return "; ".join(f"{code} {_decode(text)}" for code, text in exc.recipients.values()) or "refused"


def _anymail_error(exc: Exception) -> TransportError:
    """An ESP's error through django-anymail: a refused recipient or a 4xx is final."""
    if isinstance(exc, AnymailRecipientsRefused):
        return TransportError(str(exc), permanent=True)
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None) or 0
        return TransportError(str(exc)[:500], permanent=400 <= status < 500 and status not in (408, 429))
    return TransportError(f"{exc.__class__.__name__}: {exc}")
