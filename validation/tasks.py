"""Celery tasks: thin wrappers over validation's services (the work is callable without Celery)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import judging


@shared_task
def judge_job_replies(job_id: str) -> dict[str, Any]:
    """Score a job's replies with the judge model (a no-op when none is configured)."""
    return judging.judge_replies(job_id)
