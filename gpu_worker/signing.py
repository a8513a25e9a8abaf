"""Standard Webhooks signatures (https://www.standardwebhooks.com/), shared by both sides.

The control plane imports this module too, so it must stay free of heavy imports.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping

from gpu_worker.contract import (
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
)

TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The request's signature headers are missing, malformed, stale or wrong."""


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, body: bytes, msg_id: str | None = None,
                   timestamp: int | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        WEBHOOK_ID_HEADER: msg_id,
        WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
        WEBHOOK_SIGNATURE_HEADER: sign(secret, msg_id, timestamp, body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> str:
    """Return the webhook id if the signature is valid; raise SignatureError otherwise.

    `headers` must be case-insensitive or use the lower-case names.
    """
    msg_id = headers.get(WEBHOOK_ID_HEADER)
    ts_text = headers.get(WEBHOOK_TIMESTAMP_HEADER)
    sig_header = headers.get(WEBHOOK_SIGNATURE_HEADER)
    if not msg_id or not ts_text or not sig_header:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(ts_text)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp is not an integer") from exc
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp is outside the 5-minute tolerance")
    expected = sign(secret, msg_id, timestamp, body)
    # The header may carry several space-separated signatures (key rotation); any may match.
    for candidate in sig_header.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return msg_id
    raise SignatureError("signature does not match")
