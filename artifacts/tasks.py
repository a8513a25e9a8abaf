"""Celery tasks: thin wrappers over artifacts.services (work lives there, callable without Celery)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task
def register_job_artifacts(job_id: str) -> bool:
    """Build the job's ModelArtifact from storage; False when the adapter is not there."""
    return services.register_artifacts(job_id) is not None


@shared_task
def prune_finished_checkpoints(days: int | None = None) -> dict[str, int]:
    """The daily beat task: delete checkpoints of jobs finished CHECKPOINT_RETENTION_DAYS ago."""
    return services.prune_finished_checkpoints(days)
