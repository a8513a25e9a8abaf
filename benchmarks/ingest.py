"""Webhook ingestion at scale, measured from outside: gunicorn, PostgreSQL, DEBUG off.

    python benchmarks/ingest.py                      # 3 interleaved rounds of 5 s per kind
    python benchmarks/ingest.py --rounds 5 --seconds 8 --clients 4 --batches 30

The server is what production runs: `gunicorn` with 2 sync workers (--workers) serving the
project with DEBUG off, on a fresh PostgreSQL database (--database-url; dropped and created
again). The baseline is a bare Django view on the same server that inserts one row per request
(benchmarks/ingest_app.py): the floor any webhook that stores what it is sent has to pay.

Each round runs, one after the other (interleaved, so a slow moment of the machine hits both):
- bare: the baseline, --clients clients posting a heartbeat-sized body;
- heartbeat: signed `heartbeat` reports, each client its own job;
- metrics 1 job: signed 1-point `metrics` reports, all clients on one job;
- metrics N jobs: the same, each client its own job;
- batch: one client posting --batches signed 1,000-point `metrics` reports, one after the other
  (latency p50/p99), then the same batches again with new webhook ids (a retried batch, or a
  resumed attempt re-reporting its steps: "re-reported").
Clients are separate processes sending as fast as the answers come (a new connection per
request, as gunicorn's sync workers close each). At the end every accepted report is looked
for in the database: lost = accepted but not stored; duplicated = stored more than once.

Targets (issue 21): heartbeat and 1-point metrics with several jobs >= 0.8x the bare insert;
one job's 1-point metrics >= 200 requests/s; 1,000-point batch p99 <= 100 ms; a re-reported
batch within 2x of a new one; 0 lost, 0 duplicated. The ratios are printed last.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpu_worker.signing import signed_headers  # noqa: E402

WEBHOOK = "/api/training/webhook"
BARE = "/bench/bare-insert"
SECRET = "bench-secret-" + "x" * 20
VALUE_FIELDS = ("epoch", "train_loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second",
                "samples_per_second", "gpu_memory_used_mb", "gpu_memory_total_mb", "gpu_utilization_pct",
                "eta_seconds")
TOTAL_STEPS = 2_000_000_000
STEP_BLOCK = 1_000_000  # each (round, kind, client) reports steps in its own block


# --- Reports, built as gpu_worker's Reporter builds them -------------------------------------


def point(step: int) -> dict:
    values = dict.fromkeys(VALUE_FIELDS)
    values.update(epoch=step / 1000, train_loss=2.0 / (1 + step % 5000 / 500), learning_rate=2e-4,
                  grad_norm=0.8, tokens_per_second=1500.0)
    return {"step": step, **values, "total_steps": TOTAL_STEPS}


def report(job_id: str, seq: int, type_: str, data: dict) -> tuple[bytes, dict[str, str], str]:
    event_id = f"evt_{uuid.uuid4().hex}"
    body = json.dumps({"id": event_id, "type": type_, "job_id": job_id, "attempt": 1, "seq": seq,
                       "timestamp": "2026-12-01T00:00:00Z", "data": data}, separators=(",", ":")).encode()
    headers = signed_headers(SECRET, body, msg_id=event_id)
    headers["Content-Type"] = "application/json"
    return body, headers, event_id


def post(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        # As behind production's TLS proxy (SECURE_PROXY_SSL_HEADER): with DEBUG off a plain
        # http request is redirected to https.
        connection.request("POST", path, body=body, headers={**headers, "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        payload = response.read()
        return response.status, (json.loads(payload) if payload else {})
    finally:
        connection.close()


# --- Clients ------------------------------------------------------------------------------------


@dataclass
class ClientResult:
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    # (job id, webhook id, steps) of every accepted webhook report, for the loss check.
    accepted: list[tuple[str, str, list[int]]] = field(default_factory=list)


def run_client(args: tuple) -> ClientResult:
    kind, host, port, job_id, first_step, step_stride, seconds = args
    result = ClientResult()
    step, seq = first_step, 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        seq += 1
        steps: list[int] = []
        if kind == "bare":
            body = json.dumps({"id": uuid.uuid4().hex, "type": "heartbeat", "job_id": job_id, "attempt": 1,
                               "seq": seq, "data": {}}).encode()
            path, headers, event_id = BARE, {"Content-Type": "application/json", "webhook-id": uuid.uuid4().hex}, ""
        elif kind == "heartbeat":
            body, headers, event_id = report(job_id, seq, "heartbeat", {})
            path = WEBHOOK
        else:
            steps = [step]
            body, headers, event_id = report(job_id, seq, "metrics", {"points": [point(step)]})
            path = WEBHOOK
            step += step_stride
        t0 = time.perf_counter()
        status, answer = post(host, port, path, body, headers)
        result.latencies.append(time.perf_counter() - t0)
        if status == 200 and not answer.get("duplicate"):
            result.ok += 1
            if event_id:
                result.accepted.append((job_id, event_id, steps))
        else:
            result.failed += 1
    result.seconds = time.perf_counter() - started
    return result


def run_parallel(pool, kind: str, host: str, port: int, job_ids: list[str], round_no: int, seconds: float,
                 clients: int, kind_no: int) -> list[ClientResult]:
    tasks = []
    for client in range(clients):
        job_id = job_ids[client % len(job_ids)]
        same_job = len(job_ids) == 1
        block = ((round_no * 8 + kind_no) * 16 + (0 if same_job else client)) * STEP_BLOCK
        # Clients of one job interleave their steps; clients of their own jobs count up from the block.
        first, stride = (block + client, clients) if same_job else (block, 1)
        tasks.append((kind, host, port, job_id, first, stride, seconds))
    return pool.map(run_client, tasks)


def run_batches(host: str, port: int, job_id: str, first_step: int, batches: int, size: int,
                seq_start: int) -> tuple[ClientResult, list[list[int]]]:
    result = ClientResult()
    sent_steps = []
    for index in range(batches):
        steps = list(range(first_step + index * size, first_step + (index + 1) * size))
        body, headers, event_id = report(job_id, seq_start + index, "metrics", {"points": [point(s) for s in steps]})
        t0 = time.perf_counter()
        status, answer = post(host, port, WEBHOOK, body, headers)
        result.latencies.append(time.perf_counter() - t0)
        if status == 200 and not answer.get("duplicate"):
            result.ok += 1
            result.accepted.append((job_id, event_id, steps))
        else:
            result.failed += 1
            print(f"  batch answered {status}: {answer}", file=sys.stderr)
        sent_steps.append(steps)
    return result, sent_steps


# --- The server and its database ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def server_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_URL"))}
    env.update(DATABASE_URL=database_url, DJANGO_DEBUG="false", DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
               DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost", PYTHONPATH=str(REPO), DJANGO_SETTINGS_MODULE="config.settings",
               PYTHONWARNINGS="ignore")  # WhiteNoise's "no STATIC_ROOT": nothing is collected here
    return env


def prepare(database_url: str, jobs: int) -> list[str]:
    """Migrate the fresh database, create the baseline's table and `jobs` training jobs."""
    env = server_env(database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DJANGO_DEBUG", "DJANGO_SECRET_KEY",
                                            "DJANGO_SETTINGS_MODULE")})
    import django

    django.setup()
    from django.db import connection

    from training.models import BaseModel, TrainingFile, TrainingJob

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_bare_insert (id bigserial PRIMARY KEY, webhook_id varchar(128), "
                       "body jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())")
    training_file = TrainingFile.objects.create(name="bench.jsonl", file="datasets/bench.jsonl",
                                                sha256=uuid.uuid4().hex, validation_status="valid")
    base_model = BaseModel.objects.get(is_embedded=True)
    ids = []
    for index in range(jobs):
        job = TrainingJob.objects.create(name=f"bench {index}", training_file=training_file, base_model=base_model,
                                         configuration={})
        TrainingJob.objects.filter(pk=job.pk).update(status="training", attempt=1, secret=SECRET,
                                                     total_steps=TOTAL_STEPS)
        ids.append(str(job.pk))
    return ids


