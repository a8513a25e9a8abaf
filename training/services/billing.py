"""What a job's attempts cost: each attempt billed from its launch to its end at its own hourly
rate; the job's cost is the sum.

Rules:

- An attempt is billed once the executor's launch of it is recorded, from `launched_at` (the
  move to PROVISIONING) to `until`: the moment the executor first saw the worker end, or now
  while it runs. The seconds are recomputed, never added to, on every poll, so repeated or
  racing polls never double-count.
- Closing the attempt (its job finished, or it was interrupted) bills it one last time; a closed
  bill never changes. A finished job is polled for BILLING_CLOSE_WINDOW more to close it.
- The job's `billable_seconds` and `actual_cost` are a cache of the sum over its attempts (each
  at its own rate, rounded to the cent once), written in the transaction that changed the
  attempt, under the job's row lock (JobAttempt.objects.locked).
- An attempt's rate is what the executor says it pays, else GPU_TABLE's for the job's GPU and
  pricing tier.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from ..models import JobAttempt, TrainingJob, dollars

# Terminal jobs are polled once more to close the last attempt's bill, for this long.
BILLING_CLOSE_WINDOW = timedelta(hours=6)


def hourly_rate_for(job: TrainingJob) -> Decimal:
    row = settings.GPU_TABLE.get(job.gpu_type) or {}
    key = "on_demand_per_hour" if job.gpu_pricing_tier == TrainingJob.PricingTier.ON_DEMAND else "spot_per_hour"
    return Decimal(str(row.get(key, 0)))


def job_totals(job_id: Any) -> dict[str, Any]:
    """The job's billable seconds and cost: the sum over its attempts."""
    rows = list(JobAttempt.objects.filter(job_id=job_id).values_list("billable_seconds", "hourly_rate"))
    cost = sum((dollars(seconds, rate) for seconds, rate in rows), Decimal(0))
    return {"billable_seconds": sum(seconds for seconds, _ in rows), "actual_cost": cost.quantize(settings.MONEY)}


def write_totals(job: TrainingJob) -> None:
    """Cache the attempts' totals on the job row (and on `job`); the caller holds the lock."""
    totals = job_totals(job.pk)
    TrainingJob.objects.filter(pk=job.pk).update(**totals)
    for name, value in totals.items():
        setattr(job, name, value)


def bill(job: TrainingJob, attempt: JobAttempt, *, until: datetime) -> None:
    """Recompute the open attempt's bill up to `until`, and the job's; under the lock."""
    if attempt.bill_until(until):
        write_totals(job)


def close_billing(job: TrainingJob, *, until: datetime, reason: str = "") -> None:
    """The job has finished: bill its current attempt one last time and close it with the job's
    outcome. A no-op once closed, or if the job moved on."""
    with transaction.atomic():
        attempt = JobAttempt.objects.locked(job.pk, job.attempt)
        if attempt is None or attempt.billing_closed:
            return
        outcome = JobAttempt.OUTCOME_OF_STATUS.get(attempt.job.status, JobAttempt.Outcome.RUNNING)
        attempt.close(outcome, until=until, reason=reason)
        if attempt.launch_recorded:  # otherwise nothing ran, and nothing changed the totals
            write_totals(job)
