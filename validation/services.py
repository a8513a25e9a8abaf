"""Validation's cross-app operations: which sets a job uses, the suite its worker gets, and
what the worker's results become.

    prepare_suite(job)                  # the worker configuration's validation_suite (the hook)
    record_validation_results(event)    # a validation_results report -> replies, summary, events
    upload_set(user, kind, ...)         # a user's own set, checked by line and field
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import storage
from training.events import record_event
from training.models import JobEvent, TrainingJob
from training.services.worker_config import storage_location

from . import judging, rules, sets, tasks
from .models import BenchmarkSet, JobValidation, ValidationReply
from .summary import announce_finished, refresh_summary

logger = logging.getLogger("validation")

BENCHMARKS_DIR = Path(__file__).resolve().parent / "benchmarks"


@dataclass(frozen=True)
class BuiltinSet:
    kind: str
    name: str
    version: str
    file: str
    description: str
    rubric: str = ""


# Written for this project (validation/benchmarks/elena/README.md). A change to a file without
# a new version still gets its own row: the content's hash is part of what a report names.
BUILTIN_SETS = (
    BuiltinSet(sets.EMOTIONAL_INTELLIGENCE, "elena-emotional-intelligence", "1", "elena/emotional_intelligence.jsonl",
               "50 scenarios of people in money trouble, each with what a good reply does and a reference reply."),
    BuiltinSet(sets.KNOWLEDGE_RETENTION, "elena-knowledge-retention", "1", "elena/knowledge_retention.jsonl",
               "100 multiple-choice questions: 25 each on taxes, retirement, investing and insurance."),
    BuiltinSet(sets.BRAND_VOICE, "elena-brand-voice", "1", "elena/brand_voice_prompts.jsonl",
               "The Elena Morales rubric (10 characteristics, anchors 1-5) and 30 prompts.",
               rubric="elena/brand_voice_rubric.json"),
)


def parse_builtin(builtin: BuiltinSet) -> sets.ParsedSet:
    path = BENCHMARKS_DIR / builtin.file
    rubric = (BENCHMARKS_DIR / builtin.rubric).read_bytes() if builtin.rubric else None
    return sets.parse_set(builtin.kind, path.read_bytes(), rubric=rubric, file=builtin.file,
                          rubric_file=builtin.rubric)


def ensure_builtin_sets() -> dict[str, BenchmarkSet]:
    """The built-in set of each kind, as stored rows (created, or refreshed if the files changed)."""
    found: dict[str, BenchmarkSet] = {}
    for builtin in BUILTIN_SETS:
        parsed = parse_builtin(builtin)
        row = BenchmarkSet.objects.filter(owner=None, kind=builtin.kind, name=builtin.name,
                                          version=builtin.version).first()
        if row is not None and row.sha256 == parsed.sha256:
            found[builtin.kind] = row
            continue
        # A changed file under the same version: keep the old row (past jobs name it) under a
        # version that says which content it had, and store the new content under the version.
        if row is not None:
            row.version = f"{builtin.version}+{row.sha256[:8]}"
            row.save(update_fields=["version"])
        row = BenchmarkSet(owner=None, kind=builtin.kind, name=builtin.name, version=builtin.version,
                           description=builtin.description, is_builtin=True)
        row.replace_content(parsed, builtin.file)
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:  # another process made it first
            row = BenchmarkSet.objects.get(owner=None, kind=builtin.kind, name=builtin.name, version=builtin.version)
        found[builtin.kind] = row
    return found


def sets_for(job: TrainingJob) -> dict[str, BenchmarkSet]:
    """Each kind's set for the job: attached to the job, else its template, else its dataset,
    else the built-in one (newest first where several are attached at one level)."""
    chosen = ensure_builtin_sets()
    levels = [BenchmarkSet.objects.filter(datasets=job.training_file_id)]
    if job.template_id:
        levels.append(BenchmarkSet.objects.filter(templates=job.template_id))
    levels.append(BenchmarkSet.objects.filter(jobs=job.pk))
    for level in levels:  # least specific first, so the more specific overwrite
        for row in level.order_by("created_at"):
            chosen[row.kind] = row
    return chosen


def suite_key(job_id: Any) -> str:
    return storage.job_key(job_id, "validation/suite.json")


def prepare_suite(job: TrainingJob) -> dict[str, Any]:
    """The job's JobValidation and the suite file its worker reads, made on the first attempt
    and reused by every later one (a resumed job is validated with what it started with)."""
    validation, created = JobValidation.objects.get_or_create(job=job)
    key = suite_key(job.pk)
    if created or not validation.suite_key or not storage.exists(key):
        chosen = sets_for(job) if created or not validation.sets.exists() else {s.kind: s for s in validation.sets.all()}
        validation.sets.set(chosen.values())
        suite: dict[str, Any] = {"system_prompt": validation.system_prompt or None}
        cap = settings.VALIDATION_MAX_ITEMS
        for kind, row in chosen.items():
            suite[kind] = row.worker_payload()
            if cap:
                suite[kind]["items"] = suite[kind]["items"][:cap]
        storage.save_bytes(key, json.dumps(suite, ensure_ascii=False).encode())
        validation.suite_key = key
        validation.save(update_fields=["suite_key", "updated_at"])
    return {"validation_suite": storage_location(job, key)}


def _reply_rows(validation: JobValidation, kind: str, result: dict[str, Any]) -> list[ValidationReply]:
    benchmark = validation.set_of(kind)
    items = {i["id"]: i for i in (benchmark.items if benchmark else [])}
    rows = []
    for position, item in enumerate(result.get("items") or []):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        spec = items.get(item["id"], {})
        needs = bool(spec.get("needs_referral"))
        keys = rules.EI_CHECKS if kind == sets.EMOTIONAL_INTELLIGENCE else None
        automatic: dict[str, Any] = {}
        replies = {}
        for variant in ("base", "trained"):
            side = item.get(variant) if isinstance(item.get(variant), dict) else {}
            replies[variant] = side
            automatic[variant] = rules.check_reply(str(side.get("reply") or ""), needs_referral=needs, keys=keys)
            if "reference_nll" in side:
                automatic.setdefault("reference", {})[variant] = [side.get("reference_nll"), side.get("reference_tokens")]
        rows.append(ValidationReply(
            validation=validation, benchmark=kind, item_id=item["id"][:64], position=position,
            base_reply=str(replies["base"].get("reply") or ""), trained_reply=str(replies["trained"].get("reply") or ""),
            base_hit_cap=bool(replies["base"].get("hit_cap")), trained_hit_cap=bool(replies["trained"].get("hit_cap")),
            automatic=automatic))
    return rows


def record_validation_results(event: JobEvent) -> JobValidation | None:
    """What the worker reported: stored, replies made scorable, the summary worked out; a
    retention below the threshold is a critical event."""
    evaluators = event.payload.get("evaluators") if isinstance(event.payload, dict) else None
    if not isinstance(evaluators, dict):
        return None
    validation, _ = JobValidation.objects.get_or_create(job_id=event.job_id)
    validation.worker_results = evaluators
    validation.received_at = timezone.now()
    statuses = [r.get("status", "ok") for r in evaluators.values() if isinstance(r, dict)]
    validation.status = (JobValidation.Status.FAILED if statuses and all(s == "error" for s in statuses)
                         else JobValidation.Status.PARTIAL if "error" in statuses else JobValidation.Status.COMPLETE)
    ValidationReply.objects.filter(validation=validation).delete()  # a later attempt's report replaces them
    for kind in (sets.EMOTIONAL_INTELLIGENCE, sets.BRAND_VOICE):
        result = evaluators.get(kind)
        if isinstance(result, dict) and result.get("status", "ok") == "ok":
            ValidationReply.objects.bulk_create(_reply_rows(validation, kind, result))
    refresh_summary(validation, save_fields=["worker_results", "received_at", "status"])
    if judging.judge_config() is not None and validation.replies.exists():
        job_id = str(event.job_id)
        transaction.on_commit(lambda: tasks.judge_job_replies.delay(job_id))
    else:  # with a judge, validation has finished once it has scored (judging.judge_replies)
        announce_finished(validation, attempt=event.attempt)
    retention = validation.summary.get("benchmarks", {}).get(sets.KNOWLEDGE_RETENTION, {})
    if retention.get("passed") is False:
        record_event(event.job_id, JobEvent.Type.ANOMALY, source="validation", severity=JobEvent.Severity.CRITICAL,
                     attempt=event.attempt, anomaly_kind="forgetting",
                     payload={"kind": "forgetting", "message": retention.get("headline", ""),
                              "retention_pct": retention.get("value")})
    return validation


# The largest set file (or rubric) an upload may be: the Elena sets are 150 KB together.
MAX_SET_BYTES = 5 * 1024 * 1024


def parse_upload(kind: str, data: bytes, *, file_name: str = "", rubric: bytes | None = None,
                 rubric_name: str = "") -> sets.ParsedSet:
    """An uploaded set checked; ValidationError names the field (file or rubric) and, in each
    message, the line and field of every problem. The admin form and the API both call this."""
    if kind not in sets.KINDS:
        raise ValidationError({"kind": f"use one of {', '.join(sets.KINDS)}"})
    for field, content in (("file", data), ("rubric", rubric)):
        if content is not None and len(content) > MAX_SET_BYTES:
            raise ValidationError({field: f"is {len(content):,} bytes; a set may be at most {MAX_SET_BYTES:,}"})
    try:
        return sets.parse_set(kind, data, rubric=rubric, file=file_name, rubric_file=rubric_name)
    except sets.SetError as exc:
        field = "rubric" if any(p.field == "rubric" or (p.file and p.file == rubric_name) for p in exc.problems) else "file"
        raise ValidationError({field: [str(p) for p in exc.problems] + ([f"and {exc.more} more"] if exc.more else [])}) from exc


def refuse_existing_version(user, kind: str, name: str, version: str) -> None:
    if BenchmarkSet.objects.filter(owner=user, kind=kind, name=name, version=version).exists():
        raise ValidationError({"version": f"you already have {name} version {version}; give this one a new version"})


def upload_set(*, user, kind: str, name: str, version: str, data: bytes, file_name: str = "",
               rubric: bytes | None = None, rubric_name: str = "", description: str = "") -> BenchmarkSet:
    """A user's own benchmark set; ValidationError names the line and field of every problem."""
    parsed = parse_upload(kind, data, file_name=file_name, rubric=rubric, rubric_name=rubric_name)
    refuse_existing_version(user, kind, name, version)
    row = BenchmarkSet(owner=user, kind=kind, name=name, version=version, description=description)
    row.replace_content(parsed, file_name)
    row.save()
    return row


