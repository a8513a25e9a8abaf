"""Cross-app operations on artifacts: register what a completed job uploaded, prune checkpoints.

`register_artifacts(job_id)` is what webhook ingestion calls on `completed`, after commit:

    transaction.on_commit(lambda: artifacts.services.register_artifacts(job.pk))

It is idempotent (update_or_create on the job) and never raises for missing files: a job whose
adapter is not in storage gets no ModelArtifact and a warning in the log.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from core import storage
from training.lifecycle import TERMINAL, Status
from training.models import TrainingJob

from . import packaging
from .models import DownloadAudit, ModelArtifact

logger = logging.getLogger("artifacts")

ADAPTER_WEIGHTS = ("adapter/adapter_model.safetensors", "adapter/adapter_model.bin")
ADAPTER_CONFIG = "adapter/adapter_config.json"
METRICS_FILE = "reports/metrics.jsonl"
SUMMARY_FILE = "reports/summary.json"


def register_artifacts(job_id) -> ModelArtifact | None:
    """Create or refresh the job's ModelArtifact from adapter/ and reports/ in storage."""
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None:
        return None
    prefix = storage.job_prefix(job.pk)
    stored = dict(storage.list_keys(prefix))
    rel = {key[len(prefix):]: size for key, size in stored.items()}
    weights = next((name for name in ADAPTER_WEIGHTS if name in rel), None)
    if weights is None or ADAPTER_CONFIG not in rel:
        logger.warning("job %s: no adapter in storage under %sadapter/; no artifact registered",
                       job.pk, prefix)
        return None
    adapter_files = {name[len("adapter/"):]: size for name, size in rel.items()
                     if name.startswith("adapter/")}
    fields: dict[str, Any] = {
        "adapter_path": prefix + weights,
        "adapter_config_path": prefix + ADAPTER_CONFIG,
        "adapter_size_bytes": rel[weights],
        "adapter_files": adapter_files,
        "metrics_file_path": prefix + METRICS_FILE if METRICS_FILE in rel else "",
        "summary_file_path": prefix + SUMMARY_FILE if SUMMARY_FILE in rel else "",
        "validation_report_path": prefix + report if (report := packaging.newest_report(rel)) else "",
        "metrics_summary": _summary(job, prefix + SUMMARY_FILE if SUMMARY_FILE in rel else None),
        "storage_bytes": sum(stored.values()),
        **_validation_fields(job),
        **_review_fields(job),
    }
    artifact, created = ModelArtifact.objects.update_or_create(job=job, defaults=fields)
    logger.info("job %s: artifact %s (%d adapter bytes)", job.pk,
                "registered" if created else "refreshed", fields["adapter_size_bytes"])
    return artifact


def artifact_for(job: TrainingJob) -> ModelArtifact | None:
    """The job's artifact; registered on the spot if ingestion has not done it yet."""
    artifact = ModelArtifact.objects.filter(job=job).select_related("job", "job__base_model").first()
    if artifact is None and job.status == Status.COMPLETED and register_artifacts(job.pk):
        artifact = ModelArtifact.objects.select_related("job", "job__base_model").get(job=job)
    return artifact


class NoArtifacts(Exception):
    """The job has nothing to download (yet); the message says why, for a person."""


def downloadable_artifact(job: TrainingJob) -> ModelArtifact:
    """The artifact whose files a person may download: a completed job's; NoArtifacts (saying
    why, for that person) otherwise."""
    if job.status != Status.COMPLETED:
        raise NoArtifacts(f"'{job.name}' is {job.get_status_display().lower()}: its files can be downloaded "
                          "once it has completed.")
    artifact = artifact_for(job)
    if artifact is None:
        raise NoArtifacts(f"'{job.name}' completed but its adapter is not in storage; see the worker's log.")
    return artifact


