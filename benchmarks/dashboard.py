"""Measure the admin job list, the job dashboard and the metrics API on a large database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_dashboard python benchmarks/dashboard.py
    ... [--repeat 7] [--api-repeat 40] [--reseed]

Creates the database if it is missing (PostgreSQL only: it must not be the one you work in),
migrates it and seeds, once, 1,000 jobs and 1,000,000 MetricPoints with COPY: one job with
100,000 points, one with 1,000, and the rest spread over the other 998, and builds the
downsampling summaries the ingestion keeps for them (MetricSummary). Then, through Django's
test Client logged in as a superuser (the whole stack but the socket), it times:

- the job changelist (/admin/training/trainingjob/, 50 per page) and one dashboard page with
  its JSON feed and loss chart, for the 100,000-point job: median of --repeat runs and the
  query count;
- the metrics API, /api/training/jobs/<id>/metrics?max_points=500, for the 1,000- and the
  100,000-point job: p50 and p95 of --api-repeat requests.

It prints a table, then the targets against what was measured. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
JOBS = 1_000
POINTS = 1_000_000
BIG, SMALL = 100_000, 1_000
PREFIX = "bench-"
TARGETS = {"changelist": 1.0, "dashboard": 1.0, "metrics p95": 0.100}


def ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = url.replace(parsed.path, "/postgres", 1) if parsed.path else url + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def setup_django() -> None:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "false")  # as in production: no query log, no debug pages
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")  # the test client speaks plain HTTP
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # DEBUG off serves the admin's CSS and JS from STATIC_ROOT's manifest, as production does.
    call_command("collectstatic", "--noinput", verbosity=0)


def seed(reseed: bool) -> tuple[object, object, object]:
    """The superuser, the 100,000-point job and the 1,000-point job (seeding them if needed)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from training.models import (
        BaseModel,
        HyperparameterPreset,
        JobEvent,
        MetricPoint,
        TrainingFile,
        TrainingJob,
    )

    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or user_model.objects.create_superuser(
        "bench", "bench@example.com", "bench-pw")
    if reseed:
        TrainingJob.objects.filter(name__startswith=PREFIX).delete()
    if TrainingJob.objects.filter(name__startswith=PREFIX).count() == JOBS:
        big = TrainingJob.objects.get(name=f"{PREFIX}big")
        small = TrainingJob.objects.get(name=f"{PREFIX}small")
        print(f"reusing the seeded data ({MetricPoint.objects.count():,} metric points)")
        return user, big, small
    TrainingJob.objects.filter(name__startswith=PREFIX).delete()

    started = time.perf_counter()
    training_file, _ = TrainingFile.objects.get_or_create(
        sha256="b" * 64, defaults={"name": "bench.jsonl", "file": "datasets/bench.jsonl", "validation_status": "valid",
                                   "record_count": 10_000, "token_stats": {"total_tokens": 5_000_000}})
    base_model = BaseModel.objects.order_by("parameter_count").first()
    presets = list(HyperparameterPreset.objects.all())
    now = datetime.now(UTC)
    statuses = ["completed"] * 6 + ["training", "failed", "cancelled", "pending"]
    jobs = []
    for i in range(JOBS):
        name = f"{PREFIX}big" if i == 0 else f"{PREFIX}small" if i == 1 else f"{PREFIX}{i:04d}"
        status = "training" if i < 2 else statuses[i % len(statuses)]
        jobs.append(TrainingJob(
            id=uuid.uuid4(), name=name, training_file=training_file, base_model=base_model,
            preset=presets[i % len(presets)], created_by=user, status=status, configuration={},
            gpu_type="H100_PCIE_80GB", cost_estimate=50 + i % 30, cost_estimate_low=40, cost_estimate_high=70,
            actual_cost=i % 70, hourly_rate="2.49", progress_percentage=min(100, i % 101),
            started_at=now - timedelta(hours=i % 48 + 1), current_step=0, total_steps=0, attempt=1,
            estimate={"stages": {"preprocessing": 3, "model_loading": 12, "training": 600, "validation": 8}},
        ))
    with transaction.atomic():
        TrainingJob.objects.bulk_create(jobs, batch_size=500)
        TrainingJob.objects.filter(pk__in=[j.pk for j in jobs]).update(created_at=now)
    sizes = [BIG, SMALL] + spread(POINTS - BIG - SMALL, JOBS - 2)
    print(f"seeding {POINTS:,} metric points with COPY ...", flush=True)
    columns = ("job_id", "attempt", "step", "epoch", "train_loss", "eval_loss", "learning_rate",
               "tokens_per_second", "gpu_memory_used_mb", "gpu_memory_total_mb", "reported_at")
    with transaction.atomic(), connection.cursor() as cursor:
        sql = f"COPY training_metricpoint ({', '.join(columns)}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for job, size in zip(jobs, sizes, strict=True):
                for step in range(1, size + 1):
                    copy.write_row((job.pk, 1, step, 3 * step / size, 2.0 * math.exp(-3 * step / size) + 0.4,
                                    2.1 * math.exp(-3 * step / size) + 0.45 if step % 50 == 0 else None,
                                    2e-4 * (1 - step / size), 3000.0 + step % 97, 40_000, 81_559, now))
        for job, size in zip(jobs, sizes, strict=True):
            job.current_step, job.total_steps = size, size
        TrainingJob.objects.bulk_update(jobs, ["current_step", "total_steps"], batch_size=500)
        events = []
        for job in jobs:
            for minutes, to in ((0, "queued"), (1, "provisioning"), (3, "preprocessing"), (6, "model_loading"),
                                (18, "training")):
                events.append(JobEvent(job=job, event_type="status_changed", source="system",
                                       payload={"from": "", "to": to}, new_status=to,
                                       received_at=now - timedelta(hours=2) + timedelta(minutes=minutes)))
        JobEvent.objects.bulk_create(events, batch_size=2000)
    # COPY bypasses the ingestion, which keeps the downsampling summaries as batches arrive.
    from training.services.metric_summaries import rebuild_summaries

    summary_rows = sum(rebuild_summaries(job.pk) for job in jobs)
    print(f"built {summary_rows:,} metric summaries", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE training_metricpoint; ANALYZE training_trainingjob; ANALYZE training_jobevent; "
                       "ANALYZE training_metricsummary")
    print(f"seeded in {time.perf_counter() - started:.1f} s")
    return user, jobs[0], jobs[1]


def spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def timed(client, url: str, repeat: int) -> tuple[list[float], int, int]:
    """Seconds per request (after one warm-up), the queries of one request, the status code."""
    from django.db import connection

    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        else:
            _ = response.content
        times.append(time.perf_counter() - start)
    return times, len(queries), response.status_code


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--api-repeat", type=int, default=40)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a dedicated PostgreSQL database, e.g. "
                         "postgres://postgres@127.0.0.1:5432/bench_dashboard")
    ensure_database(url)
    setup_django()
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse

    user, big, small = seed(args.reseed)
    print(f"DEBUG={settings.DEBUG}, database {settings.DATABASES['default']['NAME']}")
    client = Client()
    client.force_login(user)
    dashboard = reverse("admin:training_trainingjob_dashboard", args=[big.pk])
    pages = [
        ("changelist", "job list (1,000 jobs, 50/page)", reverse("admin:training_trainingjob_changelist"), args.repeat),
        ("dashboard", "dashboard, 100k-point job", dashboard, args.repeat),
        ("dashboard data", "dashboard JSON feed, 100k", dashboard + "data/", args.repeat),
        ("loss chart", "loss chart SVG, 100k", dashboard + "chart/loss.svg", args.repeat),
        ("dashboard 1k", "dashboard, 1k-point job",
         reverse("admin:training_trainingjob_dashboard", args=[small.pk]), args.repeat),
        ("metrics 1k", "metrics API, 1k points, max_points=500",
         f"/api/training/jobs/{small.pk}/metrics?max_points=500", args.api_repeat),
        ("metrics 100k", "metrics API, 100k points, max_points=500",
         f"/api/training/jobs/{big.pk}/metrics?max_points=500", args.api_repeat),
    ]
    results = {}
    print(f"\n{'what':<42} {'n':>3} {'median':>9} {'p95':>9} {'queries':>8}")
    for key, label, page_url, repeat in pages:
        times, queries, _ = timed(client, page_url, repeat)
        results[key] = (statistics.median(times), percentile(times, 95), queries)
        print(f"{label:<42} {repeat:>3} {results[key][0] * 1000:>7.1f}ms {results[key][1] * 1000:>7.1f}ms {queries:>8}")
    print("\ntarget                          limit     measured   ok")
    checks = [("job list median", TARGETS["changelist"], results["changelist"][0]),
              ("dashboard median (100k)", TARGETS["dashboard"], results["dashboard"][0]),
              ("metrics p95 (1k)", TARGETS["metrics p95"], results["metrics 1k"][1]),
              ("metrics p95 (100k)", TARGETS["metrics p95"], results["metrics 100k"][1])]
    for label, limit, measured in checks:
        print(f"{label:<30} < {limit * 1000:>5.0f}ms {measured * 1000:>9.1f}ms   {'yes' if measured < limit else 'NO'}")


if __name__ == "__main__":
    main()
