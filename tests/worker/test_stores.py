"""Stores: the same behaviour from LocalStore and HttpStore (against the local receiver)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpu_worker.stores import (
    HttpStore,
    LocalStore,
    Store,
    StoreError,
    commit_checkpoint,
    fetch_checkpoint,
    open_store,
    prune_checkpoints,
)

from .receiver import Receiver


@dataclass
class StoreUnderTest:
    store: Store
    blob_path: Callable[[str], Path]  # where a key's bytes live, to corrupt them
    rx: Receiver | None = None


@pytest.fixture(params=["local", "http"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreUnderTest]:
    if request.param == "local":
        store = open_store({"kind": "local", "root": str(tmp_path / "store")})
        assert isinstance(store, LocalStore)
        yield StoreUnderTest(store, lambda key: store.root / key)
        return
    with Receiver(tmp_path / "receiver") as rx:
        store = open_store({"kind": "http", "api_url": rx.store_url}, secret=rx.secret)
        assert isinstance(store, HttpStore)
        store.backoff_initial = 0.001  # keep retry tests fast
        yield StoreUnderTest(store, rx.blob_path, rx)


def make_checkpoint(directory: Path, step: int) -> Path:
    (directory / "nested").mkdir(parents=True, exist_ok=True)
    (directory / "adapter_model.safetensors").write_bytes(os.urandom(4096) + bytes([step % 256]))
    (directory / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (directory / "nested" / "rng.bin").write_bytes(b"rng" * 10)
    return directory


def test_put_and_get_roundtrip_a_multi_megabyte_file(subject: StoreUnderTest, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(6 * 1024 * 1024 + 123))
    subject.store.put_file("adapter/adapter_model.safetensors", source)
    copy = tmp_path / "out" / "copy.bin"
    subject.store.get_file("adapter/adapter_model.safetensors", copy)
    assert copy.read_bytes() == source.read_bytes()
    assert not list(copy.parent.glob("*.tmp"))  # the temp file was renamed into place


def test_put_bytes_then_get(subject: StoreUnderTest, tmp_path: Path) -> None:
    subject.store.put_bytes("reports/summary.json", b'{"ok": true}')
    subject.store.get_file("reports/summary.json", tmp_path / "summary.json")
    assert (tmp_path / "summary.json").read_bytes() == b'{"ok": true}'


def test_getting_a_missing_key_raises_store_error(subject: StoreUnderTest, tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        subject.store.get_file("reports/nope.json", tmp_path / "nope.json")
    assert not (tmp_path / "nope.json").exists()


def test_keys_must_stay_inside_the_store(subject: StoreUnderTest) -> None:
    for key in ("../escape", "/abs/path", "a//b", ""):
        with pytest.raises(StoreError):
            subject.store.put_bytes(key, b"x")


def test_committed_checkpoints_lists_manifests_by_step(subject: StoreUnderTest, tmp_path: Path) -> None:
    for step in (200, 100):
        manifest = commit_checkpoint(subject.store, make_checkpoint(tmp_path / f"ck{step}", step),
                                     step=step, attempt=2)
    assert manifest["step"] == 100 and manifest["attempt"] == 2 and manifest["created_at"]
    assert set(manifest["files"]) == {"adapter_model.safetensors", "trainer_state.json", "nested/rng.bin"}
    state = (tmp_path / "ck100" / "trainer_state.json").read_bytes()
    assert manifest["files"]["trainer_state.json"] == {"size": len(state),
                                                       "sha256": hashlib.sha256(state).hexdigest()}
    committed = subject.store.committed_checkpoints()
    assert [m["step"] for m in committed] == [100, 200]
    assert committed[0] == manifest


def test_a_checkpoint_without_its_manifest_does_not_exist(subject: StoreUnderTest, tmp_path: Path) -> None:
    commit_checkpoint(subject.store, make_checkpoint(tmp_path / "ck1", 100), step=100, attempt=1)
    half = make_checkpoint(tmp_path / "ck2", 200)
    for name in ("adapter_model.safetensors", "trainer_state.json"):
        subject.store.put_file(f"checkpoints/step-200/{name}", half / name)  # died before the manifest
    subject.store.put_bytes("checkpoints/step-300/manifest.json", b"{not json")
    assert [m["step"] for m in subject.store.committed_checkpoints()] == [100]


def test_prune_keeps_the_newest_k(subject: StoreUnderTest, tmp_path: Path) -> None:
    for step in (100, 200, 300, 400, 1000):
        commit_checkpoint(subject.store, make_checkpoint(tmp_path / f"ck{step}", step), step=step, attempt=1)
    assert prune_checkpoints(subject.store, keep=2) == [100, 200, 300]
    assert [m["step"] for m in subject.store.committed_checkpoints()] == [400, 1000]
    with pytest.raises(StoreError):
        subject.store.get_file("checkpoints/step-100/adapter_model.safetensors", tmp_path / "gone")
    # step-100/ is a prefix of step-1000/ only without the trailing slash: 1000 must be intact.
    fetch_checkpoint(subject.store, subject.store.committed_checkpoints()[-1], tmp_path / "got")
    assert prune_checkpoints(subject.store, keep=2) == []


def test_fetch_restores_the_files(subject: StoreUnderTest, tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path / "ck", 100)
    manifest = commit_checkpoint(subject.store, source, step=100, attempt=1)
    dest = fetch_checkpoint(subject.store, manifest, tmp_path / "restored")
    for name in manifest["files"]:
        assert (dest / name).read_bytes() == (source / name).read_bytes()


@pytest.mark.parametrize("corruption", ["flip-a-byte", "truncate"])
def test_fetch_detects_a_corrupt_blob(subject: StoreUnderTest, tmp_path: Path, corruption: str) -> None:
    manifest = commit_checkpoint(subject.store, make_checkpoint(tmp_path / "ck", 100), step=100, attempt=1)
    blob = subject.blob_path("checkpoints/step-100/adapter_model.safetensors")
    data = bytearray(blob.read_bytes())
    if corruption == "flip-a-byte":
        data[10] ^= 0xFF
    else:
        data = data[:-1]
    blob.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="adapter_model.safetensors"):
        fetch_checkpoint(subject.store, manifest, tmp_path / "restored")


@pytest.mark.parametrize("failure", [503, None], ids=["503", "connection-closed"])
def test_http_store_retries_transient_failures(tmp_path: Path, failure: int | None) -> None:
    with Receiver(tmp_path / "receiver") as rx:
        store = HttpStore(rx.store_url, rx.secret, backoff_initial=0.001)
        source = tmp_path / "f.bin"
        source.write_bytes(os.urandom(300_000))
        rx.fail_next(2, status=failure, scope="storage")
        store.put_file("adapter/f.bin", source)
        rx.fail_next(3, status=failure, scope="storage")
        store.get_file("adapter/f.bin", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
        rx.fail_next(1, status=failure, scope="storage")
        assert store.committed_checkpoints() == []


def test_http_store_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    with Receiver(tmp_path / "receiver") as rx:
        store = HttpStore(rx.store_url, rx.secret, tries=3, backoff_initial=0.001)
        rx.down(status=503, scope="storage")
        with pytest.raises(StoreError, match="failed after 3 tries"):
            store.put_bytes("reports/summary.json", b"{}")


def test_http_store_requests_are_signed(tmp_path: Path) -> None:
    with Receiver(tmp_path / "receiver") as rx:
        wrong = HttpStore(rx.store_url, "not-the-secret", backoff_initial=0.001)
        with pytest.raises(StoreError, match="401"):
            wrong.committed_checkpoints()
        assert rx.bad_signatures == 1  # a 4xx is not retried


def test_open_store_rejects_unknown_kinds_and_unsigned_http() -> None:
    with pytest.raises(StoreError):
        open_store({"kind": "s3"})
    with pytest.raises(StoreError):
        open_store({"kind": "http", "api_url": "http://x"}, secret=None)
