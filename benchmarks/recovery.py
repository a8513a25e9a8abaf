"""Recovery time: from `kill -9` of the worker to the first step trained by the new attempt.

    python benchmarks/recovery.py                  # 3 kills, the production poll interval (15 s)
    python benchmarks/recovery.py --kills 5 --poll-interval 15 --checkpoint-interval 4

The embedded default end to end, as `manage.py train --wait` runs it: a throwaway SQLite
database, in-process tasks, the local executor starting `python -m gpu_worker` on CPU with the
embedded SmolLM2-135M-Instruct on data/sample/elena_morales_chat.jsonl, webhooks to the
project's WSGI app served over real HTTP. This process plays Celery beat: it calls
`polling.poll_attempt` every --poll-interval seconds (beat runs poll_active_jobs every 15 s), and
recovery (interruption -> RECOVERING -> launch of attempt + 1, resuming from the newest
committed checkpoint) runs inside that poll, as it would in a Celery worker.

Each kill lands once the current attempt has committed a checkpoint of its own and trained a
few steps past it. Measured per kill, from the kill: when the poll noticed it (RECOVERING), when
the new attempt was launched, and when it logged its first trained step (the `time` the worker
puts on each metric point), plus the steps trained twice (last step reported before the kill
minus the step resumed from, both from the worker's own files).

Side by side, in the same invocation: the baseline is a cold start of the same job (start ->
first trained step: process start, model load, data preparation), which is what restarting by
hand would cost at best, plus all progress lost. The ratio printed last is median recovery time
/ cold start time. Target (issue 4): recovery <= 60 s with the embedded model.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data/sample/elena_morales_chat.jsonl"
TARGET_SECONDS = 60.0


def setup(workdir: Path) -> None:
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "REDIS_URL": "",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "MEDIA_ROOT": str(workdir / "media"),
        "WORKER_DEVICE": "cpu",
        "LOG_LEVEL": "WARNING",
    })
    os.environ.setdefault("GPU_WORKER_CACHE", str(REPO / "var/cache/models"))
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def quiet_logs() -> None:
    import logging

    # The worker's reports after the final cancel are refused (410) by design; not news here.
    for name in ("kombu.connection", "django.server", "django.request", "training.services.ingest",
                 "training.services.launching", "training.services.polling", "training.services.recovery",
                 "training.services.stopping"):
        logging.getLogger(name).setLevel(logging.ERROR)


def make_job(args):
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files import File

    from training.management.commands.train import serve_webhook
    from training.models import BaseModel
    from training.services import jobs
    from training.services.datasets import ingest_training_file

    if not getattr(make_job, "server", None):
        make_job.server = serve_webhook()  # get_wsgi_application() configures logging again
        settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{make_job.server.server_address[1]}"
        quiet_logs()
    user = get_user_model().objects.get_or_create(username="bench")[0]
    with open(DATA, "rb") as handle:
        training_file = ingest_training_file(uploaded=File(handle, name=DATA.name), name="sample", user=user)
    base_model = BaseModel.objects.get(is_embedded=True, slug="smollm2-135m-instruct")
    return jobs.create_job(user=user, training_file=training_file, base_model=base_model, overrides={
        "max_steps": args.max_steps, "checkpoint_interval": args.checkpoint_interval,
        "per_device_batch_size": 1, "gradient_accumulation_steps": 1, "max_seq_length": args.max_seq_length,
        "eval_interval": 0})


def first_step_time(job, attempt: int) -> float | None:
    from training.models import JobEvent

    times = [p["time"] for e in job.events.filter(event_type=JobEvent.Type.METRICS, attempt=attempt)
             for p in e.payload.get("points", []) if isinstance(p.get("time"), int | float)]
    return min(times) if times else None


def event_time(job, attempt: int, **lookup) -> float | None:
    event = job.events.filter(attempt=attempt, **lookup).order_by("received_at").first()
    return event.received_at.timestamp() if event else None


_schedule = {"next_poll": 0.0}


def poll_until(job, predicate, args, deadline_s: float = 900):
    """Wait for predicate(job), polling on one fixed schedule for the whole run (as beat does:
    a kill lands at a random point between two polls, not just before one)."""
    from training.services import polling

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if time.monotonic() >= _schedule["next_poll"]:
            polling.poll_attempt(str(job.pk))  # beat's periodic poll
            _schedule["next_poll"] = max(_schedule["next_poll"] + args.poll_interval, time.monotonic() - 1)
        job.refresh_from_db()
        if job.is_terminal:
            sys.exit(f"job ended early: {job.status} {job.error_message}")
        if value := predicate(job):
            return value
        time.sleep(0.2)
    sys.exit("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--poll-interval", type=float, default=15.0, help="seconds between polls (beat: 15)")
    parser.add_argument("--checkpoint-interval", type=int, default=4)
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--max-steps", type=int, default=400)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="recovery-bench-"))
    setup(workdir)
    from training.executors.local import work_dir
    from training.models import JobEvent
    from training.services import jobs

    print(f"machine: {os.cpu_count()} CPUs; poll every {args.poll_interval:g} s; checkpoint every "
          f"{args.checkpoint_interval} steps; batch 1 x {args.max_seq_length} tokens; load {os.getloadavg()[0]:.2f}",
          flush=True)
    job = make_job(args)
    started = time.time()
    jobs.start_job(job, user=job.created_by)
    cold = poll_until(job, lambda j: first_step_time(j, 1), args) - started
    print(f"cold start (start -> first trained step): {cold:.1f} s", flush=True)

    rows = []
    for kill in range(1, args.kills + 1):
        attempt = job.attempt

        def ready(j, attempt=attempt):
            ckpt = j.events.filter(event_type=JobEvent.Type.CHECKPOINT_SAVED, attempt=attempt).order_by("-id").first()
            return (j.attempt == attempt and ckpt is not None and (j.current_step or 0) >= ckpt.payload["step"] + 2
                    and j.attempt_ref.get("pgid"))

        pgid = poll_until(job, ready, args)
        killed_at = time.time()
        os.killpg(pgid, signal.SIGKILL)
        # The last step the killed attempt trained, from its own metrics.jsonl (line-buffered,
        # complete up to the kill); the reports to the control plane trail it.
        lines = (work_dir(job.pk, attempt) / "output" / "metrics.jsonl").read_text().splitlines()
        last_trained = max(json.loads(line)["step"] for line in lines if line.strip())
        first = poll_until(job, lambda j, a=attempt + 1: first_step_time(j, a), args)
        noticed = event_time(job, attempt, event_type=JobEvent.Type.STATUS_CHANGED, payload__to="recovering")
        launched = event_time(job, attempt + 1, event_type=JobEvent.Type.LAUNCHED)
        resumed = job.events.get(event_type=JobEvent.Type.RESUMED, attempt=attempt + 1).payload["resumed_from_step"]
        row = {"kill": kill, "total": first - killed_at, "noticed": noticed - killed_at,
               "launched": launched - killed_at, "retrained": last_trained - resumed}
        rows.append(row)
        print(f"  kill {kill}: at step {last_trained}; noticed +{row['noticed']:.1f} s, relaunched "
              f"+{row['launched']:.1f} s, first new step +{row['total']:.1f} s (resumed from step {resumed}, "
              f"{row['retrained']} steps trained again); load {os.getloadavg()[0]:.2f}", flush=True)
    jobs.cancel_job(job, user=job.created_by)
    from training.services import stopping

    stopping.stop_attempt(str(job.pk))

    median = statistics.median(r["total"] for r in rows)
    print()
    print(f"recovery, kill -> first step of the new attempt: median {median:.1f} s over {len(rows)} kills "
          f"(min {min(r['total'] for r in rows):.1f}, max {max(r['total'] for r in rows):.1f}); "
          f"of which waiting for the poll: median {statistics.median(r['noticed'] for r in rows):.1f} s")
    print(f"target <= {TARGET_SECONDS:.0f} s: {'met' if median <= TARGET_SECONDS else 'NOT met'}")
    print(f"cold start of the same job (baseline): {cold:.1f} s, with all progress lost")
    print(f"ratio recovery / cold start: {median / cold:.2f}")


if __name__ == "__main__":
    main()
