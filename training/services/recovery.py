"""Recovering from an interruption: close the interrupted attempt with what it lost, and launch
the next one, which resumes from the newest committed checkpoint.

Rules:

- Of several callers for the same attempt (a worker's `interrupted` report and a poll), exactly
  one acts: the move to RECOVERING is a compare-and-set guarded by the attempt number.
- The interrupted attempt is closed at the moment its worker was seen ended (or now): billed to
  then, its lost seconds the training since its last committed checkpoint (or since its launch),
  its lost dollars those seconds at its own hourly rate. The job's counters (interruptions, lost
  seconds, cost) are updated in the same transaction.
- Past MAX_RECOVERIES interruptions the job fails with an explanation; after
  SPOT_FALLBACK_AFTER_INTERRUPTIONS of a spot job its next attempts run on-demand.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..events import record_event
from ..lifecycle import ACTIVE, Status, transition
from ..models import JobAttempt, JobEvent, TrainingJob
from .billing import write_totals
from .launching import fail_job, launch_job


def handle_interruption(job_id: Any, attempt: int, reason: str) -> bool:
    """The worker of `attempt` was interrupted: go to RECOVERING and launch the next attempt,
    or fail once the recovery limit is passed. Returns whether this call acted; of several
    callers for the same attempt (a webhook and a poll) exactly one does."""
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None or job.attempt != attempt or job.status not in ACTIVE or job.status == Status.RECOVERING:
        return False
    now = timezone.now()
    lost = lost_seconds(job, now)
    with transaction.atomic():
        moved = transition(
            job.pk, Status.RECOVERING, attempt=attempt, sources=ACTIVE - {Status.RECOVERING},
            message=f"attempt {attempt} interrupted: {reason}", payload={"reason": reason},
            updates={"checkpoint_recovery_count": F("checkpoint_recovery_count") + 1,
                     "lost_seconds": F("lost_seconds") + lost},
        )
        if not moved:
            return False  # The other caller won; it relaunches.
        # The transition's UPDATE holds the job's lock already; the job is on `attempt`.
        interrupted = JobAttempt.objects.locked(job.pk, attempt)
        if interrupted is not None:
            interrupted.record_interruption(reason, at=now, lost_seconds=lost)
            write_totals(job)
        count = TrainingJob.objects.values_list("checkpoint_recovery_count", flat=True).get(pk=job.pk)
        if count > settings.MAX_RECOVERIES:
            limit = settings.MAX_RECOVERIES
            fail_job(
                job.pk, attempt, "recovery_limit",
                f"Interrupted {count} times; the recovery limit is {limit}. The last interruption: {reason}.",
                "Spot capacity may be unstable: retry the job on-demand, or raise MAX_RECOVERIES. "
                "Training resumes from the last committed checkpoint.",
                details={"recoveries": count, "limit": limit, "reason": reason},
                sources={Status.RECOVERING},
            )
        else:
            fall_back_to_on_demand(job, count)
            transaction.on_commit(lambda: launch_job.delay(str(job.pk)))
    return True


def fall_back_to_on_demand(job: TrainingJob, interruptions: int) -> bool:
    """After SPOT_FALLBACK_AFTER_INTERRUPTIONS interruptions of a spot job, run its next
    attempts on-demand (costlier, but not taken away), and say so on the job."""
    after = settings.SPOT_FALLBACK_AFTER_INTERRUPTIONS
    if not after or interruptions < after or job.gpu_pricing_tier != TrainingJob.PricingTier.SPOT:
        return False
    if not TrainingJob.objects.filter(pk=job.pk, gpu_pricing_tier=TrainingJob.PricingTier.SPOT).update(
            gpu_pricing_tier=TrainingJob.PricingTier.ON_DEMAND):
        return False
    job.gpu_pricing_tier = TrainingJob.PricingTier.ON_DEMAND
    record_event(
        job.pk, JobEvent.Type.FALLBACK, source="control_plane", attempt=job.attempt,
        severity=JobEvent.Severity.WARNING,
        payload={"from": "spot", "to": "on_demand", "interruptions": interruptions,
                 "message": f"Interrupted {interruptions}× on spot; the next attempts run on-demand "
                            f"(SPOT_FALLBACK_AFTER_INTERRUPTIONS={after})."},
    )
    return True


def lost_seconds(job: TrainingJob, now: datetime) -> float:
    """Training time since the attempt's last committed checkpoint (or since its launch)."""
    last = (job.events.filter(event_type=JobEvent.Type.CHECKPOINT_SAVED, attempt=job.attempt)
            .order_by("-received_at").values_list("received_at", flat=True).first())
    attempt = job.current_attempt
    since = last or (attempt.launched_at if attempt is not None else job.attempt_started_at)
    return max(0.0, (now - since).total_seconds()) if since else 0.0