def start_server(database_url: str, port: int, workers: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "benchmarks.ingest_app:application", "--workers", str(workers),
         "--worker-class", "sync", "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--timeout", "120"],
        cwd=REPO, env=server_env(database_url), start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            status, _ = post("127.0.0.1", port, BARE, b"{}", {"Content-Type": "application/json"})
            if status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not answer within 60 s")


def check_stored(accepted: list[tuple[str, str, list[int]]]) -> tuple[int, int, int, int]:
    """(events lost, events duplicated, points lost, points duplicated) among accepted reports."""
    from django.db.models import Count

    from training.models import JobEvent, MetricPoint

    ids = [event_id for _job, event_id, _steps in accepted]
    stored: dict[str, int] = {}
    for start in range(0, len(ids), 5000):
        rows = (JobEvent.objects.filter(webhook_id__in=ids[start:start + 5000]).values("webhook_id")
                .annotate(n=Count("id")).values_list("webhook_id", "n"))
        stored.update(rows)
    events_lost = sum(1 for i in ids if i not in stored)
    events_duplicated = sum(n - 1 for n in stored.values() if n > 1)
    expected: dict[str, set[int]] = {}
    for job_id, _event_id, steps in accepted:
        expected.setdefault(job_id, set()).update(steps)
    points_lost = points_duplicated = 0
    for job_id, steps in expected.items():
        counts = dict(MetricPoint.objects.filter(job_id=job_id).values("step").annotate(n=Count("id"))
                      .values_list("step", "n"))
        points_lost += sum(1 for s in steps if s not in counts)
        points_duplicated += sum(n - 1 for n in counts.values() if n > 1)
    return events_lost, events_duplicated, points_lost, points_duplicated


