"""Where checkpoints, the adapter and reports go (docs/worker-contract.md, "Storage").

Keys are relative to the job's root, '/'-separated. A checkpoint is the files under
`checkpoints/step-<N>/` plus `manifest.json`, written last: a checkpoint without its manifest
does not exist, so a crash mid-upload leaves nothing that resume would pick up.

Files are streamed in both directions; nothing here holds a whole file in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import requests

from gpu_worker import signing
from gpu_worker.contract import ATTEMPT_HEADER

logger = logging.getLogger("gpu_worker.stores")

CHUNK = 1 << 20
# Files this big ask the control plane whether to upload in parts (S3's smallest part size);
# it answers from its own threshold (WORKER_MULTIPART_THRESHOLD_BYTES).
MULTIPART_ASK_BYTES = 5 * 1024 * 1024
CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
T = TypeVar("T")


class StoreError(Exception):
    """A store operation failed for good (after retries); the message says what and where."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status that ended it, if any


def checkpoint_prefix(step: int) -> str:
    return f"{CHECKPOINTS}/step-{step}/"


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]) \
            or parts[-1] in ("", ".", ".."):
        raise StoreError(f"invalid store key {key!r}: must be a relative '/'-separated path")
    return key


def _process_umask() -> int:
    """The umask, read without changing it (os.umask sets it, racing the uploader thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_mode(base: int) -> int:
    """`base` (0o644 for files, 0o755 for folders) less the umask: what the job's files get, so
    the group (a web server, a deployment step, a teammate) can read them, nobody else can
    write them, and a stricter umask still wins."""
    return base & ~_process_umask()


def share_folder(folder: Path) -> None:
    """Give `folder`, and everything below it, the group-readable modes of shared_mode."""
    folder.chmod(shared_mode(0o755))
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(shared_mode(0o755 if path.is_dir() else 0o644))


@contextmanager
def _atomic_target(path: Path) -> Iterator[IO[bytes]]:
    """Yield a temp file beside `path`; rename it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp makes the file private (0600); the stored adapter, checkpoints and reports are
    # meant to be read by others (the control plane's server, the group).
    os.fchmod(fd, shared_mode(0o644))
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _valid_manifest(manifest: Any) -> bool:
    return (isinstance(manifest, dict) and isinstance(manifest.get("step"), int)
            and isinstance(manifest.get("files"), dict))


class Store(ABC):
    """A flat key → bytes store. Implementations raise StoreError, never transport errors."""

    @abstractmethod
    def put_file(self, key: str, local_path: Path) -> None: ...

    @abstractmethod
    def get_file(self, key: str, local_path: Path) -> None:
        """Download `key` to `local_path` (replaced atomically); StoreError if it is missing."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def committed_checkpoints(self) -> list[dict]:
        """Manifests of the checkpoints whose manifest.json is stored, ascending by step."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every key starting with `prefix` (a no-op if there is none)."""


