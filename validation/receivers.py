"""What validation does when something happens to a job (the job-event hook, training.events),
and what it adds to a worker's configuration (training.services.worker_config's extension)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from core import humanize, storage
from training.events import on_job_event
from training.lifecycle import Status
from training.models import JobEvent, TrainingJob
from training.result_lines import extend_job_summary
from training.services.worker_config import extend_worker_config

from . import report_tasks
from .models import ValidationReport
from .review import request_review
from .services import prepare_suite, record_validation_results, validation_overview
from .share import ShareRefused, issue_share, share_url
from .summary import summary_lines


@extend_worker_config
def add_validation_suite(job: TrainingJob) -> dict[str, Any]:
    return prepare_suite(job)


@on_job_event(JobEvent.Type.VALIDATION_RESULTS, after_commit=True)
def store_validation_results(event: JobEvent) -> None:
    """After commit: the summary's bootstrap intervals take a moment, and ingestion holds the
    job's row lock while it records the report."""
    with transaction.atomic():
        record_validation_results(event)


@on_job_event(JobEvent.Type.VALIDATION_FINISHED, after_commit=True)
def make_report(event: JobEvent) -> None:
    """Validation has finished (again, after a judge's run): the report's next version."""
    report_tasks.generate_validation_report.delay(str(event.job_id), "validation_finished")


@on_job_event(JobEvent.Type.STATUS_CHANGED, after_commit=True)
def open_review(event: JobEvent) -> None:
    """A completed job's model waits for QA's review."""
    if event.new_status == Status.COMPLETED:
        job = TrainingJob.objects.filter(pk=event.job_id).first()
        if job is not None:
            request_review(job)


@extend_job_summary
def validation_lines(job: TrainingJob) -> list[str]:
    """`manage.py train`'s table of the validation suite, after the loss and perplexity lines."""
    lines = summary_lines(validation_overview(job))
    newest = ValidationReport.objects.filter(job=job).order_by("-version").first()
    if newest is not None:
        where = (f"{newest.key} in the bucket" if storage.is_s3()
                 else str(Path(settings.MEDIA_ROOT) / newest.key))
        lines.append(f"  Validation report (version {newest.version}): {where}")
        if job.created_by is not None:
            # The README's first command ends with a link to hand to a client: made here, for the
            # job's owner, since a share link is shown only when it is made.
            try:
                made, token = issue_share(job, job.created_by)
            except ShareRefused as exc:  # an owner who may no longer see the job: the table stays
                lines.append(f"  Share link: none ({exc})")
            else:
                lines.append(f"  Share link ({humanize.integer((made.expires_at - made.created_at).days)} days, "
                             f"no login needed): {share_url(token)}")
    return lines
