"""Object storage the pipeline stands on: keys, streaming reads and writes, signed URLs.

Everything goes through Django's default storage, which is either FileSystemStorage (the
embedded default, files under MEDIA_ROOT) or django-storages' S3Storage (STORAGE_BACKEND=s3).
Keys are '/'-separated and relative to the storage's root (for S3, to its `location`):

    datasets/<sha256>.<ext>
    jobs/<job id>/checkpoints/step-<N>/...  (+ manifest.json, written last)
    jobs/<job id>/adapter/...   jobs/<job id>/reports/...   jobs/<job id>/exports/...

Nothing here reads a whole file into memory. Writes replace the key in place (the worker
re-uploads a file after a retry; FileSystemStorage.save() would pick a new name instead).

Signed URLs: on S3, boto3's presigned get_object/put_object URLs on the storage's bucket. On the
filesystem, a URL to this app's blob view carrying a django.core.signing token over
(key, method, expiry); an altered or expired token gets 403 and nothing is served.

Size limits: the worker uploads with one presigned PUT per file, which S3 accepts up to 5 GB
(a LoRA adapter or optimizer state is far below that; a full model would not be). Copies the
control plane makes itself (export ZIPs) go through boto3's upload_fileobj, which switches to
multipart above TransferConfig's threshold, so they have no such limit.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.http import FileResponse, HttpResponse, JsonResponse
from django.urls import reverse

from . import url_signing

CHUNK = 1 << 20
S3_SINGLE_PUT_LIMIT = 5 * 1024**3
METHODS = ("GET", "PUT")
# boto3 switches to a multipart upload above this size (parts of the same size).
MULTIPART_THRESHOLD = 64 * CHUNK


class InvalidKey(ValueError):
    """A key that is absolute, empty, or climbs out of its prefix."""


def default_storage() -> Storage:
    return storages["default"]


def is_s3(storage: Storage | None = None) -> bool:
    storage = storage or default_storage()
    return hasattr(storage, "bucket") and hasattr(storage, "connection")


def clean_relative_key(rel: str, *, allow_trailing_slash: bool = False) -> str:
    """Return `rel` if it is a safe relative key; raise InvalidKey otherwise.

    No leading '/', no backslashes or NULs, no empty, '.' or '..' segments: a key can never
    leave the prefix it is joined to. A trailing '/' is allowed for prefixes only.
    """
    if not isinstance(rel, str) or not rel or len(rel) > 1024:
        raise InvalidKey(f"invalid key {rel!r}: must be a non-empty string")
    if rel.startswith("/") or "\\" in rel or "\x00" in rel:
        raise InvalidKey(f"invalid key {rel!r}: must be a relative '/'-separated path")
    body = rel[:-1] if allow_trailing_slash and rel.endswith("/") else rel
    if any(part in ("", ".", "..") for part in body.split("/")):
        raise InvalidKey(f"invalid key {rel!r}: empty, '.' or '..' segments are not allowed")
    return rel


def job_prefix(job_id) -> str:
    return f"jobs/{job_id}/"


def job_key(job_id, rel: str = "", *, allow_trailing_slash: bool = False) -> str:
    """The storage key of `rel` inside the job's root, `jobs/<job id>/<rel>`."""
    if not rel:
        return job_prefix(job_id)
    return job_prefix(job_id) + clean_relative_key(rel, allow_trailing_slash=allow_trailing_slash)


# --- S3 plumbing -------------------------------------------------------------------------------


def _s3_client(storage: Storage):
    return storage.connection.meta.client


def _s3_key(storage: Storage, key: str) -> str:
    # S3Storage's own normalisation: prepends `location` and refuses to climb out of it.
    return storage._normalize_name(key)


def _s3_location_prefix(storage: Storage) -> str:
    location = (storage.location or "").strip("/")
    return f"{location}/" if location else ""


# --- Start-up ---------------------------------------------------------------------------------


