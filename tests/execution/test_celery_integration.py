"""The whole pipeline with real services: a Celery worker process on Redis launches gpu_worker
through the local executor, the worker trains the tiny model and reports to a live server.

    start_job ─► Redis ─► celery worker: launch_job ─► LocalExecutor ─► python -m gpu_worker
                                                                              │ signed webhooks
    test: poll_active_jobs ─► Redis ─► celery worker: poll_job      live_server ◄─┘

Needs PostgreSQL (the Celery worker is another process; it must see the test database) and
Redis. Slow (about a minute on 2 CPU cores); it runs in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from django.db import connection

from config.celery import app as celery_app
from training.lifecycle import Status
from training.models import BaseModel, JobEvent, MetricPoint, TrainingJob

REPO_ROOT = Path(__file__).resolve().parents[2]
# Redis databases this test may take one of: the first with no keys, claimed with a lock key,
# so that two test sessions on one Redis (a developer's and CI's) never share a broker.
REDIS_DBS = range(8, 14)
TIMEOUT_SECONDS = 180

pytestmark = [
    pytest.mark.slow,
    # serialized_rollback: restore the seeded rows after the flush for the tests that follow.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def database_url() -> str:
    """The live test database (pytest-django's test_<name>), as DATABASE_URL for the worker."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def broker(redis_url) -> str:
    import redis

    parsed = urlparse(redis_url)
    base = f"redis://{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"
    for db in REDIS_DBS:
        client = redis.Redis.from_url(f"{base}/{db}")
        if client.dbsize() == 0 and client.set("execution-integration-test", "1", nx=True, ex=900):
            break
    else:
        pytest.fail(f"no free Redis database among {list(REDIS_DBS)}")
    url = f"{base}/{db}"
    saved = (celery_app.conf.task_always_eager, celery_app.conf.broker_url)
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = url
    _reset_pools()
    yield url
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = saved
    _reset_pools()
    client.flushdb()


def _reset_pools() -> None:
    # Connections and producers are pooled on first use; drop them so the new broker is used.
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None
    # kombu also keeps producer pools in a global registry keyed by broker URL: a later test on
    # the same Redis database would get back the pool closed above ("Acquire on closed pool").
    from kombu import pools

    pools.reset()


def start_celery_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """A `celery worker` process (solo pool, its own process group) appending to `log_path`;
    returns once it says it is ready."""
    ready_before = log_path.read_text(errors="replace").count("ready.") if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "info", "-P", "solo", "-c", "1",
             "-Q", "celery", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while log_path.read_text(errors="replace").count("ready.") <= ready_before:
        assert proc.poll() is None, f"celery worker exited:\n{log_path.read_text()}"
        assert time.monotonic() < deadline, f"celery worker not ready:\n{log_path.read_text()}"
        time.sleep(0.2)
    return proc


@pytest.fixture
def celery_worker(postgres_required, broker, live_server, settings, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = media
    settings.PUBLIC_BASE_URL = live_server.url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "MEDIA_ROOT": str(media),
        "PUBLIC_BASE_URL": live_server.url,
        "WORKER_DEVICE": "cpu",
        "HEARTBEAT_INTERVAL_SECONDS": "5",
        "LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / "celery.log"
    proc = start_celery_worker(env, log_path)
    try:
        yield {"media": media, "log": log_path, "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_job_runs_end_to_end_through_celery_and_the_local_executor(celery_worker, tiny_model, tiny_dataset, django_user_model):
    from training import tasks
    from training.services import jobs
    from training.services.datasets import ingest_training_file

    user = django_user_model.objects.create_user("celery-test")
    # The upload returns at once; the real worker validates the file (the validate_dataset task).
    training_file = ingest_training_file(uploaded=tiny_dataset, name="tiny", user=user)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while training_file.validation_status in ("pending", "validating"):
        assert time.monotonic() < deadline, celery_worker["log"].read_text()[-3000:]
        time.sleep(0.5)
        training_file.refresh_from_db()
    assert training_file.is_trainable, training_file.validation_report
    base_model = BaseModel.objects.create(
        slug="tiny-random-llama", name="Tiny random Llama", model_id=str(tiny_model), parameter_count=100_000,
        recommended_gpu="CPU_LOCAL", is_embedded=True)
    job = jobs.create_job(user=user, training_file=training_file, base_model=base_model, overrides={
        "max_steps": 8, "checkpoint_interval": 4, "per_device_batch_size": 2, "max_seq_length": 128,
        "eval_interval": 4, "learning_rate": 1e-3, "learning_rate_scaling": "none"})
    assert job.status == Status.PENDING
    assert job.cost_estimate is not None

    jobs.start_job(job, user=user)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        job.refresh_from_db()
        if job.is_terminal:
            break
        assert time.monotonic() < deadline, _diagnostics(job, celery_worker)
        tasks.poll_active_jobs.delay()
        time.sleep(2)

    assert job.status == Status.COMPLETED, _diagnostics(job, celery_worker)
    # One more poll closes the last attempt's bill.
    while not (job.current_attempt and job.current_attempt.billing_closed):
        assert time.monotonic() < deadline + 30, _diagnostics(job, celery_worker)
        tasks.poll_active_jobs.delay()
        time.sleep(1)
        job.refresh_from_db()

    statuses = list(job.events.filter(event_type=JobEvent.Type.STATUS_CHANGED).values_list("payload__to", flat=True))
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert _is_subsequence(["queued", "provisioning", "training", "completed"], statuses), statuses
    assert job.attempt == 1 and job.checkpoint_recovery_count == 0
    assert MetricPoint.objects.filter(job=job).count() >= 4
    types = set(job.events.values_list("event_type", flat=True))
    assert {"launched", "pod_state", "started", "stage_changed", "metrics", "checkpoint_saved", "completed"} <= types
    assert job.cost_estimate is not None
    assert job.actual_cost == 0  # CPU_LOCAL is free...
    assert job.billable_seconds > 0  # ...but its time is still accounted
    adapter = celery_worker["media"] / "jobs" / str(job.pk) / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "adapter_config.json").is_file()
    assert "training.tasks.launch_job" in celery_worker["log"].read_text()


def _is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(n in it for n in needles)


def _diagnostics(job: TrainingJob, worker: dict) -> str:
    events = list(job.events.values_list("event_type", "payload"))[-15:]
    worker_log = Path(job.attempt_ref["log"]).read_text()[-3000:] if job.attempt_ref.get("log") else ""
    return (f"status={job.status} error={job.error_message!r}\nevents={events}\n"
            f"celery log:\n{worker['log'].read_text()[-3000:]}\nworker log:\n{worker_log}")
