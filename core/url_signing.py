"""Signed tokens carried in URLs (django.core.signing, HMAC over SECRET_KEY with a salt each).

Two kinds, with separate salts so one can never stand in for the other:

- blob tokens: (key, method, expiry) for the filesystem stand-in of S3 presigned URLs, used by
  the worker (PUT/GET) and by download redirects;
- download tokens: (job, kind, format, issuing user, expiry and, for a deployment package
  downloaded before QA approved the model, staff's override reason) for the customer's 24-hour
  links.

The expiry is inside the signed payload, so changing it breaks the signature. Signed is not
encrypted: anyone holding a link can read its payload, the override reason included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core import signing

BLOB_SALT = "artifacts.blob"
DOWNLOAD_SALT = "artifacts.download"


class TokenError(ValueError):
    """A token that is altered, expired, or used for something it does not grant."""


def sign_blob_token(key: str, method: str, expires: int) -> str:
    payload = {"k": key, "m": method, "x": int(time.time()) + int(expires)}
    return signing.dumps(payload, salt=BLOB_SALT, compress=True)


def read_blob_token(token: str, method: str) -> str:
    """The storage key a blob token grants `method` on; TokenError if it does not."""
    payload = _load(token, BLOB_SALT)
    if payload.get("m") != method:
        raise TokenError(f"this URL does not allow {method}")
    key = payload.get("k")
    if not isinstance(key, str):
        raise TokenError("malformed token")
    return key


@dataclass(frozen=True)
class DownloadGrant:
    job_id: str
    kind: str
    fmt: str
    user_id: int
    expires_at: int
    override: str = ""


def sign_download_token(job_id, kind: str, fmt: str, user_id: int, expires: int,
                        override: str = "") -> tuple[str, int]:
    """A token for one artifact of one job, issued to `user_id`, carrying `override` (staff's
    reason for taking a package QA has not approved) when there is one; returns (token, expires_at)."""
    expires_at = int(time.time()) + int(expires)
    payload = {"j": str(job_id), "k": kind, "f": fmt, "u": user_id, "x": expires_at}
    if override:
        # Only when present, so every other link is exactly what it was before overrides existed.
        payload["o"] = override
    return signing.dumps(payload, salt=DOWNLOAD_SALT, compress=True), expires_at


def read_download_token(token: str) -> DownloadGrant:
    """The grant a download token carries; TokenError if it is altered, expired or malformed.
    Tokens signed before the override existed read with none."""
    payload = _load(token, DOWNLOAD_SALT)
    override = payload.get("o") or ""
    if not isinstance(override, str):
        raise TokenError("malformed token")
    try:
        return DownloadGrant(job_id=str(payload["j"]), kind=str(payload["k"]),
                             fmt=str(payload.get("f") or ""), user_id=int(payload["u"]),
                             expires_at=int(payload["x"]), override=override)
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenError("malformed token") from exc


def _load(token: str, salt: str) -> dict:
    try:
        payload = signing.loads(token, salt=salt)
    except signing.BadSignature as exc:
        raise TokenError("bad signature") from exc
    if not isinstance(payload, dict):
        raise TokenError("malformed token")
    expiry = payload.get("x")
    if not isinstance(expiry, int) or expiry < time.time():
        raise TokenError("this link has expired")
    return payload
