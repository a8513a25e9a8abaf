"""What a worker is started with: gpu_worker's JSON configuration for the job's current attempt.

Rules: a worker that cannot see this machine's files (a pod, or any worker when storage is S3)
is remote and gets a signed dataset URL and the signed-URL store (never credentials); a local
worker reads the dataset's path and writes to the job's directory under MEDIA_ROOT. Every
attempt resumes from the newest committed checkpoint (`resume_from: latest`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from core.storage import default_storage, presigned_url

from ..executors.local import work_dir
from ..models import TrainingJob
from ..worker_storage import worker_store_spec


def worker_is_remote(job: TrainingJob) -> bool:
    """A worker that cannot see this machine's files: a pod, or any worker when storage is S3.

    Remote workers get a signed dataset URL and the signed-URL store (no credentials)."""
    return job.executor != "local" or settings.STORAGE_BACKEND != "filesystem"


def dataset_location(job: TrainingJob) -> str:
    if not worker_is_remote(job):
        return job.training_file.file.path
    return presigned_url(job.training_file.file.name, "GET", expires=settings.WORKER_URL_TTL_SECONDS)


def store_spec(job: TrainingJob) -> dict[str, Any]:
    if not worker_is_remote(job):
        return {"kind": "local", "root": str(job_store_root(job.pk))}
    return worker_store_spec(job.pk)


# Apps above `training` add worker fields here (validation adds its suite) without `training`
# importing them: each is called with the job and returns fields to merge. Register from an
# AppConfig.ready().
WorkerConfigExtension = Callable[[TrainingJob], dict[str, Any]]
_extensions: list[WorkerConfigExtension] = []


def extend_worker_config(extension: WorkerConfigExtension) -> WorkerConfigExtension:
    """Decorator: merge `extension(job)` into every worker configuration built from now on."""
    if extension not in _extensions:
        _extensions.append(extension)
    return extension


def storage_location(job: TrainingJob, key: str) -> str:
    """Where the job's worker reads a stored file: its path here, or a signed URL for a remote one."""
    if not worker_is_remote(job):
        return default_storage().path(key)
    return presigned_url(key, "GET", expires=settings.WORKER_URL_TTL_SECONDS)


def build_worker_config(job: TrainingJob) -> dict[str, Any]:
    """gpu_worker's configuration (gpu_worker.config.WorkerConfig) for the job's current attempt."""
    config = _base_worker_config(job)
    for extension in _extensions:
        config.update(extension(job))
    return config


def _base_worker_config(job: TrainingJob) -> dict[str, Any]:
    return {
        "job_id": str(job.pk),
        "attempt": job.attempt,
        "base_model": job.configuration["base_model"],
        "dataset": dataset_location(job),
        # A pod writes to its own disk; a local worker to the attempt's directory here.
        "output_dir": "/workspace/worker-output" if job.executor != "local" else str(work_dir(job.pk, job.attempt) / "output"),
        **job.configuration.get("hyperparameters", {}),
        "device": settings.WORKER_DEVICE,
        "store": store_spec(job),
        "resume_from": "latest",
        "webhook_url": f"{settings.PUBLIC_BASE_URL}/api/training/webhook",
        "webhook_secret": job.secret,
        "heartbeat_interval": settings.HEARTBEAT_INTERVAL_SECONDS,
    }


def job_store_root(job_id: Any) -> Path:
    """The job's artifact root in the local store: checkpoints/, adapter/, reports/."""
    return Path(settings.MEDIA_ROOT) / "jobs" / str(job_id)