# --- Main ---------------------------------------------------------------------------------------


def rate(results: list[ClientResult]) -> float:
    return sum(r.ok for r in results) / max(r.seconds for r in results)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_ingest")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per kind per round")
    parser.add_argument("--batches", type=int, default=20, help="1,000-point batches per round")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()

    fresh_database(args.database_url)
    job_ids = prepare(args.database_url, jobs=args.clients + 2)
    single_job, batch_job, many_jobs = job_ids[0], job_ids[1], job_ids[2:]
    port = free_port()
    server = start_server(args.database_url, port, args.workers)
    print(f"gunicorn: {args.workers} sync workers on 127.0.0.1:{port}, DEBUG off, PostgreSQL "
          f"{urlsplit(args.database_url).path.lstrip('/')}; {args.clients} clients, {args.rounds} rounds of "
          f"{args.seconds:g} s per kind")
    kinds = ("bare", "heartbeat", "metrics 1 job", "metrics N jobs")
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    ratios: dict[str, list[float]] = {k: [] for k in kinds[1:]}
    new_latency: list[float] = []
    rereport_latency: list[float] = []
    accepted: list[tuple[str, str, list[int]]] = []
    failed = 0
    try:
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            for round_no in range(args.rounds):
                for kind_no, kind in enumerate(kinds):
                    targets = {"bare": many_jobs, "heartbeat": many_jobs, "metrics 1 job": [single_job],
                               "metrics N jobs": many_jobs}[kind]
                    results = run_parallel(pool, "metrics" if kind.startswith("metrics") else kind, "127.0.0.1",
                                           port, targets, round_no, args.seconds, args.clients, kind_no)
                    rates[kind].append(rate(results))
                    failed += sum(r.failed for r in results)
                    for r in results:
                        accepted.extend(r.accepted)
                first = (round_no * 8 + 7) * 16 * STEP_BLOCK
                new, steps = run_batches("127.0.0.1", port, batch_job, first, args.batches, args.batch_size,
                                         seq_start=round_no * 1000)
                again, _ = run_batches("127.0.0.1", port, batch_job, first, args.batches, args.batch_size,
                                       seq_start=round_no * 1000 + 500)
                new_latency += new.latencies
                rereport_latency += again.latencies
                accepted += new.accepted + again.accepted
                failed += new.failed + again.failed
                for kind in kinds[1:]:
                    ratios[kind].append(rates[kind][-1] / rates["bare"][-1])
                print(f"round {round_no + 1}: " + ", ".join(f"{k} {rates[k][-1]:.0f}/s" for k in kinds)
                      + f"; batch p50 {quantile(new.latencies, 0.5) * 1000:.0f} ms, re-reported p50 "
                      f"{quantile(again.latencies, 0.5) * 1000:.0f} ms")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    events_lost, events_dup, points_lost, points_dup = check_stored(accepted)
    print()
    print(f"{'kind':<16}{'requests/s (median)':>22}{'x bare (median)':>18}")
    for kind in kinds:
        ratio = f"{statistics.median(ratios[kind]):.2f}" if kind in ratios else "1.00"
        print(f"{kind:<16}{statistics.median(rates[kind]):>22.0f}{ratio:>18}")
    print(f"1,000-point batch: p50 {quantile(new_latency, 0.5) * 1000:.0f} ms, p99 "
          f"{quantile(new_latency, 0.99) * 1000:.0f} ms ({len(new_latency)} batches)")
    print(f"re-reported batch: p50 {quantile(rereport_latency, 0.5) * 1000:.0f} ms, p99 "
          f"{quantile(rereport_latency, 0.99) * 1000:.0f} ms")
    print(f"accepted {len(accepted)} reports ({failed} answered otherwise): {events_lost} lost, {events_dup} "
          f"duplicated events; {points_lost} lost, {points_dup} duplicated points")
    print()
    print("ratios (target):")
    print(f"  heartbeat / bare insert       {statistics.median(ratios['heartbeat']):.2f}  (>= 0.80)")
    print(f"  metrics N jobs / bare insert  {statistics.median(ratios['metrics N jobs']):.2f}  (>= 0.80)")
    print(f"  metrics 1 job requests/s      {statistics.median(rates['metrics 1 job']):.0f}  (>= 200)")
    print(f"  batch p99 / 100 ms            {quantile(new_latency, 0.99) * 1000 / 100:.2f}  (<= 1.00)")
    print(f"  re-reported / new batch p50   "
          f"{quantile(rereport_latency, 0.5) / quantile(new_latency, 0.5):.2f}  (<= 2.00)")


if __name__ == "__main__":
    main()