def export_to_file(job: TrainingJob, kind: str, fmt: str, target: Path) -> tuple[Path, int]:
    """Copy one export of a completed job (packaging.export_for) to the local path `target`, or
    into it under the export's own name when it is a folder; audited as a download by nobody
    (an operator at the command line), a package QA has not approved with a note saying so.
    Returns (path written, bytes)."""
    artifact = downloadable_artifact(job)
    export = packaging.export_for(artifact, kind, fmt)
    if target.is_dir():
        target = target / export.filename
    storage.copy_to_local(export.key, target)
    # The operator's shell is not gated, but a package taken before approval is marked in the
    # audit like a staff override, so a look for early deliveries finds it.
    early = kind == DownloadAudit.Kind.DEPLOYMENT_PACKAGE and not artifact.package_released
    note = f"manage.py download before QA approval. {artifact.package_locked_reason()}" if early else ""
    artifact.record_download(None, kind, fmt, user_agent="manage.py download", override_reason=note)
    return target, target.stat().st_size


def _summary(job: TrainingJob, summary_key: str | None) -> dict[str, Any]:
    if summary_key:
        try:
            summary = json.loads(storage.read_bytes(summary_key))
            if isinstance(summary, dict):
                return summary
        except (OSError, ValueError):
            logger.warning("job %s: unreadable %s", job.pk, summary_key)
    final = (job.results or {}).get("final") or {}
    return final.get("summary") if isinstance(final.get("summary"), dict) else {}


HEADLINE_FIELDS = ("ei_score_baseline", "ei_score_trained", "ei_improvement_pct", "forgetting_retention_pct",
                   "brand_voice_consistency_pct")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _validation_fields(job: TrainingJob) -> dict[str, float | None]:
    evaluators = ((job.results or {}).get("validation") or {}).get("evaluators") or {}
    perplexity = evaluators.get("perplexity") if isinstance(evaluators, dict) else None
    perplexity = perplexity if isinstance(perplexity, dict) else {}
    # The validation app's headline figures (validation.services.sync_artifact), which it also
    # writes to an artifact registered before its results arrived.
    headline = (job.results or {}).get("validation_headline") or {}
    headline = headline if isinstance(headline, dict) else {}
    return {
        "perplexity_baseline": _number(perplexity.get("base")),
        "perplexity_trained": _number(perplexity.get("trained")),
        "perplexity_improvement_pct": _number(perplexity.get("improvement_pct")),
        **{name: _number(headline.get(name)) for name in HEADLINE_FIELDS},
    }


def _review_fields(job: TrainingJob) -> dict[str, str]:
    """QA's decision as the validation app mirrors it on the job, for an artifact registered after
    the review. Left out when the job has none, so refreshing an artifact never clears a decision
    written on it directly; an unknown value reads as not reviewed, which keeps the package locked."""
    results = job.results or {}
    if "review_state" not in results:
        return {}
    state = results["review_state"]
    return {"review_state": state if state in ModelArtifact.Review.values else ModelArtifact.Review.NONE}


def storage_used(job_id) -> int:
    """Bytes stored under jobs/<id>/ right now (lists the prefix; not for hot paths)."""
    return sum(size for _key, size in storage.list_keys(storage.job_prefix(job_id)))


def prune_finished_checkpoints(days: int | None = None) -> dict[str, int]:
    """Delete the checkpoints of jobs that finished more than `days` ago; keep adapter and reports.

    Returns {"jobs": jobs that had checkpoints, "bytes_freed": ...}. Finished means a terminal
    status; the age is taken from completed_at, or updated_at when the job never completed.
    """
    days = settings.CHECKPOINT_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    pruned_jobs = freed = 0
    for job in TrainingJob.objects.filter(status__in=TERMINAL).only("id", "completed_at", "updated_at"):
        finished_at = job.completed_at or job.updated_at
        if finished_at is None or finished_at > cutoff:
            continue
        job_freed = storage.delete_prefix(storage.job_key(job.pk, "checkpoints/", allow_trailing_slash=True))
        if job_freed:
            pruned_jobs += 1
            freed += job_freed
            ModelArtifact.objects.filter(job=job).update(storage_bytes=storage_used(job.pk))
            logger.info("job %s: pruned checkpoints, %d bytes freed", job.pk, job_freed)
    logger.info("checkpoint retention (%d days): %d jobs pruned, %d bytes freed", days, pruned_jobs, freed)
    return {"jobs": pruned_jobs, "bytes_freed": freed}
