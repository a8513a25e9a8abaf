"""Fine-tune in one command, with no services: the embedded default end to end.

Examples:

    # The bundled sample data, the embedded SmolLM2-135M-Instruct, the balanced preset
    python manage.py train --dataset data/sample/elena_morales_chat.jsonl --wait

    # A short run on any local Hugging Face model folder, with overrides
    python manage.py train --dataset my.jsonl --base-model /models/tiny --max-steps 20 \
        --set learning_rate=1e-4 --set lora_r=8 --wait

    # Enqueue and return (the worker reports to PUBLIC_BASE_URL: run `manage.py runserver`)
    python manage.py train --dataset my.jsonl

It migrates the database, ingests and validates the dataset (a bad one is reported by line and
field and nothing is kept), creates the job and prints its estimate, then starts it. With
--wait it serves the webhook endpoint itself over real HTTP on an ephemeral port (the same
view and code path as production), polls the worker every 2 s in-process, shows progress, and
ends with a summary; Ctrl-C cancels the job cleanly. Exit status: 0 completed, 1 failed or
cancelled, 2 invalid input, 130 cancelled by Ctrl-C.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

from training import defaults
from training.executors import ExecutorError, get_executor
from training.models import BaseModel, HyperparameterPreset
from training.result_lines import job_summary_lines
from training.services import jobs, polling
from training.services.datasets import UploadTooLarge, delete_training_file, ingest_training_file
from training.services.progress import job_progress
from training.services.worker_config import job_store_root

POLL_SECONDS = 2.0
PLAIN_PROGRESS_SECONDS = 10.0
WORKER_EXIT_WAIT_SECONDS = 20.0
CLI_USERNAME = "cli"
CLI_EMAIL = "cli@localhost"


class Command(BaseCommand):
    help = "Fine-tune a base model on a dataset in one command (see the module docstring)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dataset", required=True, help="A .json or .jsonl dataset file.")
        parser.add_argument("--preset", default=defaults.DEFAULT_PRESET_SLUG,
                            help=f"Hyperparameter preset slug (default: {defaults.DEFAULT_PRESET_SLUG}).")
        parser.add_argument("--name", default="", help="Job name.")
        parser.add_argument("--base-model", default="",
                            help="A catalogue slug or a local Hugging Face model folder (default: the embedded model).")
        parser.add_argument("--max-steps", type=int, help="Stop after this many optimiser steps.")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="Override a hyperparameter (JSON value or plain string); repeatable.")
        parser.add_argument("--wait", action="store_true", help="Run to the end here, showing progress.")

    def handle(self, *args: Any, **opts: Any) -> None:
        quiet_console_logs()
        call_command("migrate", verbosity=0, interactive=False)
        user = get_user_model().objects.get_or_create(username=CLI_USERNAME)[0]
        if not user.email:
            # Notifications (the completion email, printed by the console backend) need an address.
            user.email = CLI_EMAIL
            user.save(update_fields=["email"])
        overrides = self.parse_overrides(opts["set"], opts["max_steps"])
        base_model = self.resolve_base_model(opts["base_model"])
        preset = self.resolve_preset(opts["preset"])
        training_file = self.ingest(Path(opts["dataset"]), user)
        try:
            job = jobs.create_job(user=user, training_file=training_file, base_model=base_model, preset=preset,
                                  overrides=overrides, name=opts["name"])
        except ValidationError as exc:
            raise CommandError(_validation_text(exc), returncode=2) from exc
        self.print_estimate(job)

        server = None
        if opts["wait"] and settings.CELERY_TASK_ALWAYS_EAGER:
            server = serve_webhook()
            # get_wsgi_application() ran django.setup() again, and with it the LOGGING dictConfig,
            # which resets every child logger of a configured one ("django", "training") to
            # NOTSET: the levels set above are gone and "refused heartbeat" / "Gone:" lines
            # would reach the console. Set them again, now that nothing will reset them.
            quiet_console_logs()
            # Before the job starts: the worker configuration is built from it at launch.
            settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}"
        jobs.start_job(job, user=user)
        if not opts["wait"]:
            self.stdout.write(f"Started job {job.pk}.")
            self.stdout.write(f"  Watch it: python manage.py watch {job.pk}  "
                              f"(or GET {settings.PUBLIC_BASE_URL}/api/training/jobs/{job.pk})")
            if settings.CELERY_TASK_ALWAYS_EAGER:
                self.stdout.write(f"  The worker reports to {settings.PUBLIC_BASE_URL}: keep `python manage.py runserver` "
                                  "running there, or use --wait to serve and watch from this command.")
            return
        try:
            code = self.watch(job)
        finally:
            if server is not None:
                server.shutdown()
        if code:
            sys.exit(code)

    # --- inputs -----------------------------------------------------------------------------

    @staticmethod
    def parse_overrides(pairs: list[str], max_steps: int | None) -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            if not sep or not key.strip():
                raise CommandError(f"--set {pair!r}: use KEY=VALUE, e.g. --set learning_rate=1e-4", returncode=2)
            try:
                overrides[key.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                overrides[key.strip()] = raw
        if max_steps is not None:
            overrides["max_steps"] = max_steps
        return overrides

    @staticmethod
    def resolve_base_model(value: str):

        if not value:
            return None
        folder = Path(value).expanduser()
        if folder.is_dir():
            folder = folder.resolve()
            weights = sum(p.stat().st_size for p in folder.glob("*.safetensors")) or sum(
                p.stat().st_size for p in folder.glob("*.bin"))
            slug = "local-" + hashlib.sha256(str(folder).encode()).hexdigest()[:12]
            model, _ = BaseModel.objects.get_or_create(slug=slug, defaults={
                "name": folder.name, "model_id": str(folder),
                "parameter_count": max(1, weights // 4),  # about fp32 weights; only the estimate uses it
                "recommended_gpu": defaults.LOCAL_EMBEDDED_GPU_TYPE, "is_embedded": True,
                "notes": "Registered by `manage.py train --base-model <folder>`.",
            })
            return model
        model = BaseModel.objects.filter(slug=value, is_active=True).first()
        if model is None:
            known = ", ".join(BaseModel.objects.filter(is_active=True).values_list("slug", flat=True))
            raise CommandError(f"--base-model {value!r} is neither a model folder nor a catalogue slug ({known}).",
                               returncode=2)
        return model

    @staticmethod
    def resolve_preset(slug: str):

        preset = HyperparameterPreset.objects.filter(slug=slug, is_active=True).first()
        if preset is None:
            known = ", ".join(HyperparameterPreset.objects.filter(is_active=True).values_list("slug", flat=True))
            raise CommandError(f"--preset {slug!r} is not a preset; use one of: {known}.", returncode=2)
        return preset

    def ingest(self, path: Path, user):

        if not path.is_file():
            raise CommandError(f"--dataset {path}: no such file.", returncode=2)
        try:
            # Validated here, before any job exists (streaming, like the background task).
            training_file = ingest_training_file(uploaded=path, name=path.stem, user=user, validate="inline")
        except ValidationError as exc:
            raise CommandError(_validation_text(exc), returncode=2) from exc
        except UploadTooLarge as exc:
            raise CommandError(f"--dataset {path}: {exc}", returncode=2) from exc
        report = training_file.validation_report or {}
        if training_file.is_trainable:
            self.stdout.write(f"Dataset {path.name}: {report.get('message') or 'valid'}")
            for warning in report.get("warnings", []):
                self.stdout.write(f"  warning: line {warning.get('line')}: {warning.get('reason')}")
            return training_file
        if not training_file.is_validated:
            raise CommandError(f"Dataset {path} is still being validated elsewhere; run again shortly.", returncode=2)
        lines = [f"Dataset {path} is not valid: {report.get('message', '')}"]
        for problem in report.get("problems", []):
            where = f"line {problem.get('line')}" + (f", {problem['field']}" if problem.get("field") else "")
            lines.append(f"  {where}: {problem.get('reason') or problem.get('message') or problem}")
        if not getattr(training_file, "was_duplicate", False):
            # Nothing half-written: this run stored it, this run removes it (the bytes too,
            # unless another record shares them).
            delete_training_file(training_file)
        raise CommandError("\n".join(lines), returncode=2)

    def print_estimate(self, job) -> None:
        estimate = job.estimate or {}
        self.stdout.write(f"Created job {job.pk} ({job.name}).")
        if estimate.get("summary"):
            self.stdout.write(f"  Estimate: {estimate['summary']}")
        else:
            self.stdout.write(f"  Estimate: ${job.cost_estimate} ({job.cost_estimate_low}–{job.cost_estimate_high}), "
                              f"about {job.estimated_duration_minutes} min on {job.gpu_type}")

    # --- watching ---------------------------------------------------------------------------

    def watch(self, job) -> int:

        # SIGTERM (a closed terminal, `kill`) cancels the job like Ctrl-C does.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        tty = self.stdout.isatty()
        last_line_at = 0.0
        last_status = None
        interrupted = False
        while True:
            try:
                if settings.CELERY_TASK_ALWAYS_EAGER:
                    polling.poll_attempt(str(job.pk))
                job.refresh_from_db()
                if job.is_terminal:
                    break
                now = time.monotonic()
                line = progress_line(job)
                if tty:
                    self.stdout.write("\r" + line.ljust(100), ending="")
                    self.stdout.flush()
                elif job.status != last_status or now - last_line_at >= PLAIN_PROGRESS_SECONDS:
                    self.stdout.write(line)
                    last_line_at = now
                last_status = job.status
                time.sleep(POLL_SECONDS)
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True
                self.stdout.write("\nCancelling: the worker stops within its current step and checkpoints the last completed one…")
                job.refresh_from_db()
                if not job.is_terminal:
                    jobs.cancel_job(job, user=job.created_by)
        if tty:
            self.stdout.write("")
        if settings.CELERY_TASK_ALWAYS_EAGER:
            wait_for_worker_exit(job)
            polling.poll_attempt(str(job.pk))  # closes the last attempt's bill
        job.refresh_from_db()
        self.print_summary(job)
        if job.status == "completed":
            return 0
        return 130 if interrupted else 1

    def print_summary(self, job) -> None:

        write = self.stdout.write
        duration = _duration(job.elapsed.total_seconds()) if job.elapsed else "?"
        write(f"Job {job.pk} {job.status} after {duration}.")
        final = (job.results or {}).get("final") or {}
        train_loss = final.get("final_train_loss", job.latest_loss)
        eval_loss = final.get("final_eval_loss", job.latest_eval_loss)
        if train_loss is not None or eval_loss is not None:
            write(f"  Final loss: train {_num(train_loss)}, eval {_num(eval_loss)}")
        perplexity = (((job.results or {}).get("validation") or {}).get("evaluators") or {}).get("perplexity") or {}
        if perplexity.get("base") is not None and perplexity.get("trained") is not None:
            write(f"  Perplexity: {_num(perplexity['base'], 2)} → {_num(perplexity['trained'], 2)} "
                  f"({_num(perplexity.get('improvement_pct'), 1)}% improvement)")
        for line in job_summary_lines(job):
            write(line)
        if job.status == "completed":
            write(f"  Adapter: {job_store_root(job.pk) / 'adapter'}")
        if job.checkpoint_recovery_count:
            write(f"  Recoveries: {job.recovery_summary()}")
        write(f"  Cost: ${job.actual_cost} ({job.billable_seconds:.0f} s billable at ${job.hourly_rate}/h; "
              f"estimated ${job.cost_estimate})")
        if job.status == "cancelled":
            # The worker abandons the step in flight and checkpoints the last completed one
            # (gpu_worker.callbacks.install_step_abort); say whether that left anything to keep.
            if job.last_checkpoint_step is not None:
                write(f"  Checkpoint: step {job.last_checkpoint_step} saved")
            else:
                write("  Checkpoint: none saved (no training step had completed)")
        if job.status != "completed":
            if job.error_message:
                write(f"  Error ({job.error_type}): {job.error_message}")
            if job.error_suggested_fix:
                write(f"  Suggested fix: {job.error_suggested_fix}")
            if job.attempt_ref.get("log"):
                write(f"  Worker log: {job.attempt_ref['log']}")


def quiet_console_logs() -> None:
    """This command's console shows its own progress line and summary; these loggers would only
    interleave noise with it (the rest of the project keeps them)."""
    # Tasks run eagerly on the in-memory broker here; kombu warns that "memory://" names no
    # host each time one is enqueued.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
    # The worker closing a keep-alive connection logs "Broken pipe" through the embedded server.
    logging.getLogger("django.server").setLevel(logging.ERROR)
    # After a cancel the worker's last reports are refused (410 "Gone") by design; the summary
    # says what happened, so the per-request lines ("Gone: /api/training/webhook", "job …
    # refused heartbeat …") would only be noise here.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    logging.getLogger("training.services.ingest").setLevel(logging.WARNING)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def progress_line(job) -> str:
    """One line: the bar, the status, steps (or validation samples) and the ETA, from the first
    heartbeat on (services.progress: measured step and sample times, the estimate before)."""
    live = job_progress(job)
    total, step = live["total_steps"] or 0, live["step"] or 0
    validation = live["validation"]
    if validation:
        fraction = min(1.0, validation["done"] / validation["total"])
    else:
        fraction = min(1.0, step / total) if total else float(job.progress_percentage or 0) / 100
    width = 24
    filled = int(round(fraction * width))
    bar = "#" * filled + "-" * (width - filled)
    parts = [f"[{bar}] {fraction * 100:5.1f}%"]
    if validation:
        parts.append(f"validating {validation['done']}/{validation['total']} samples")
    else:
        parts.append(job.get_status_display().lower())
        if total:
            parts.append(f"step {step}/{total}")
    if job.latest_loss is not None:
        parts.append(f"loss {job.latest_loss:.4g}")
    if live["stage_eta_seconds"] is not None and live["eta_seconds"] != live["stage_eta_seconds"]:
        parts.append(f"stage ETA {_duration(live['stage_eta_seconds'])}")
    if live["eta_seconds"] is not None:
        eta = f"ETA {_duration(live['eta_seconds'])}"
        if live["basis"] == "estimate":
            eta += " (estimate" + (", running over)" if live["overdue"] else ")")
        parts.append(eta)
    parts.append(f"${job.actual_cost}")
    return "  ".join(parts)


def wait_for_worker_exit(job) -> None:
    """Let the worker finish sending its last reports before our webhook server goes away."""

    if not job.attempt_ref.get("pid"):
        return
    deadline = time.monotonic() + WORKER_EXIT_WAIT_SECONDS
    executor = get_executor(job.executor)
    while time.monotonic() < deadline:
        try:
            if executor.poll(job).state not in ("running", "starting"):
                return
        except ExecutorError:
            return
        time.sleep(0.25)


def serve_webhook():
    """The project's WSGI application on 127.0.0.1:<ephemeral>, in daemon threads."""

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, name="webhook-server", daemon=True).start()
    return server


def _validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "\n".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    return " ".join(exc.messages)


def _num(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s"