class LocalStore(Store):
    """Plain files under `root`; every write goes to a temp file that is renamed into place."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_file(self, key: str, local_path: Path) -> None:
        try:
            with Path(local_path).open("rb") as source, _atomic_target(self._path(key)) as target:
                shutil.copyfileobj(source, target, CHUNK)
        except OSError as exc:
            raise StoreError(f"cannot store {local_path} as {key} in {self.root}: {exc}") from exc

    def get_file(self, key: str, local_path: Path) -> None:
        path = self._path(key)
        try:
            with path.open("rb") as source, _atomic_target(Path(local_path)) as target:
                shutil.copyfileobj(source, target, CHUNK)
        except FileNotFoundError as exc:
            raise StoreError(f"{key} is not in the store {self.root}") from exc
        except OSError as exc:
            raise StoreError(f"cannot fetch {key} from {self.root}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            with _atomic_target(self._path(key)) as target:
                target.write(data)
        except OSError as exc:
            raise StoreError(f"cannot store {key} in {self.root}: {exc}") from exc

    def committed_checkpoints(self) -> list[dict]:
        manifests = []
        for path in (self.root / CHECKPOINTS).glob(f"step-*/{MANIFEST}"):
            try:
                manifest = json.loads(path.read_text())
            except (OSError, ValueError):
                logger.warning("ignoring unreadable checkpoint manifest %s", path)
                continue
            if _valid_manifest(manifest):
                manifests.append(manifest)
        return sorted(manifests, key=lambda m: m["step"])

    def delete_prefix(self, prefix: str) -> None:
        # Only the directory the prefix points into can hold matching keys.
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root / directory if directory else self.root
        if not base.is_dir():
            return
        try:
            for path in sorted(base.rglob("*"), reverse=True):
                key = path.relative_to(self.root).as_posix()
                if path.is_file() and key.startswith(prefix):
                    path.unlink()
                elif path.is_dir() and (key + "/").startswith(prefix) and not any(path.iterdir()):
                    path.rmdir()
            if base != self.root and (directory + "/").startswith(prefix) and not any(base.iterdir()):
                base.rmdir()
        except OSError as exc:
            raise StoreError(f"cannot delete {prefix}* from {self.root}: {exc}") from exc


class HttpStore(Store):
    """The control plane's storage API: signed control calls, then streamed PUT/GET to URLs."""

    def __init__(self, api_url: str, secret: str, *, timeout: float = 60.0, tries: int = 4,
                 backoff_initial: float = 0.5, attempt: int | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.secret = secret
        self.attempt = attempt
        self.timeout = timeout
        self.tries = max(1, tries)
        self.backoff_initial = backoff_initial
        self.session = requests.Session()

    # ----- plumbing -----

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """Run `attempt`, retrying transport errors and 5xx with backoff; 4xx fail at once."""
        for number in range(1, self.tries + 1):
            try:
                return attempt()
            except _Retryable as exc:
                if number == self.tries:
                    raise StoreError(f"{what} failed after {self.tries} tries: {exc}") from exc
                delay = self.backoff_initial * 2 ** (number - 1) * random.uniform(0.5, 1.0)
                logger.info("%s failed (%s); retrying in %.1fs", what, exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _check(self, response: requests.Response, what: str) -> requests.Response:
        if response.status_code >= 500 or response.status_code in (408, 429):
            response.close()
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            detail = response.text[:200]
            response.close()
            raise StoreError(f"{what}: HTTP {response.status_code} {detail}", status=response.status_code)
        return response

    def _control(self, method: str, path: str, payload: dict | None = None) -> requests.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        what = f"{method} {self.api_url}{path}"

        def attempt() -> requests.Response:
            headers = signing.signed_headers(self.secret, body)
            if self.attempt is not None:
                headers[ATTEMPT_HEADER] = str(self.attempt)
            if payload is not None:
                headers["content-type"] = "application/json"
            try:
                response = self.session.request(method, f"{self.api_url}{path}", data=body or None,
                                                headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                raise _Retryable(str(exc)) from exc
            return self._check(response, what)

        return self._retrying(what, attempt)

    def _signed_url(self, method: str, key: str) -> str:
        response = self._control("POST", "/sign", {"method": method, "keys": [_check_key(key)]})
        try:
            return response.json()["urls"][key]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"the control plane did not sign a {method} URL for {key}") from exc

    def _put(self, key: str, open_body: Callable[[], Any]) -> None:
        what = f"upload of {key}"

        def attempt() -> None:
            # Sign again on each try: a URL may have expired while we waited.
            url = self._signed_url("PUT", key)
            body = open_body()
            try:
                response = self.session.put(url, data=body, timeout=self.timeout)
            except requests.RequestException as exc:
                raise _Retryable(str(exc)) from exc
            finally:
                if hasattr(body, "close"):
                    body.close()
            self._check(response, what).close()

        self._retrying(what, attempt)

    # ----- Store -----

    def put_file(self, key: str, local_path: Path) -> None:
        local_path = Path(local_path)
        if not local_path.is_file():
            raise StoreError(f"cannot upload {local_path}: no such file")
        size = local_path.stat().st_size
        if size >= MULTIPART_ASK_BYTES and self._put_multipart(key, local_path, size):
            return
        # A file object makes requests stream the body with a Content-Length from fstat.
        self._put(key, lambda: local_path.open("rb"))

    def _put_multipart(self, key: str, local_path: Path, size: int) -> bool:
        """Upload in parts where the control plane says so (S3, big files): each part streamed
        from its slice of the file and retried alone. False: use a single signed PUT."""
        try:
            started = self._control("POST", "/multipart", {"action": "start", "key": _check_key(key), "size": size})
        except StoreError as exc:
            if exc.status == 404:  # a control plane without the multipart route: one signed PUT
                return False
            raise
        try:
            plan = started.json()
        except ValueError as exc:
            raise StoreError(f"the control plane's multipart answer for {key} is malformed") from exc
        if not plan.get("multipart"):
            return False
        upload_id, part_size, urls = plan["upload_id"], int(plan["part_size"]), list(plan["urls"])
        parts = []
        try:
            for number, url in enumerate(urls, start=1):
                offset = (number - 1) * part_size
                length = min(part_size, size - offset)
                parts.append({"part_number": number, "etag": self._put_part(key, url, local_path, offset, length)})
            self._control("POST", "/multipart", {"action": "complete", "key": key, "upload_id": upload_id,
                                                 "parts": parts}).close()
        except BaseException:
            try:  # don't leave billed, invisible parts behind
                self._control("POST", "/multipart", {"action": "abort", "key": key, "upload_id": upload_id}).close()
            except StoreError as exc:
                logger.warning("could not abort the multipart upload of %s: %s", key, exc)
            raise
        return True

    def _put_part(self, key: str, url: str, local_path: Path, offset: int, length: int) -> str:
        what = f"upload of {key} (bytes {offset}-{offset + length - 1})"

        def attempt() -> str:
            with _FileSlice(local_path, offset, length) as body:
                try:
                    response = self.session.put(url, data=body, timeout=self.timeout)
                except requests.RequestException as exc:
                    raise _Retryable(str(exc)) from exc
            self._check(response, what).close()
            etag = response.headers.get("ETag")
            if not etag:
                raise StoreError(f"{what}: the storage returned no ETag")
            return etag

        return self._retrying(what, attempt)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._put(key, lambda: data)

    def get_file(self, key: str, local_path: Path) -> None:
        what = f"download of {key}"

        def attempt() -> None:
            url = self._signed_url("GET", key)
            try:
                with self.session.get(url, stream=True, timeout=self.timeout) as response:
                    if response.status_code == 404:
                        raise StoreError(f"{key} is not in the store")
                    self._check(response, what)
                    with _atomic_target(Path(local_path)) as target:
                        for chunk in response.iter_content(CHUNK):
                            target.write(chunk)
            except requests.RequestException as exc:
                raise _Retryable(str(exc)) from exc
            except OSError as exc:
                raise StoreError(f"cannot write {local_path}: {exc}") from exc

        self._retrying(what, attempt)

    def committed_checkpoints(self) -> list[dict]:
        response = self._control("GET", "/checkpoints")
        try:
            committed = response.json()["committed"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError("the control plane's checkpoint list is malformed") from exc
        manifests = [c.get("manifest") for c in committed if isinstance(c, dict)]
        return sorted((m for m in manifests if _valid_manifest(m)), key=lambda m: m["step"])

    def delete_prefix(self, prefix: str) -> None:
        self._control("POST", "/delete", {"prefix": prefix}).close()


class _FileSlice:
    """`length` bytes of a file from `offset`, read in chunks: requests streams it as a request
    body with that Content-Length (it uses __len__), never holding the part in memory."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self._handle = path.open("rb")
        self._handle.seek(offset)
        self._left = length
        self._length = length

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._handle.read(size)
        self._left -= len(data)
        return data

    def __enter__(self) -> _FileSlice:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._handle.close()


class _Retryable(Exception):
    """A transient failure inside HttpStore; turned into StoreError once retries run out."""


def open_store(spec: dict, *, secret: str | None = None, attempt: int | None = None) -> Store:
    """Build the store `config.store` describes: {"kind": "local", "root"} or {"kind": "http", "api_url"}.
    An http store sends `attempt` with each control call, so a superseded attempt is refused (409)."""
    kind = spec.get("kind")
    if kind == "local":
        return LocalStore(spec["root"])
    if kind == "http":
        if not secret:
            raise StoreError("an http store needs the job's webhook_secret to sign its requests")
        return HttpStore(spec["api_url"], secret, attempt=attempt)
    raise StoreError(f"unknown store kind {kind!r}: expected 'local' or 'http'")


# ----- checkpoints -----

def commit_checkpoint(store: Store, local_dir: Path, step: int, attempt: int) -> dict:
    """Upload every file under `local_dir` to checkpoints/step-<step>/, then the manifest, last."""
    local_dir = Path(local_dir)
    prefix = checkpoint_prefix(step)
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        name = path.relative_to(local_dir).as_posix()
        if name == MANIFEST:
            continue  # ours is written below; a stale local one must not stand in for it
        files[name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
        store.put_file(prefix + name, path)
    manifest = {"step": step, "attempt": attempt,
                "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "files": files}
    store.put_bytes(prefix + MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def fetch_checkpoint(store: Store, manifest: dict, dest: Path) -> Path:
    """Download the checkpoint `manifest` describes into `dest`, verifying size and sha256."""
    dest = Path(dest)
    prefix = checkpoint_prefix(manifest["step"])
    for name, meta in manifest["files"].items():
        _check_key(name)
        target = dest / name
        store.get_file(prefix + name, target)
        size = target.stat().st_size
        if size != meta["size"]:
            raise StoreError(f"{prefix}{name}: expected {meta['size']} bytes, got {size}")
        if _sha256(target) != meta["sha256"]:
            raise StoreError(f"{prefix}{name}: sha256 mismatch (corrupt or replaced blob)")
    return dest


def prune_checkpoints(store: Store, keep: int) -> list[int]:
    """Delete all but the newest `keep` committed checkpoints; return the deleted steps."""
    committed = store.committed_checkpoints()
    doomed = committed[:-keep] if keep > 0 else committed
    deleted = []
    for manifest in doomed:
        prefix = checkpoint_prefix(manifest["step"])
        # Manifest first: if we die halfway, what is left is not a committed checkpoint.
        store.delete_prefix(prefix + MANIFEST)
        store.delete_prefix(prefix)
        deleted.append(manifest["step"])
    return deleted
