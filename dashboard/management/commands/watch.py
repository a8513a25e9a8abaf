"""Watch one training job from a terminal until it ends (seed 004's monitoring agent).

Examples:

    python manage.py watch 3f6c1c1e-...            # refresh every 2 s until the job ends
    python manage.py watch 3f6c1c1e-... --interval 10
    python manage.py watch 3f6c1c1e-... --once     # one status line, then exit

On a terminal the progress line redraws in place (\\r); piped into a file or CI log it prints
a plain line whenever something changed. Before the first metrics it says so plainly ("No
metrics yet — the job is queued"). When the job ends it prints its final verdict instead of
advice (monitoring.recommendation.final_verdict): for a completed job the result — validation
perplexity and held-out loss before → after — and the quality score; for a cancelled one the
step it stopped at and whether a checkpoint was saved; for a failed one the error and its fix.
Numbers are formatted by core.humanize, as on the dashboard.
Exit status: 0 when the job ended or --once was given, 1 for an unknown job, 130 on Ctrl-C.
"""

from __future__ import annotations

import sys
import time
import uuid

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core import humanize
from monitoring.recommendation import ERROR_CHARS, improvement_pct
from monitoring.services import job_outcome, job_verdict, quality_to_dict, score_job
from training.models import MetricPoint, TrainingJob
from training.states import Status

BAR_WIDTH = 24


class Command(BaseCommand):
    help = "Follow a training job's progress in the terminal until it ends (see the module docstring)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("job_id", help="The job's id (a UUID).")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between refreshes (default 2).")
        parser.add_argument("--once", action="store_true", help="Print the current status once and exit.")

    def handle(self, *args, job_id: str, interval: float, once: bool, **options) -> None:
        try:
            job = TrainingJob.objects.get(pk=uuid.UUID(job_id))
        except (ValueError, ValidationError, TrainingJob.DoesNotExist) as exc:
            raise CommandError(f"No training job with id {job_id!r}.") from exc
        tty = self.stdout.isatty()
        self.stdout.write(f"Watching job '{job.name}' ({job.pk}); Ctrl-C to stop watching.")
        last = ""
        try:
            while True:
                job.refresh_from_db()
                line = status_line(job)
                if tty:
                    self.stdout.write("\r" + line.ljust(len(last)), ending="")
                    self.stdout.flush()
                elif line != last:
                    self.stdout.write(line)
                last = line
                if job.is_terminal or once:
                    break
                time.sleep(max(0.0, interval))
        except KeyboardInterrupt:
            if tty:
                self.stdout.write("")
            self.stdout.write("Stopped watching; the job goes on.")
            sys.exit(130)
        if tty:
            self.stdout.write("")
        if job.is_terminal:
            self.summary(job)

    def summary(self, job: TrainingJob) -> None:
        write = self.stdout.write
        write(f"Job '{job.name}' is {job.get_status_display().lower()}.")
        outcome = job_outcome(job)
        if (job.status == Status.COMPLETED and outcome is not None and outcome.perplexity_base is not None
                and outcome.perplexity_trained is not None):
            pct = improvement_pct(outcome.perplexity_base, outcome.perplexity_trained) or 0.0
            on = f", {humanize.integer(outcome.heldout_samples)} held-out samples" if outcome.heldout_samples else ""
            write(f"  Result: perplexity {humanize.change(outcome.perplexity_base, outcome.perplexity_trained)} "
                  f"({humanize.percent(abs(pct))} {'lower' if pct >= 0 else 'higher'}); held-out loss "
                  f"{humanize.change(outcome.loss_base, outcome.loss_trained)} (validation step{on})")
        verdict = job_verdict(job, outcome)
        if verdict is not None:
            write(f"  Verdict: {verdict.reason}")
        if len(job.error_message) > ERROR_CHARS:  # the verdict shows its start
            write(f"  Error ({job.error_type}): {job.mask_secret(job.error_message)}")
        if job.status == Status.COMPLETED:
            quality = job.quality or quality_to_dict(score_job(job))
            write(f"  Quality score: {quality['score']}/100 (grade {quality['grade']})")
            for suggestion in quality.get("suggestions", [])[:3]:
                write(f"    [{suggestion['priority']}] {suggestion['text']}")
        estimate = humanize.money(job.cost_estimate)
        write(f"  Cost: {humanize.money(job.actual_cost)} (estimated {estimate})")


def status_line(job: TrainingJob) -> str:
    """One line: the bar, step/total, losses, learning rate, throughput, ETA and cost."""
    latest = (MetricPoint.objects.filter(job_id=job.pk).order_by("-step")
              .values("step", "tokens_per_second", "eta_seconds").first())
    status = job.get_status_display().lower()
    if latest is None and job.current_step is None:
        return f"No metrics yet — the job is {status}"
    total, step = job.total_steps or 0, job.current_step or 0
    fraction = min(1.0, step / total) if total else float(job.progress_percentage or 0) / 100
    filled = int(round(fraction * BAR_WIDTH))
    parts = [f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {humanize.percent(fraction * 100):>6}", status,
             f"step {humanize.integer(step)}/{humanize.integer(total) if total else '?'}"]
    if job.latest_loss is not None:
        parts.append(f"loss {humanize.significant(job.latest_loss)}")
    if job.latest_eval_loss is not None:
        parts.append(f"eval {humanize.significant(job.latest_eval_loss)}")
    if job.latest_learning_rate is not None:
        parts.append(f"lr {humanize.scientific(job.latest_learning_rate)}")
    if latest is not None and latest["tokens_per_second"] is not None:
        parts.append(f"{humanize.integer(latest['tokens_per_second'])} tok/s")
    # A finished job has no time left, whatever its last report estimated.
    if not job.is_terminal:
        eta = latest["eta_seconds"] if latest is not None else None
        if eta is None and job.estimated_time_remaining_minutes is not None:
            eta = job.estimated_time_remaining_minutes * 60
        if eta is not None:
            parts.append(f"ETA {humanize.duration(eta)}")
    parts.append(humanize.money(job.actual_cost))
    return "  ".join(parts)
