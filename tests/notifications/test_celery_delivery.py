"""A real `celery worker` process killed mid-delivery: the notification still ends delivered
exactly once, by the next worker, once the dead sender's claim has lapsed.

    test: transition → Notification row → Redis → worker A claims it, connects to SMTP,
          the server stalls at RCPT ─► SIGKILL worker A (nothing was accepted)
          worker B: the beat sweep's task → claim (lease lapsed) → SMTP accepts → sent

Needs PostgreSQL (the workers are other processes and must see the test database) and Redis.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from notifications.models import Notification
from tests.execution.test_celery_integration import broker, database_url, start_celery_worker  # noqa: F401
from training.lifecycle import Status, transition

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

LEASE_SECONDS = 3
TIMEOUT_SECONDS = 90


def wait_for(predicate, what: str, log) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def test_a_worker_killed_mid_delivery_still_delivers_exactly_once(postgres_required, broker, smtp, make_job,  # noqa: F811
                                                                    settings, tmp_path, owner):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.NOTIFICATION_CLAIM_LEASE_SECONDS = LEASE_SECONDS
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": broker, "CELERY_TASK_ALWAYS_EAGER": "false",
           "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
           "EMAIL_PORT": str(smtp.port), "NOTIFICATION_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
           "LOG_LEVEL": "INFO"}
    log = tmp_path / "celery.log"
    smtp.slow_down(60)  # the first sender hangs at RCPT, before the server accepts anything
    worker_a = start_celery_worker(env, log)
    try:
        job = make_job(status=Status.VALIDATING)
        assert transition(job.pk, Status.COMPLETED, sources={Status.VALIDATING})
        row = Notification.objects.get()
        wait_for(lambda: Notification.objects.filter(pk=row.pk, status="sending").exists(), "worker A's claim", log)
        time.sleep(0.5)  # it is now waiting on the SMTP server
        os.killpg(worker_a.pid, signal.SIGKILL)
        worker_a.wait(10)
    finally:
        if worker_a.poll() is None:
            os.killpg(worker_a.pid, signal.SIGKILL)
    assert smtp.messages() == []
    (smtp.folder / "delay").unlink()

    worker_b = start_celery_worker(env, log)
    try:
        from notifications.tasks import deliver_due_notifications_task

        def sent() -> bool:
            deliver_due_notifications_task.delay()  # what beat does every minute
            time.sleep(0.5)
            return Notification.objects.filter(pk=row.pk, status="sent").exists()

        wait_for(sent, "the sweep to deliver it", log)
        time.sleep(LEASE_SECONDS + 1)  # anything else that might send it again has had its chance
        deliver_due_notifications_task.delay()
        time.sleep(1)
    finally:
        worker_b.terminate()
        worker_b.wait(20)
    messages = smtp.messages()
    assert len(messages) == 1, [m["Subject"] for m in messages]
    assert messages[0]["To"] == owner.email
    row.refresh_from_db()
    assert row.status == "sent" and row.attempts == 2
