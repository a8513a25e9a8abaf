"""Celery tasks of the validation report (report.py): its next version when validation finishes
or is asked for, and the beat task that remakes reports after people's scores change.

Not in tasks.py: services enqueue the judge from there, and the report reads what services
make. Celery finds these because receivers.py imports this module at start-up (AppConfig.ready).
"""

from __future__ import annotations

from celery import shared_task

from .report import generate_report, stale_report_jobs


@shared_task
def generate_validation_report(job_id: str, reason: str = "requested", only_if_changed: bool = False) -> int | None:
    """Render the job's next report version; its number, or None when none was made."""
    report = generate_report(job_id, reason, only_if_changed=only_if_changed)
    return report.version if report else None


@shared_task
def regenerate_reports() -> int:
    """The beat task: a new report version for each job whose people's scores changed since its
    last one and have been quiet for a while (report.REPORT_QUIET_SECONDS)."""
    jobs = stale_report_jobs()
    for job_id in jobs:
        generate_validation_report.delay(str(job_id), "scores_changed", True)
    return len(jobs)