def validation_overview(job: TrainingJob) -> dict[str, Any]:
    """What the API and the dashboard show: the status, the sets, every benchmark's entry."""
    validation = JobValidation.objects.filter(job=job).prefetch_related("sets").first()
    if validation is None:
        return {"status": "not_started", "passed": None, "benchmarks": {}, "sets": {}}
    summary = validation.summary or {}
    return {
        "status": validation.status,
        "received_at": validation.received_at,
        "passed": summary.get("passed"),
        "benchmarks": summary.get("benchmarks", {}),
        "sets": {s.kind: {**s.identity(), "id": s.pk, "items": s.item_count} for s in validation.sets.all()},
    }


def reply_pairs(job: TrainingJob, benchmark: str | None = None) -> list[dict[str, Any]]:
    """Each scenario or prompt with its base and trained replies and what scored them."""
    validation = JobValidation.objects.filter(job=job).prefetch_related("sets").first()
    if validation is None:
        return []
    replies = validation.replies.prefetch_related("scores")
    if benchmark:
        replies = replies.filter(benchmark=benchmark)
    sets_by_kind = {s.kind: s for s in validation.sets.all()}
    out = []
    for reply in replies:
        item = sets_by_kind[reply.benchmark].item(reply.item_id) if reply.benchmark in sets_by_kind else None
        scores: dict[str, dict[str, list[dict[str, Any]]]] = {"base": {}, "trained": {}}
        for score in reply.scores.all():
            scores[score.variant].setdefault(score.scorer, []).append(score.criteria)
        out.append({
            "benchmark": reply.benchmark, "id": reply.item_id,
            "messages": (item or {}).get("messages", []), "category": (item or {}).get("category") or (item or {}).get("topic", ""),
            "needs_referral": bool((item or {}).get("needs_referral")),
            "base": {"reply": reply.base_reply, "hit_cap": reply.base_hit_cap, "checks": reply.automatic.get("base", {}),
                     "scores": scores["base"]},
            "trained": {"reply": reply.trained_reply, "hit_cap": reply.trained_hit_cap,
                        "checks": reply.automatic.get("trained", {}), "scores": scores["trained"]},
        })
    return out
