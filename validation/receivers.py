"""What validation does when something happens to a job (the job-event hook, training.events),
and what it adds to a worker's configuration (training.services.worker_config's extension)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from training.events import on_job_event
from training.models import JobEvent, TrainingJob
from training.result_lines import extend_job_summary
from training.services.worker_config import extend_worker_config

from .services import prepare_suite, record_validation_results, validation_overview
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


@extend_job_summary
def validation_lines(job: TrainingJob) -> list[str]:
    """`manage.py train`'s table of the validation suite, after the loss and perplexity lines."""
    return summary_lines(validation_overview(job))
