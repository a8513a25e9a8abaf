"""A notification rendered for every channel: subject, plain text, HTML email, Slack blocks and
webhook data, all drawn from one `Content`.

`build_message(notification)` reads the job as it is when the message is sent (so a retry
carries the newest figures). One context builder per kind (`completed`, `failed`, ...) turns
the job and its event into `Content`: a headline, an optional callout (the error and its fix,
an anomaly's advice), titled sections of label/value rows, recent events and links. Every
figure goes through core.humanize; `section()` drops the rows with nothing to show and the
whole section when none is left, so no message ever shows an empty heading.
The templates (email/message.html on email/base.html, email/message.txt) lay the Content out;
`slack_blocks` and `webhook_data` turn the same Content into Block Kit and a fine_tuning.job
object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from core import humanize
from monitoring.services import STAGE_WORDS, quality_to_dict, score_job, validation_perplexity
from training.lifecycle import Status
from training.models import JobEvent, MetricPoint, TrainingJob

from .channels import Message
from .kinds import LABELS, WEBHOOK_TYPES, Kind
from .models import Notification

SUBJECT_CHARS = 200
RECENT_EVENTS = 8
# Colour pairs (accent, tint) for the email's bar, button and callout.
TONES = {"green": ("#15803d", "#f0fdf4"), "red": ("#b91c1c", "#fef2f2"), "amber": ("#b45309", "#fffbeb"),
         "blue": ("#1d4ed8", "#eff6ff"), "gray": ("#4b5563", "#f3f4f6")}
NOTE_COLORS = {"good": "#15803d", "bad": "#b91c1c", "": "#6b7280"}
EYEBROWS = {Kind.COMPLETED: "Job completed", Kind.FAILED: "Job failed", Kind.CANCELLED: "Job cancelled",
            Kind.INTERRUPTED: "Interrupted", Kind.RECOVERED: "Recovered", Kind.MILESTONE: "Milestone",
            Kind.ANOMALY_CRITICAL: "Critical anomaly", Kind.ANOMALY: "Trend finding",
            Kind.COST_OVER_ESTIMATE: "Cost over estimate", Kind.BUDGET_THRESHOLD: "Budget threshold",
            Kind.APPROVED: "Model approved", Kind.REJECTED: "Model rejected",
            Kind.VALIDATION_FINISHED: "Validation finished", Kind.REVIEW_REQUESTED: "Review requested"}
ANOMALY_WORDS = {"divergence": "divergence", "spike": "loss spike", "loss_spike": "loss spike",
                 "heartbeat_stale": "stale heartbeat", "new_best": "new best", "overfitting": "overfitting",
                 "plateau": "plateau", "stall": "stall"}
# Our states as the fine-tuning API's job statuses (validating_files, queued, running, succeeded...).
API_STATUS = {Status.PENDING: "queued", Status.QUEUED: "queued", Status.COMPLETED: "succeeded",
              Status.FAILED: "failed", Status.CANCELLED: "cancelled"}
QUIET_EVENTS = (JobEvent.Type.HEARTBEAT, JobEvent.Type.METRICS)


# --- What a message says --------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    note: str = ""
    tone: str = ""  # "good" or "bad": the note's colour

    @property
    def note_color(self) -> str:
        return NOTE_COLORS.get(self.tone, NOTE_COLORS[""])


@dataclass(frozen=True)
class Section:
    title: str
    rows: list[Row]


@dataclass(frozen=True)
class Callout:
    title: str
    body: str
    fix: str = ""
    fix_label: str = "Suggested fix"


@dataclass(frozen=True)
class EventLine:
    at: str
    what: str
    detail: str


@dataclass
class Content:
    kind: str
    subject: str
    title: str
    intro: str = ""
    tone: str = "blue"
    icon: str = "🔔"
    highlights: list[Row] = field(default_factory=list)
    callout: Callout | None = None
    sections: list[Section] = field(default_factory=list)
    events: list[EventLine] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)  # (label, url), the first is the button
    metadata: dict[str, Any] = field(default_factory=dict)        # ours, in the webhook's metadata

    @property
    def eyebrow(self) -> str:
        """The kind over the title: "Critical anomaly"."""
        return EYEBROWS.get(self.kind) or str(LABELS.get(self.kind, self.kind))

    @property
    def subscription(self) -> str:
        """The kind as the recipient chose it in their settings."""
        return str(LABELS.get(self.kind, self.kind))

    @property
    def accent(self) -> str:
        return TONES[self.tone][0]

    @property
    def tint(self) -> str:
        return TONES[self.tone][1]


def row(label: str, value: str, note: str = "", tone: str = "") -> Row | None:
    """A row, or None when there is nothing to show ("" or humanize's "—")."""
    return Row(label, value, note, tone) if value not in ("", humanize.MISSING) else None


def section(title: str, *rows: Row | None) -> Section | None:
    kept = [r for r in rows if r is not None]
    return Section(title, kept) if kept else None


def sections(*found: Section | None) -> list[Section]:
    return [s for s in found if s is not None]


def one_line(text: str, limit: int = SUBJECT_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def sentence(text: str) -> str:
    """"the pod was preempted" -> "The pod was preempted."; "" stays ""."""
    text = one_line(text, 300).rstrip(".")
    return text[:1].upper() + text[1:] + "." if text else ""


def percent_change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return (after - before) / abs(before) * 100


def number(value: Any) -> float | None:
    """A finite-or-not float from a model field or a payload (Decimal, int, float, "1.23")."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(Decimal(str(value))) if isinstance(value, str) else float(value)
    except (InvalidOperation, TypeError, ValueError):
        return None


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


# --- Links ----------------------------------------------------------------------------------


def site_url() -> str:
    return settings.NOTIFICATIONS_SITE_URL or settings.PUBLIC_BASE_URL


def job_url(job) -> str:
    return site_url() + reverse("admin:training_trainingjob_dashboard", args=[job.pk])


def admin_url(job) -> str:
    return site_url() + reverse("admin:training_trainingjob_change", args=[job.pk])


def settings_url() -> str:
    """Where a recipient changes what they hear about ("" until that page exists)."""
    try:
        return site_url() + reverse("admin:notifications_notificationsettings_changelist")
    except NoReverseMatch:
        return ""


# --- Figures of a job ------------------------------------------------------------------------


def final_report(job: TrainingJob) -> dict[str, Any]:
    return (job.results or {}).get("final") or {}


def run_summary(job: TrainingJob) -> dict[str, Any]:
    return job.run_summary


def training_method(job: TrainingJob) -> str:
    """QLoRA when the worker loaded the model in 4 bits: what it reported, else the job's
    `quantization` (auto: 4-bit on a CUDA GPU, none on a CPU, gpu_worker.config)."""
    used = run_summary(job).get("quantization") or job.hyperparameters.get("quantization") or "auto"
    if used == "auto":
        used = "4bit" if (settings.GPU_TABLE.get(job.gpu_type) or {}).get("memory_gb") else "none"
    return "SFT with QLoRA (4-bit)" if used == "4bit" else "SFT with LoRA"


def gpu_label(job: TrainingJob) -> str:
    return (settings.GPU_TABLE.get(job.gpu_type) or {}).get("label") or job.gpu_type


def hyper(job: TrainingJob, *names: str) -> Any:
    return job.hyperparameter(*names)


def train_loss(job: TrainingJob) -> float | None:
    found = number(final_report(job).get("final_train_loss"))
    return found if found is not None else job.latest_loss


def eval_loss(job: TrainingJob) -> float | None:
    found = number(final_report(job).get("final_eval_loss"))
    return found if found is not None else job.latest_eval_loss


def perplexity_pair(job: TrainingJob) -> tuple[float | None, float | None]:
    found = validation_perplexity(job)
    trained = number(found.get("trained"))
    return number(found.get("base")), trained if trained is not None else job.latest_perplexity


def duration_seconds(job: TrainingJob) -> float | None:
    if job.elapsed is not None:
        return job.elapsed.total_seconds()
    return job.actual_duration_minutes * 60 if job.actual_duration_minutes is not None else None


def steps_text(job: TrainingJob, step: int | None = None) -> str:
    step = job.current_step if step is None else step
    total = job.total_steps or hyper(job, "max_steps")
    if step is None:
        return ""
    return f"{humanize.integer(step)} / {humanize.integer(total)}" if total and total > 0 else humanize.integer(step)


def peak_gpu_memory_mb(job: TrainingJob) -> float | None:
    return MetricPoint.objects.filter(job_id=job.pk).aggregate(peak=Max("gpu_memory_used_mb"))["peak"]


def gigabytes(megabytes: float | None) -> str:
    return f"{humanize.significant(megabytes / 1024, 3)} GB" if megabytes else ""


def quality_of(job: TrainingJob, *, compute: bool = False) -> dict[str, Any]:
    """The stored quality score; computed now (not stored) when asked and none is stored yet."""
    if job.quality or not compute:
        return job.quality or {}
    return quality_to_dict(score_job(job))


def top_suggestions(quality: dict[str, Any], count: int = 3) -> list[str]:
    found = [s.get("text", "") for s in quality.get("suggestions") or [] if isinstance(s, dict)]
    return [text for text in found if text][:count]


def recent_events(job: TrainingJob, count: int = RECENT_EVENTS) -> list[EventLine]:
    events = list(JobEvent.objects.filter(job_id=job.pk).exclude(event_type__in=QUIET_EVENTS)
                  .order_by("-received_at", "-id")[:count])
    return [event_line(job, e) for e in reversed(events)]


def event_line(job: TrainingJob, event: JobEvent) -> EventLine:
    payload = job.mask_secret(event.payload) if isinstance(event.payload, dict) else {}
    what = event.event_type.replace("_", " ")
    if event.event_type == JobEvent.Type.STATUS_CHANGED:
        detail = f"{event.old_status or '?'} → {event.new_status}"
        if payload.get("message"):
            detail += f": {payload['message']}"
    else:
        detail = next((str(payload[k]) for k in ("message", "error_type", "reason", "action") if payload.get(k)),
                      str(payload.get("stage") or "").replace("_", " "))
        if not detail and event.step is not None:
            detail = f"step {humanize.integer(event.step)}"
    at = event.received_at.astimezone(UTC)
    day = "" if at.date() == datetime.now(UTC).date() else f"{at:%b %d} "
    return EventLine(f"{day}{at:%H:%M:%S} UTC", what, one_line(detail, 160))


# --- Sections shared by the kinds ------------------------------------------------------------


def overview(job: TrainingJob) -> Section | None:
    return section(
        "Overview", row("Job", job.name), row("Base model", job.base_model.name),
        row("Method", training_method(job)), row("Duration", humanize.duration(duration_seconds(job))))


def configuration(job: TrainingJob, *, steps: bool = True) -> Section | None:
    batch, accumulation = hyper(job, "per_device_batch_size", "per_device_train_batch_size"), \
        hyper(job, "gradient_accumulation_steps")
    batch_note = f"× {humanize.integer(accumulation)} accumulation" if accumulation and accumulation > 1 else ""
    lora = hyper(job, "lora_r")
    return section(
        "Training Configuration",
        row("Learning rate", humanize.scientific(hyper(job, "learning_rate"))),
        row("Batch size", humanize.integer(batch), batch_note),
        row("Epochs", humanize.significant(hyper(job, "num_epochs", "num_train_epochs"), 3, trim=True)),
        row("LoRA rank", humanize.integer(lora), f"alpha {humanize.integer(hyper(job, 'lora_alpha'))}"
            if hyper(job, "lora_alpha") else ""),
        row("Steps", steps_text(job) if steps else ""))


def dataset(job: TrainingJob) -> Section | None:
    tokens = run_summary(job).get("tokens_trained")
    return section(
        "Dataset", row("Training file", job.training_file.name),
        row("Records", humanize.integer(job.training_file.record_count)),
        row("Tokens trained", humanize.integer(tokens) if number(tokens) else ""))


def performance(job: TrainingJob, quality: dict[str, Any]) -> Section | None:
    before, after = perplexity_pair(job)
    return section(
        "Performance Metrics",
        row("Train loss", humanize.significant(train_loss(job))),
        row("Eval loss", humanize.significant(eval_loss(job))),
        perplexity_row(before, after),
        quality_row(quality))


def perplexity_row(before: float | None, after: float | None) -> Row | None:
    if before is None:
        return row("Perplexity", humanize.significant(after))
    if after is None:
        return row("Perplexity (base model)", humanize.significant(before))
    delta = percent_change(before, after)
    return row("Perplexity", humanize.change(before, after), humanize.signed_percent(delta) if delta is not None else "",
               "good" if delta is not None and delta < 0 else "bad" if delta else "")


def quality_row(quality: dict[str, Any]) -> Row | None:
    if not isinstance(quality.get("score"), int | float):
        return None
    return row("Quality score", f"{humanize.integer(quality['score'])} / 100",
               f"grade {quality['grade']}" if quality.get("grade") else "")


def resources(job: TrainingJob) -> Section | None:
    rss = number(run_summary(job).get("peak_memory_mb"))
    return section(
        "Resource Usage", row("GPU", gpu_label(job)),
        row("Peak GPU memory", gigabytes(peak_gpu_memory_mb(job))),
        row("Peak process memory", gigabytes(rss)),
        row("Billable time", humanize.duration(job.billable_seconds) if job.billable_seconds else ""),
        row("Interruptions", job.recovery_summary()))


def cost(job: TrainingJob, title: str = "Cost", *, final: bool = True) -> Section | None:
    """Actual against the estimate; the difference in % only once the job has ended (`final`)."""
    actual, estimate = job.actual_cost, job.cost_estimate
    if not actual and not estimate:
        return None  # nothing billed and nothing predicted (a local CPU run)
    delta = percent_change(number(estimate), number(actual))
    band = (f"range {humanize.money(job.cost_estimate_low)}–{humanize.money(job.cost_estimate_high)}"
            if job.cost_estimate_low is not None and job.cost_estimate_high is not None else "")
    versus = f"{humanize.signed_percent(delta)} vs estimate" if delta is not None and final else ""
    return section(
        title, row("Actual", humanize.money(actual), versus, "bad" if delta and delta > 0 else "good"),
        row("Estimate", humanize.money(estimate) if estimate is not None else "", band),
        row("Hourly rate", f"{humanize.money(job.hourly_rate)}/h" if job.hourly_rate else ""))


def progress(job: TrainingJob, step: int | None = None) -> Section | None:
    remaining = job.estimated_time_remaining_minutes
    return section(
        "Progress", row("Steps", steps_text(job, step)),
        row("Progress", humanize.percent(job.progress_percentage, 0) if job.progress_percentage else ""),
        row("Epoch", humanize.significant(job.current_epoch, 3, trim=True)),
        row("Running for", humanize.duration(duration_seconds(job))),
        row("Time left (estimate)", humanize.duration(remaining * 60) if remaining is not None else ""),
        row("Last checkpoint", f"step {humanize.integer(job.last_checkpoint_step)}"
            if job.last_checkpoint_step is not None else ""))


def latest_metrics(job: TrainingJob) -> Section | None:
    return section(
        "Latest Metrics", row("Train loss", humanize.significant(job.latest_loss)),
        row("Eval loss", humanize.significant(job.latest_eval_loss)),
        row("Perplexity", humanize.significant(job.latest_perplexity)),
        row("Learning rate", humanize.scientific(job.latest_learning_rate)))


def recovery(job: TrainingJob) -> Section | None:
    return section("Recovery", row("Interruptions", job.recovery_summary()),
                   row("Attempt", humanize.integer(job.attempt) if job.attempt else ""))


def told(event: JobEvent | None) -> dict[str, Any]:
    """The event's payload ({} without an event)."""
    return (event.payload or {}) if event is not None and isinstance(event.payload, dict) else {}


def dashboard_action(job: TrainingJob) -> tuple[str, str]:
    return ("Open the dashboard", job_url(job))


# --- One builder per kind --------------------------------------------------------------------


def completed(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    quality = quality_of(job)
    before, after = perplexity_pair(job)
    loss = eval_loss(job)
    figure = (f"perplexity {humanize.significant(before, 3)} → {humanize.significant(after, 3)}"
              if before is not None and after is not None
              else f"eval loss {humanize.significant(loss)}" if loss is not None else "")
    duration = humanize.duration(duration_seconds(job))
    headline_figure = (perplexity_row(before, after) if before is not None and after is not None
                       else row("Eval loss", humanize.significant(loss)))
    return Content(
        kind=notification.kind, tone="green", icon="✅",
        subject=f"Completed: {job.name}" + (f" — {figure}" if figure else ""), title=job.name,
        intro=f"{job.base_model.name} was fine-tuned with {training_method(job).removeprefix('SFT with ')}"
              + (f" in {duration}" if duration != humanize.MISSING else "") + ". The adapter is ready.",
        highlights=[r for r in (headline_figure, quality_row(quality), row("Duration", duration)) if r is not None],
        sections=sections(overview(job), configuration(job), dataset(job), performance(job, quality),
                          resources(job), cost(job)),
        suggestions=top_suggestions(quality), actions=[dashboard_action(job)],
        metadata={"perplexity_base": before, "perplexity_trained": after, "train_loss": train_loss(job),
                  "eval_loss": loss, "quality_score": quality.get("score"), "quality_grade": quality.get("grade"),
                  "actual_cost": _money(job.actual_cost), "cost_estimate": _money(job.cost_estimate)})


def failed(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    error_label = job.error_type.replace("_", " ").capitalize() if job.error_type else ""
    message = str(job.mask_secret(job.error_message or ""))
    stage = STAGE_WORDS.get(job.current_stage, "")
    where = (f" during {stage}" if stage else "") + (f" at step {steps_text(job).replace(' / ', ' of ')}"
                                                      if job.current_step is not None else "")
    return Content(
        kind=notification.kind, tone="red", icon="❌",
        subject=f"Failed: {job.name}" + (f" — {error_label or one_line(message, 80)}" if error_label or message else ""),
        title=job.name, intro=f"The job failed{where}.",
        callout=Callout(error_label or "Error", message[:1500] or "The worker gave no message.",
                        str(job.mask_secret(job.error_suggested_fix or ""))),
        sections=sections(
            section("Where It Stopped", row("Stage", stage.capitalize()), row("Steps reached", steps_text(job)),
                    row("Last checkpoint", f"step {humanize.integer(job.last_checkpoint_step)}"
                        if job.last_checkpoint_step is not None else ""),
                    row("Attempt", humanize.integer(job.attempt) if job.attempt else "")),
            overview(job), configuration(job, steps=False), dataset(job), resources(job), cost(job, final=False)),
        events=recent_events(job),
        actions=[("Retry from the dashboard", job_url(job) + "#retry-form"), ("Open in the admin", admin_url(job))],
        metadata={"error_type": job.error_type, "suggested_fix": job.error_suggested_fix})


def cancelled(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    by = told(event).get("message", "")
    return Content(
        kind=notification.kind, tone="gray", icon="⏹️",
        subject=f"Cancelled: {job.name}" + (f" at step {job.current_step}" if job.current_step else ""),
        title=job.name, intro="The job was cancelled" + (f" ({by})" if by else "") + ".",
        sections=sections(progress(job), overview(job), cost(job, final=False)),
        actions=[dashboard_action(job)])


def interrupted(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    reason = told(event).get("message", "")
    resume = job.last_checkpoint_step
    return Content(
        kind=notification.kind, tone="amber", icon="⚠️",
        subject=f"Interrupted: {job.name} — " + (f"resuming from step {resume}" if resume is not None
                                                 else "restarting, no checkpoint yet"),
        title=job.name, intro=f"{sentence(reason)} A new attempt starts from the newest committed checkpoint.".lstrip(),
        sections=sections(progress(job), recovery(job), cost(job, "Cost So Far", final=False)),
        actions=[dashboard_action(job)], metadata={"resume_from_step": resume})


def recovered(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    step = told(event).get("resumed_from_step")
    step = step if isinstance(step, int) else job.resumed_from_step
    return Content(
        kind=notification.kind, tone="blue", icon="🔄",
        subject=f"Recovered: {job.name}" + (f" — resumed from step {step}" if step is not None else ""),
        title=job.name, intro="Training continues" + (f" from the checkpoint at step {step}" if step is not None
                                                     else " from the start") + ".",
        sections=sections(progress(job), recovery(job), cost(job, "Cost So Far", final=False)),
        actions=[dashboard_action(job)], metadata={"resumed_from_step": step})


def milestone(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    payload = told(event) or notification.payload or {}
    percent = (event.milestone_percent if event is not None else None) or payload.get("percent")
    step = (event.step if event is not None else None) or payload.get("step") or job.current_step
    quality = quality_of(job, compute=True) if percent == 100 else {}
    loss = humanize.significant(job.latest_loss)
    return Content(
        kind=notification.kind, tone="blue", icon="📈",
        subject=(f"{percent}% done" if percent else "Milestone") + f": {job.name} — step {steps_text(job, step)}"
                + (f", loss {loss}" if job.latest_loss is not None else ""),
        title=job.name, intro=str(payload.get("message") or f"Training reached {percent}% of its steps."),
        sections=sections(progress(job, step), latest_metrics(job),
                          section("Quality", quality_row(quality)), cost(job, "Cost So Far", final=False)),
        suggestions=top_suggestions(quality), actions=[dashboard_action(job)],
        metadata={"milestone_percent": percent, "quality_score": quality.get("score")})


def anomaly(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    payload = told(event)
    kind = (event.anomaly_kind if event is not None else "") or payload.get("kind") or "anomaly"
    what = ANOMALY_WORDS.get(kind, kind.replace("_", " "))
    step = (event.step if event is not None else None) or payload.get("step")
    critical = notification.kind == Kind.ANOMALY_CRITICAL
    at = f" at step {humanize.integer(step)}" if step is not None else ""
    return Content(
        kind=notification.kind, icon="🚨" if critical else "🔎",
        tone="red" if critical else "green" if kind == "new_best" else "amber",
        subject=(f"Critical: {what} in {job.name}{at}" if critical else f"{what.capitalize()} in {job.name}{at}"),
        title=job.name, intro=f"The trend analysis found {'a critical ' if critical else ''}{what}{at}.",
        callout=Callout(what.capitalize(), str(payload.get("message") or ""), str(payload.get("suggested_action") or ""),
                        "Suggested action"),
        sections=sections(progress(job, step), latest_metrics(job), cost(job, "Cost So Far", final=False)),
        actions=[dashboard_action(job)],
        metadata={"anomaly": kind, "severity": event.severity if event is not None else "",
                  "message": payload.get("message"), "suggested_action": payload.get("suggested_action")})


def cost_over_estimate(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    payload = notification.payload or {}
    actual = job.actual_cost if job.actual_cost else number(payload.get("actual_cost"))
    estimate = job.cost_estimate if job.cost_estimate is not None else number(payload.get("cost_estimate"))
    over = percent_change(number(estimate), number(actual))
    over_text = humanize.signed_percent(over) if over is not None else ""
    return Content(
        kind=notification.kind, tone="amber", icon="💸",
        subject=f"Over estimate: {job.name} — {humanize.money(actual)} vs {humanize.money(estimate)}"
                + (f" ({over_text})" if over_text else ""),
        title=job.name, intro=f"The running cost is {humanize.percent(over) if over is not None else 'well'} over "
                              f"the estimate{' and the job is still running' if job.is_active else ''}.",
        sections=sections(cost(job), progress(job), resources(job)), actions=[dashboard_action(job)],
        metadata={"actual_cost": _money(actual), "cost_estimate": _money(estimate), "percent_over": over})


def validation_finished(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    """The validation suite's table: each benchmark base → trained, its change and verdict."""
    payload = told(event) or notification.payload or {}
    rows = [r for r in payload.get("benchmarks") or [] if isinstance(r, dict)]
    passed = payload.get("passed")
    meeting = sum(1 for r in rows if r.get("passed"))
    verdict = ("passed every threshold" if passed else f"{meeting} of {len(rows)} thresholds met" if rows
               else "no results")
    highlights = [Row(str(r.get("label", "")), f"{r.get('base', '—')} → {r.get('trained', '—')}",
                      f"{r.get('change', '—')} · {r.get('verdict', '')}",
                      "good" if r.get("passed") else "bad" if r.get("passed") is False else "")
                  for r in rows]
    scorers = section("Scored By", *(row(str(r.get("label", "")), str(r.get("scorer", "")),
                                         "provisional" if r.get("provisional") else "") for r in rows))
    return Content(
        kind=notification.kind, icon="🧪", tone="green" if passed else "amber" if passed is False else "blue",
        subject=f"Validation {verdict}: {job.name}", title=job.name,
        intro=str(payload.get("message") or "The validation suite has finished."),
        highlights=highlights, sections=sections(scorers, overview(job)),
        actions=[("See before and after", site_url() + reverse("admin:validation_jobvalidation_compare",
                                                                args=[job.pk])), dashboard_action(job)],
        metadata={"passed": passed, "benchmarks": rows, "judge_error": payload.get("judge_error") or ""})


REVIEW_WORDS = {"approved": "approved", "rejected": "rejected", "changes_requested": "asked for changes to"}


def review(notification: Notification, job: TrainingJob, event: JobEvent | None) -> Content:
    """QA's review: asked for (to QA), or decided (to the owner, a rejection with a next step)."""
    payload = told(event) or notification.payload or {}
    state = (event.new_status if event is not None else "") or str(payload.get("state") or "")
    verdict = str(payload.get("verdict") or "")
    if state == "awaiting_review":
        queue = site_url() + reverse("admin:validation_modelreview_changelist") + "?state__exact=awaiting_review"
        return Content(
            kind=notification.kind, tone="blue", icon="🔎",
            subject=f"Review requested: {job.name}" + (f" — validation {verdict}" if verdict else ""), title=job.name,
            intro=f"{job.base_model.name} finished training; its model waits for QA's approval."
                  + (f" Validation {verdict}." if verdict else ""),
            sections=sections(overview(job)), actions=[("Open the review queue", queue), dashboard_action(job)],
            metadata={"review_state": state, "verdict": verdict})
    by = str(payload.get("decided_by") or "QA")
    reason = str(payload.get("message") or "")
    version = payload.get("report_version")
    seen = f" after reading validation report version {version}" if isinstance(version, int) else ""
    approved = state == "approved"
    label = {"approved": "Model approved", "rejected": "Model rejected"}.get(state, "Changes requested")
    return Content(
        kind=notification.kind, tone="green" if approved else "red" if state == "rejected" else "amber",
        icon="✅" if approved else "❌" if state == "rejected" else "✏️",
        subject=f"{label}: {job.name}" + (f" — {one_line(reason, 80)}" if reason else ""), title=job.name,
        intro=f"{by} {REVIEW_WORDS.get(state, state)} the model{seen}."
              + (" Its deployment package is released." if approved else ""),
        callout=Callout("Reason", reason, str(payload.get("suggestion") or ""), "Suggested next step") if reason else None,
        sections=sections(overview(job)),
        actions=[dashboard_action(job)] if approved else [("Retry from the dashboard", job_url(job) + "#retry-form"),
                                                          ("Open in the admin", admin_url(job))],
        metadata={"review_state": state, "decided_by": by, "reason": reason, "report_version": version,
                  "suggestion": payload.get("suggestion") or ""})


def generic(notification: Notification, job: TrainingJob | None, event: JobEvent | None) -> Content:
    """Budgets: a label, the payload's message and its other figures."""
    payload = dict(notification.payload or {})
    label = EYEBROWS.get(notification.kind) or str(LABELS.get(notification.kind, notification.kind))
    message = str(payload.pop("message", "") or told(event).get("message", ""))
    subject = str(payload.pop("subject", "") or (f"{label}: {job.name}" if job is not None else label))
    details = section("Details", *(row(key.replace("_", " ").capitalize(), _payload_value(key, value))
                                   for key, value in payload.items()))
    return Content(
        kind=notification.kind, subject=subject, title=job.name if job is not None else label,
        intro=message, tone="amber" if notification.kind == Kind.BUDGET_THRESHOLD else "blue",
        sections=sections(details, overview(job) if job is not None else None),
        actions=[dashboard_action(job)] if job is not None else [("Open the control plane", site_url())],
        metadata={"details": payload})


BUILDERS = {Kind.COMPLETED: completed, Kind.FAILED: failed, Kind.CANCELLED: cancelled, Kind.INTERRUPTED: interrupted,
            Kind.RECOVERED: recovered, Kind.MILESTONE: milestone, Kind.ANOMALY_CRITICAL: anomaly,
            Kind.ANOMALY: anomaly, Kind.COST_OVER_ESTIMATE: cost_over_estimate,
            Kind.VALIDATION_FINISHED: validation_finished, Kind.REVIEW_REQUESTED: review, Kind.APPROVED: review,
            Kind.REJECTED: review}


def _money(value: Any) -> str | None:
    return None if value is None else str(Decimal(str(value)).quantize(settings.MONEY))


def _payload_value(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return "" if value in (None, {}, []) else str(value)
    if any(word in key for word in ("cost", "budget", "spent", "amount", "price")) and number(value) is not None:
        return humanize.money(number(value))
    if key.endswith(("percent", "pct")) and number(value) is not None:
        return humanize.percent(number(value))
    if isinstance(value, int):
        return humanize.integer(value)
    return humanize.significant(value) if isinstance(value, float) else str(value)


# --- The channels' parts ---------------------------------------------------------------------


def content_for(notification: Notification) -> Content:
    job, event = notification.job, notification.event
    builder = BUILDERS.get(notification.kind) if job is not None else None
    content = (builder or generic)(notification, job, event)
    content.subject = one_line(content.subject)
    return content


# Kinds rendered by the module that makes them (digests, daily reports), registered by
# NotificationsConfig.ready(): those modules import this one, so this one may not import them.
RENDERERS: dict[str, Callable[[Notification], Message]] = {}


def build_message(notification: Notification) -> Message:
    renderer = RENDERERS.get(notification.kind)
    if renderer is not None:
        return renderer(notification)
    content = content_for(notification)
    job = notification.job
    url = job_url(job) if job is not None else site_url()
    context = {"c": content, "url": url, "site_url": site_url(), "settings_url": settings_url(), "rule": "-" * 48}
    return Message(
        id=f"notification-{notification.pk}", subject=content.subject,
        text=render_to_string("notifications/email/message.txt", context).strip() + "\n",
        html=render_to_string("notifications/email/message.html", context),
        slack_blocks=slack_blocks(content),
        webhook_type=WEBHOOK_TYPES.get(notification.kind, f"fine_tuning.{notification.kind}"),
        webhook_data=webhook_data(notification, content), url=url)


def slack_blocks(content: Content) -> list[dict[str, Any]]:
    """Block Kit: a header, the intro, one section of fields per section, the events, a button."""
    def text(value: str) -> dict[str, str]:
        return {"type": "mrkdwn", "text": value[:2900]}

    def fields(rows: list[Row]) -> list[dict[str, str]]:
        return [text(f"*{_slack(r.label)}*\n{_slack(r.value)}" + (f" ({_slack(r.note)})" if r.note else ""))
                for r in rows][:10]

    blocks: list[dict[str, Any]] = [{"type": "header", "text": {
        "type": "plain_text", "text": one_line(f"{content.icon} {content.subject}", 150), "emoji": True}}]
    if content.intro:
        blocks.append({"type": "section", "text": text(_slack(content.intro))})
    if content.highlights:
        blocks.append({"type": "section", "fields": fields(content.highlights)})
    if content.callout is not None:
        body = f"*{_slack(content.callout.title)}*\n{_slack(content.callout.body)}"
        if content.callout.fix:
            body += f"\n*{content.callout.fix_label}:* {_slack(content.callout.fix)}"
        blocks.append({"type": "section", "text": text(body)})
    for found in content.sections:
        blocks.append({"type": "section", "text": text(f"*{_slack(found.title)}*"), "fields": fields(found.rows)})
    if content.events:
        lines = "\n".join(f"`{e.at}` *{_slack(e.what)}* {_slack(e.detail)}" for e in content.events)
        blocks.append({"type": "section", "text": text(f"*Recent Events*\n{lines}")})
    if content.suggestions:
        blocks.append({"type": "section", "text": text("*Suggestions*\n" + "\n".join(
            f"• {_slack(s)}" for s in content.suggestions))})
    if content.actions:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": label[:75]}, "url": link,
             **({"style": "primary"} if n == 0 else {})} for n, (label, link) in enumerate(content.actions[:5])]})
    return blocks[:50]


def _slack(value: str) -> str:
    # Slack's mrkdwn reads &, < and > as markup (links, mentions): escaped, as its docs ask.
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_data(notification: Notification, content: Content) -> dict[str, Any]:
    """The job in the shape of the fine-tuning API's fine_tuning.job object, with our kind,
    progress and link in `metadata`."""
    job = notification.job
    if job is None:
        return {"object": "notification", "kind": notification.kind, "subject": content.subject,
                "metadata": {"kind": notification.kind, "url": site_url(), **content.metadata}}
    tokens = run_summary(job).get("tokens_trained")
    event = notification.event
    return {
        "id": str(job.pk), "object": "fine_tuning.job", "status": API_STATUS.get(job.status, "running"),
        "model": job.base_model.model_id,
        # The name the adapter goes by once trained: ft:<base model>:<job id>.
        "fine_tuned_model": f"ft:{job.base_model.model_id}:{job.pk}" if job.status == Status.COMPLETED else None,
        "created_at": unix(job.created_at), "finished_at": unix(job.completed_at) if job.is_terminal else None,
        "training_file": str(job.training_file_id),
        "trained_tokens": int(tokens) if number(tokens) is not None else None,
        "hyperparameters": {"n_epochs": hyper(job, "num_epochs", "num_train_epochs"),
                            "batch_size": hyper(job, "per_device_batch_size", "per_device_train_batch_size"),
                            "learning_rate": hyper(job, "learning_rate")},
        "error": ({"code": job.error_type or "unknown", "message": str(job.mask_secret(job.error_message or "")),
                   "param": None} if job.status == Status.FAILED else None),
        "metadata": {"kind": notification.kind, "name": job.name, "status": job.status,
                     "step": event.step if event is not None and event.step is not None else job.current_step,
                     "total_steps": job.total_steps,
                     "percent": float(job.progress_percentage), "url": job_url(job),
                     **{k: v for k, v in content.metadata.items() if v is not None}},
    }
