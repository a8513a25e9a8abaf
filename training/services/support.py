"""The error report a user attaches to a support ticket: everything needed to understand a
failed (or struggling) job without access to our database or the pod.

`build_error_report(job)` is plain JSON: the job and its configuration, the classified error
with its suggested fix and change, recovery figures, the latest events, and the last lines of
the worker's output where the executor can read them. The job's webhook secret never appears:
it is not in the configuration, and any occurrence in log lines or payloads is masked.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from ..executors import ExecutorError, get_executor
from ..models import JobEvent, TrainingJob

REPORT_EVENTS = 200
REPORT_LOG_LINES = 200
MASK = TrainingJob.SECRET_MASK


def build_error_report(job: TrainingJob, *, events: int = REPORT_EVENTS, log_lines: int = REPORT_LOG_LINES
                       ) -> dict[str, Any]:
    latest = list(job.events.order_by("-received_at", "-id")[:events])
    latest.reverse()
    log, log_note = _log_tail(job, log_lines)
    report = {
        "report_version": 1,
        "generated_at": timezone.now().isoformat(),
        "job": {
            "id": str(job.pk), "name": job.name, "status": job.status, "attempt": job.attempt,
            "executor": job.executor, "gpu_type": job.gpu_type, "gpu_pricing_tier": job.gpu_pricing_tier,
            "base_model": job.base_model.model_id if job.base_model_id else None,
            "training_file": job.training_file.name if job.training_file_id else None,
            "parent": str(job.parent_id) if job.parent_id else None,
            "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
            "completed_at": _iso(job.completed_at),
            "current_step": job.current_step, "total_steps": job.total_steps,
            "last_checkpoint_step": job.last_checkpoint_step,
        },
        "configuration": job.configuration,
        "error": {
            "type": job.error_type or None,
            "message": job.error_message or None,
            "suggested_fix": job.error_suggested_fix or None,
            "suggested_config": (job.error_details or {}).get("suggested_config") or {},
            "details": job.error_details or {},
        },
        "recovery": {
            "interruptions": job.checkpoint_recovery_count,
            "resumed_from_step": job.resumed_from_step,
            "lost_seconds": job.lost_seconds,
            "summary": job.recovery_summary() or "No interruptions.",
        },
        "cost": {"estimate": _str(job.cost_estimate), "actual": _str(job.actual_cost),
                 "billable_seconds": job.billable_seconds},
        "events": [_event(e) for e in latest],
        "events_total": job.events.count(),
        "log_tail": log,
        "log_note": log_note,
    }
    return job.mask_secret(report)


def _log_tail(job: TrainingJob, lines: int) -> tuple[list[str] | None, str]:
    try:
        tail = get_executor(job.executor).log_tail(job, lines)
    except ExecutorError as exc:
        return None, f"The worker's output could not be read: {exc.message}"
    if tail is None:
        return None, (f"The {job.executor} executor keeps no readable worker output here; the worker's "
                      "error event (in events) carries the trace tail of an unrecognised failure.")
    return tail, f"The last {len(tail)} lines of attempt {job.attempt}'s worker output."


def _event(event: JobEvent) -> dict[str, Any]:
    return {"type": event.event_type, "severity": event.severity, "source": event.source,
            "attempt": event.attempt, "received_at": _iso(event.received_at), "payload": event.payload}


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def _str(value) -> str | None:
    return None if value is None else str(value)