def ensure_bucket() -> bool:
    """Create the storage's bucket (S3) or MEDIA_ROOT (filesystem) if missing; True if created.

    Run at every start (`manage.py ensure_bucket`, docker-compose's migrate service): a fresh
    MinIO has no bucket, and every upload would fail with NoSuchBucket. Safe to run concurrently:
    a bucket another process created in the meantime counts as there.
    """
    storage = default_storage()
    if not is_s3(storage):
        root = Path(storage.location)
        if root.is_dir():
            return False
        root.mkdir(parents=True, exist_ok=True)
        return True
    from botocore.exceptions import ClientError

    client, bucket = _s3_client(storage), storage.bucket.name
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise  # 403: the bucket exists but these credentials may not use it; say so
    region = client.meta.region_name
    # us-east-1 is S3's default and refuses an explicit LocationConstraint.
    params = ({"CreateBucketConfiguration": {"LocationConstraint": region}}
              if region and region != "us-east-1" else {})
    try:
        client.create_bucket(Bucket=bucket, **params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
        return False
    return True


# --- Reading, writing, listing ----------------------------------------------------------------


def exists(key: str) -> bool:
    return default_storage().exists(key)


def size(key: str) -> int:
    return default_storage().size(key)


def open_read(key: str) -> IO[bytes]:
    """A binary file object streaming `key` (S3: ranged reads, never the whole object)."""
    return default_storage().open(key, "rb")


def read_bytes(key: str, limit: int = 10 * 1024 * 1024) -> bytes:
    """Read a small object (manifests, summaries); refuse anything over `limit`."""
    with open_read(key) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{key} is larger than {limit} bytes")
    return data


def save_stream(key: str, source: IO[bytes], *, length: int | None = None) -> int:
    """Write `source` to `key`, replacing what is there; return the number of bytes written.

    Filesystem: into a temporary file beside the target, renamed into place, so a reader never
    sees half a file. S3: upload_fileobj, multipart above TransferConfig's threshold.
    """
    storage = default_storage()
    if is_s3(storage):
        from boto3.s3.transfer import TransferConfig

        counter = _CountingReader(source)
        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD,
                                multipart_chunksize=MULTIPART_THRESHOLD)
        _s3_client(storage).upload_fileobj(counter, storage.bucket.name, _s3_key(storage, key),
                                           Config=config)
        return counter.count
    path = Path(storage.path(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    written = 0
    try:
        with os.fdopen(fd, "wb") as target:
            remaining = length
            while remaining is None or remaining > 0:
                chunk = source.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    break
                target.write(chunk)
                written += len(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
        if length is not None and written != length:
            raise OSError(f"short upload for {key}: expected {length} bytes, got {written}")
        # mkstemp makes 0600 files; give them the mode FileSystemStorage.save() would.
        os.chmod(tmp, storage.file_permissions_mode or 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written


def save_file(key: str, local_path: Path) -> int:
    with Path(local_path).open("rb") as source:
        return save_stream(key, source)


def save_bytes(key: str, data: bytes) -> int:


    return save_stream(key, io.BytesIO(data), length=len(data))


def list_keys(prefix: str) -> Iterator[tuple[str, int]]:
    """(key, size) of every object whose key starts with `prefix`, in key order."""
    storage = default_storage()
    if is_s3(storage):
        location = _s3_location_prefix(storage)
        paginator = _s3_client(storage).get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=storage.bucket.name, Prefix=location + prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(location):], item["Size"]
        return
    root = Path(storage.location)
    directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    base = root / directory
    if not base.is_dir():
        return
    found = []
    for dirpath, _dirnames, filenames in os.walk(base):
        for name in filenames:
            if name.startswith(".") and name.endswith(".part"):
                continue  # an upload in progress
            path = Path(dirpath) / name
            key = path.relative_to(root).as_posix()
            if key.startswith(prefix):
                found.append((key, path.stat().st_size))
    yield from sorted(found)


def list_dirs(prefix: str) -> list[str]:
    """The immediate 'sub-folder' names under `prefix` (which ends with '/')."""
    storage = default_storage()
    if is_s3(storage):
        location = _s3_location_prefix(storage)
        paginator = _s3_client(storage).get_paginator("list_objects_v2")
        names = []
        for page in paginator.paginate(Bucket=storage.bucket.name, Prefix=location + prefix,
                                       Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"][len(location + prefix):].rstrip("/"))
        return sorted(names)
    try:
        dirs, _files = storage.listdir(prefix)
    except FileNotFoundError:
        return []
    return sorted(dirs)


def delete_prefix(prefix: str) -> int:
    """Delete every object whose key starts with `prefix`; return the bytes freed."""
    storage = default_storage()
    doomed = list(list_keys(prefix))
    freed = sum(size for _key, size in doomed)
    if is_s3(storage):
        client = _s3_client(storage)
        location = _s3_location_prefix(storage)
        for start in range(0, len(doomed), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": location + key} for key, _size in doomed[start:start + 1000]]
            client.delete_objects(Bucket=storage.bucket.name, Delete={"Objects": batch, "Quiet": True})
        return freed
    for key, _size in doomed:
        storage.delete(key)
    _remove_empty_dirs(Path(storage.location), prefix)
    return freed


def _remove_empty_dirs(root: Path, prefix: str) -> None:
    directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    base = root / directory
    if not directory or not base.is_dir():
        return
    for dirpath, _dirnames, _filenames in sorted(os.walk(base), key=lambda w: -len(w[0])):
        path = Path(dirpath)
        key = path.relative_to(root).as_posix() + "/"
        if key.startswith(prefix) and not any(path.iterdir()):
            path.rmdir()


def copy_to_local(key: str, local_path: Path) -> Path:
    local_path = Path(local_path)
    local_path.parent.mkdir(parents=True, exist_ok=True)
    with open_read(key) as source, local_path.open("wb") as target:
        shutil.copyfileobj(source, target, CHUNK)
    return local_path


# --- Signed URLs ------------------------------------------------------------------------------


def presigned_url(key: str, method: str = "GET", expires: int = 3600, *,
                  base_url: str | None = None, filename: str | None = None,
                  content_type: str | None = None) -> str:
    """A URL that lets its holder GET or PUT `key` for `expires` seconds, with no credentials.

    `base_url` makes the filesystem URL absolute (the worker is on another machine); it defaults
    to settings.PUBLIC_BASE_URL. `filename` (an attachment's name) and `content_type` set the
    headers of S3's answer to a GET, whatever the object was stored with.
    """
    if method not in METHODS:
        raise ValueError(f"method must be GET or PUT, not {method!r}")
    storage = default_storage()
    if is_s3(storage):
        params = {"Bucket": storage.bucket.name, "Key": _s3_key(storage, key)}
        if filename and method == "GET":
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        if content_type and method == "GET":
            params["ResponseContentType"] = content_type
        operation = "get_object" if method == "GET" else "put_object"
        return _s3_client(storage).generate_presigned_url(operation, Params=params,
                                                          ExpiresIn=int(expires))
    token = url_signing.sign_blob_token(key, method, expires)
    path = reverse("artifacts-worker:blob", kwargs={"token": token})
    return urljoin((base_url or settings.PUBLIC_BASE_URL).rstrip("/") + "/", path.lstrip("/"))


S3_MIN_PART = 5 * 1024 * 1024
S3_MAX_PARTS = 10_000


def multipart_part_size(size: int, preferred: int) -> int:
    """The part size for a multipart upload of `size` bytes: `preferred`, raised (to a whole MiB)
    just enough that the upload needs at most S3_MAX_PARTS parts, and never below S3's 5 MiB
    minimum. Pure; Hypothesis-tested."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    part = max(preferred, S3_MIN_PART)
    needed = -(-size // S3_MAX_PARTS)  # ceil
    if part < needed:
        mib = 1024 * 1024
        part = -(-needed // mib) * mib
    return part


def multipart_supported() -> bool:
    return is_s3(default_storage())


def start_multipart(key: str, size: int, part_size: int, expires: int) -> dict[str, Any]:
    """Create an S3 multipart upload of `key` and presign a PUT URL for each part."""
    storage = default_storage()
    client, bucket, s3_key = _s3_client(storage), storage.bucket.name, _s3_key(storage, key)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=s3_key)["UploadId"]
    count = max(1, -(-size // part_size))
    urls = [client.generate_presigned_url("upload_part", ExpiresIn=int(expires), Params={
        "Bucket": bucket, "Key": s3_key, "UploadId": upload_id, "PartNumber": number})
        for number in range(1, count + 1)]
    return {"upload_id": upload_id, "part_size": part_size, "urls": urls}


def complete_multipart(key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
    storage = default_storage()
    _s3_client(storage).complete_multipart_upload(
        Bucket=storage.bucket.name, Key=_s3_key(storage, key), UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": int(p["part_number"]), "ETag": str(p["etag"])}
                                   for p in sorted(parts, key=lambda p: int(p["part_number"]))]})


def abort_multipart(key: str, upload_id: str) -> None:
    storage = default_storage()
    _s3_client(storage).abort_multipart_upload(Bucket=storage.bucket.name, Key=_s3_key(storage, key),
                                               UploadId=upload_id)


class _CountingReader:
    """Wraps a file object to count the bytes boto3 reads from it."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.count += len(data)
        return data


def serve_blob(key: str, filename: str | None = None,
               content_type: str = "application/octet-stream") -> HttpResponse:
    """Stream a stored blob (an attachment named `filename`, if given); a JSON 404 if absent."""
    if not exists(key):
        return JsonResponse({"detail": "no such blob"}, status=404)
    response = FileResponse(open_read(key), as_attachment=bool(filename),
                            filename=filename or "", content_type=content_type)
    response["Content-Length"] = str(size(key))
    return response
