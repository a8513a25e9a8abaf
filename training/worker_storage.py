"""The storage API the worker speaks (docs/worker-contract.md, "Storage"; gpu_worker.stores.HttpStore).

    POST /api/worker/jobs/<job id>/storage/sign         {"method", "keys"} -> {"urls": {key: url}}
    GET  /api/worker/jobs/<job id>/storage/checkpoints  -> {"committed": [{"step", "manifest"}]}
    POST /api/worker/jobs/<job id>/storage/delete       {"prefix"} -> 204
    POST /api/worker/jobs/<job id>/storage/multipart    start / complete / abort an S3 multipart upload
    GET|PUT /api/worker/blob/<token>                    filesystem storage only: the signed blob

The control calls are authenticated only by the job's secret (Standard Webhooks signature,
gpu_worker.signing.verify): no session, no token, no CSRF. Keys are relative to the job's root
and cannot leave it. A finished job gets 409, which HttpStore turns into a StoreError at once;
a cancelled one still takes its current attempt's last checkpoint, saved as the worker stops.

Attempt fencing: every control call carries its attempt in an `x-worker-attempt` header
(HttpStore sends it); one without it, or not an integer, gets 400 naming the header, and one
that is not the job's current attempt gets 409, so a superseded attempt that still holds the
secret can neither sign uploads nor delete checkpoints (its webhook reports get 409 too, which
makes it exit).

An unknown or never-started job is checked against a random secret, so it fails exactly as a bad
signature does. Every answer is JSON: {"detail": ...}, with {"errors": {name: message}} when one
field or header is at fault; a body over WEBHOOK_MAX_BODY_BYTES (at most 1 MiB here) is a 413.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from core import storage
from core.url_signing import TokenError, read_blob_token
from gpu_worker import signing as worker_signing
from gpu_worker.contract import ATTEMPT_HEADER

from .lifecycle import Status
from .models import TrainingJob

logger = logging.getLogger("training.worker_storage")

# Control calls are small (1000 keys to sign is ~100 KB); the webhook's limit caps it further.
MAX_CONTROL_BODY = 1024 * 1024
MAX_KEYS_PER_SIGN = 1000
MANIFEST = "manifest.json"
# What a worker reads and writes (docs/worker-contract.md); exports/ belong to the control plane.
WORKER_AREAS = ("checkpoints/", "adapter/", "reports/")


class _Refused(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def worker_store_spec(job_id, base_url: str | None = None) -> dict[str, str]:
    """`config.store` for a worker that reaches storage only through this control plane's API
    (a RunPod pod: no credentials, just the job's secret and the URLs we sign)."""
    sign_path = reverse("artifacts-worker:sign", kwargs={"job_id": job_id})
    api_url = (base_url or settings.PUBLIC_BASE_URL).rstrip("/") + sign_path.rsplit("/", 1)[0]
    return {"kind": "http", "api_url": api_url}


def _error(status: int, message: str, field: str | None = None) -> JsonResponse:
    body: dict[str, Any] = {"detail": message}
    if field is not None:
        body["errors"] = {field: message}
    return JsonResponse(body, status=status)


def max_control_body() -> int:
    return min(MAX_CONTROL_BODY, settings.WEBHOOK_MAX_BODY_BYTES)


def _control_body(request: HttpRequest) -> bytes:
    try:
        length = int(request.headers.get("content-length") or 0)
    except ValueError as exc:
        raise _Refused(400, "bad content-length", "content-length") from exc
    if length < 0:
        raise _Refused(400, "bad content-length", "content-length")
    limit = max_control_body()
    if length > limit:
        raise _Refused(413, f"the request body is limited to {limit} bytes")
    return request.read(length) if length else b""


def _authenticated_job(request: HttpRequest, job_id, body: bytes) -> TrainingJob:
    """The job whose secret signed this request; refuse terminal jobs and foreign attempts."""
    job = TrainingJob.objects.filter(pk=job_id).only("id", "secret", "status", "attempt").first()
    # An unknown or never-started job is verified against a secret nobody has: it fails exactly
    # as a bad signature does (same answer, same work), so nothing leaks about which jobs exist.
    secret = job.secret if job is not None and job.secret else secrets.token_urlsafe(32)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        worker_signing.verify(secret, headers, body)
    except worker_signing.SignatureError as exc:
        raise _Refused(401, str(exc)) from exc
    if job is None:  # unreachable: nobody holds the random secret
        raise _Refused(401, "signature does not match")
    attempt = _attempt(headers)
    # A cancelled job's current attempt may still store the checkpoint it saves as it stops
    # (its webhook takes that last word too: ingest.CANCELLED_LAST_WORDS); a finished one may not.
    if job.is_terminal and job.status != Status.CANCELLED:
        raise _Refused(409, f"the job is {job.status}; storage is closed to workers")
    if attempt != job.attempt:
        raise _Refused(409, f"attempt {attempt} was superseded by attempt {job.attempt}")
    return job


def _attempt(headers: dict[str, str]) -> int:
    """The caller's attempt: required, so no call escapes the superseded-attempt check."""
    value = headers.get(ATTEMPT_HEADER, "")
    if not value.isascii() or not value.isdigit():
        raise _Refused(400, "required: the worker's attempt number, a non-negative integer", ATTEMPT_HEADER)
    return int(value)


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"null")
    except ValueError as exc:
        raise _Refused(400, "the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise _Refused(400, "the body must be a JSON object")
    return payload


def _control(view):
    """Turn _Refused and invalid keys into JSON errors; keep views to their happy path."""

    def wrapped(request: HttpRequest, job_id) -> HttpResponse:
        try:
            return view(request, job_id)
        except _Refused as exc:
            return _error(exc.status, str(exc), exc.field)
        except storage.InvalidKey as exc:
            return _error(400, str(exc))

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return csrf_exempt(wrapped)


@_control
@require_http_methods(["POST"])
def sign(request: HttpRequest, job_id) -> HttpResponse:
    body = _control_body(request)
    job = _authenticated_job(request, job_id, body)
    payload = _json(body)
    method, keys = payload.get("method"), payload.get("keys")
    if method not in storage.METHODS:
        raise _Refused(400, "method must be GET or PUT")
    if not isinstance(keys, list) or not keys or len(keys) > MAX_KEYS_PER_SIGN:
        raise _Refused(400, f"keys must be a list of 1 to {MAX_KEYS_PER_SIGN} keys")
    outside = [key for key in keys if not isinstance(key, str) or not key.startswith(WORKER_AREAS)]
    if outside:
        raise _Refused(400, f"keys must be under {', '.join(WORKER_AREAS)}: {outside[:3]!r}")
    base_url = request.build_absolute_uri("/")
    urls = {
        key: storage.presigned_url(storage.job_key(job.pk, key), method,
                                   settings.WORKER_URL_TTL_SECONDS, base_url=base_url)
        for key in keys
    }
    return JsonResponse({"urls": urls})


@_control
@require_http_methods(["POST"])
def multipart(request: HttpRequest, job_id) -> HttpResponse:
    """Big uploads to S3 in parts. {"action": "start", "key", "size"} -> {"multipart": false} (use a
    signed PUT: filesystem storage, or smaller than WORKER_MULTIPART_THRESHOLD_BYTES) or
    {"multipart": true, "upload_id", "part_size", "urls": [one PUT URL per part]};
    {"action": "complete", "key", "upload_id", "parts": [{"part_number", "etag"}]} -> 204;
    {"action": "abort", "key", "upload_id"} -> 204."""
    body = _control_body(request)
    job = _authenticated_job(request, job_id, body)
    payload = _json(body)
    action, key = payload.get("action"), payload.get("key")
    if not isinstance(key, str) or not key.startswith(WORKER_AREAS):
        raise _Refused(400, f"key must be under {', '.join(WORKER_AREAS)}")
    full_key = storage.job_key(job.pk, key)
    if action == "start":
        size = payload.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _Refused(400, "size must be the file's size in bytes")
        if not storage.multipart_supported() or size < settings.WORKER_MULTIPART_THRESHOLD_BYTES:
            return JsonResponse({"multipart": False})
        part_size = storage.multipart_part_size(size, settings.WORKER_MULTIPART_PART_BYTES)
        started = storage.start_multipart(full_key, size, part_size, settings.WORKER_URL_TTL_SECONDS)
        logger.info("worker of job %s: multipart upload of %s (%d bytes, %d parts)", job.pk, key, size,
                    len(started["urls"]))
        return JsonResponse({"multipart": True, **started})
    upload_id = payload.get("upload_id")
    if not isinstance(upload_id, str) or not upload_id:
        raise _Refused(400, "upload_id is required")
    from botocore.exceptions import ClientError

    if action == "complete":
        parts = payload.get("parts")
        if not isinstance(parts, list) or not parts or not all(
                isinstance(p, dict) and isinstance(p.get("part_number"), int) and isinstance(p.get("etag"), str)
                for p in parts):
            raise _Refused(400, "parts must be a list of {part_number, etag}")
        try:
            storage.complete_multipart(full_key, upload_id, parts)
        except ClientError as exc:  # a wrong ETag, a missing part, an unknown upload id
            raise _Refused(400, f"S3 refused to complete the upload: {exc.response['Error'].get('Code')}") from exc
        return HttpResponse(status=204)
    if action == "abort":
        try:
            storage.abort_multipart(full_key, upload_id)
        except ClientError as exc:
            raise _Refused(400, f"S3 refused to abort the upload: {exc.response['Error'].get('Code')}") from exc
        return HttpResponse(status=204)
    raise _Refused(400, "action must be start, complete or abort")


@_control
@require_http_methods(["GET"])
def checkpoints(request: HttpRequest, job_id) -> HttpResponse:
    job = _authenticated_job(request, job_id, b"")
    return JsonResponse({"committed": committed_checkpoints(job.pk)})


@_control
@require_http_methods(["POST"])
def delete(request: HttpRequest, job_id) -> HttpResponse:
    body = _control_body(request)
    job = _authenticated_job(request, job_id, body)
    prefix = _json(body).get("prefix")
    # Prefixes only: an empty prefix would wipe the job's adapter and reports too.
    key_prefix = storage.job_key(job.pk, prefix, allow_trailing_slash=True) if prefix else None
    if key_prefix is None or not prefix.startswith(WORKER_AREAS):
        raise _Refused(400, f"prefix must be a relative key prefix under {', '.join(WORKER_AREAS)}")
    freed = storage.delete_prefix(key_prefix)
    logger.info("worker of job %s deleted %s* (%d bytes)", job.pk, prefix, freed)
    return HttpResponse(status=204)


def committed_checkpoints(job_id) -> list[dict[str, Any]]:
    """Checkpoints whose manifest.json is stored, ascending by step (newest last)."""
    root = storage.job_prefix(job_id) + "checkpoints/"
    committed = []
    for name in storage.list_dirs(root):
        if not name.startswith("step-"):
            continue
        key = f"{root}{name}/{MANIFEST}"
        if not storage.exists(key):
            continue  # uploaded files but no manifest: not a checkpoint
        try:
            manifest = json.loads(storage.read_bytes(key))
            step = int(manifest["step"])
        except (ValueError, KeyError, TypeError, OSError):
            logger.warning("ignoring unreadable checkpoint manifest %s", key)
            continue
        committed.append({"step": step, "manifest": manifest})
    return sorted(committed, key=lambda c: c["step"])


# --- Filesystem blobs ------------------------------------------------------------------------


@csrf_exempt
@require_http_methods(["GET", "HEAD", "PUT"])
def blob(request: HttpRequest, token: str) -> HttpResponse:
    """Serve or store the key a signed token names (the filesystem stand-in for S3 URLs)."""
    method = "GET" if request.method == "HEAD" else request.method
    try:
        key = read_blob_token(token, method)
        storage.clean_relative_key(key)
    except (TokenError, storage.InvalidKey) as exc:
        return _error(403, str(exc))
    if method == "GET":
        return storage.serve_blob(key)
    return _store_blob(request, key)


def _store_blob(request: HttpRequest, key: str) -> HttpResponse:
    length_header = request.headers.get("content-length")
    if length_header is None:
        return _error(411, "content-length required")
    try:
        length = int(length_header)
    except ValueError:
        return _error(400, "bad content-length")
    if length < 0 or length > settings.ARTIFACT_MAX_UPLOAD_BYTES:
        return _error(413, f"a single upload is limited to {settings.ARTIFACT_MAX_UPLOAD_BYTES} bytes")
    try:
        # `request` is a stream bounded by Content-Length; never request.body for blobs.
        storage.save_stream(key, request, length=length)
    except OSError as exc:
        logger.warning("upload of %s failed: %s", key, exc)
        return _error(400, f"upload failed: {exc}")
    return HttpResponse(status=201)

