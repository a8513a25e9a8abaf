"""The daily training report (seed 001): the last 24 hours of training in one page.

`build_daily_report(now=None, user=None)` gathers, from the database alone:

- training status: the jobs active now, with step / total (%), latest loss and held-out loss;
- jobs that finished in the period: completed (perplexity before → after, from the validation
  step), failed (the error type and the suggested fix), cancelled; and jobs interrupted;
- anomalies in the period (JobEvent "anomaly"), grouped by kind with counts, critical first;
- money spent: the billed time of every attempt that ran in the period, the part inside the
  period, each at its own hourly rate (`JobAttempt.billable_seconds` from `launched_at`, the
  rule of training/services/billing.py), so a job that ran for three days counts one day;
- storage: what `ModelArtifact.storage_bytes` measured under jobs/<id>/ for completed jobs
  (adapter, reports, exports, checkpoints not yet pruned), and for other jobs still holding
  checkpoints (running, or ended within CHECKPOINT_RETENTION_DAYS) the sizes their workers
  reported in `checkpoint_saved` events, the newest `keep_checkpoints` of each: the store keeps
  no more. Nothing lists the bucket;
- a health summary ("All systems healthy", or the issues: divergence, spikes, stalls, silent
  workers, failures, interruptions) and recommendations (what the issues call for, and each
  active job's from `monitoring.services.trend_analysis`, less its "Continue" for a job that
  already has something urgent to do).

It is stored as a `DailyReport`: Markdown text, HTML, and the data (JSON) both are rendered from.
`user` restricts it to the jobs that user may see; without it the report covers every job.

`build_and_send_daily_report()` (beat, 08:00) builds the report of every job and emails it to
each active user who asked for it (`NotificationSettings.daily_report`): users who may see every
job (staff, operators) get that report; anyone else gets a report built over their own jobs,
so nobody reads about a job they may not see. Each email is a `Notification` (kind
"daily_report", one per report and recipient) delivered by `services.deliver_notification`, so
it is sent once and retried if the mail server is down; `build_report_message` renders it.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.utils import timezone

from artifacts.models import ModelArtifact
from core import humanize
from gpu_worker.config import WorkerConfig
from monitoring.services import trend_analysis, validation_perplexity
from training.lifecycle import ACTIVE, Status
from training.models import JobAttempt, JobEvent, TrainingJob, dollars

from .channels import Message
from .kinds import CRITICAL_ANOMALIES
from .messages import TONES, job_url, settings_url, site_url
from .models import DailyReport, Notification, UserChannel
from .services import deliver_notification

PERIOD = timedelta(hours=24)
KIND = "daily_report"
KEEP_CHECKPOINTS = next(f.default for f in dataclasses.fields(WorkerConfig) if f.name == "keep_checkpoints")

ANOMALY_LABELS = {
    "divergence": "Divergence", "spike": "Loss spikes", "loss_spike": "Loss spikes",
    "heartbeat_stale": "Silent worker (heartbeat late)", "stall": "Stalls", "new_best": "New best checkpoints",
    "overfitting": "Overfitting", "plateau": "Plateaus",
}
ACTIONS = {"continue": "Continue", "stop_early": "Stop early", "use_checkpoint": "Use an earlier checkpoint"}
COST_METHOD = ("the billed time of every attempt that ran in the period, only the part inside it, "
               "each at its own hourly rate")


# --- Building ---------------------------------------------------------------------------------


def build_daily_report(now: datetime | None = None, *, user=None) -> DailyReport:
    """The report of the 24 hours up to `now`, stored; of the jobs `user` may see, if given."""
    end = now or timezone.now()
    start = end - PERIOD
    jobs = TrainingJob.objects.all() if user is None else TrainingJob.objects.visible_to(user)
    data = gather(jobs, start, end)
    data["scope"] = ({"all": True} if user is None else
                     {"all": False, "user_id": user.pk, "username": user.get_username()})
    text, html = render(data)
    return DailyReport.objects.create(period_start=start, period_end=end, text=text, html=html, data=data)


def gather(jobs, start: datetime, end: datetime) -> dict[str, Any]:
    """The report's figures (JSON-safe) for the jobs of the queryset `jobs`, period (start, end]."""
    active = [_active(job, end) for job in jobs.filter(status__in=ACTIVE).order_by("created_at")]
    finished = list(jobs.filter(status__in=[Status.COMPLETED, Status.FAILED, Status.CANCELLED],
                                completed_at__gt=start, completed_at__lte=end).order_by("completed_at"))
    completed = [_completed(job) for job in finished if job.status == Status.COMPLETED]
    failed = [_failed(job) for job in finished if job.status == Status.FAILED]
    cancelled = [_ref(job) for job in finished if job.status == Status.CANCELLED]
    interrupted = _interrupted(jobs, start, end)
    anomalies = _anomalies(jobs, start, end)
    cost = _cost(jobs, start, end, finished)
    data: dict[str, Any] = {
        "period": {"start": start.isoformat(), "end": end.isoformat(), "hours": PERIOD.total_seconds() / 3600},
        "active": active, "completed": completed, "failed": failed, "cancelled": cancelled,
        "interrupted": interrupted, "anomalies": anomalies, "cost": cost, "storage": _storage(jobs, end),
    }
    data["activity"] = bool(active or finished or interrupted or anomalies["total"] or Decimal(cost["spent"]))
    data["health"] = _health(data)
    data["recommendations"] = _recommendations(data)
    return data


def _ref(job: TrainingJob) -> dict[str, Any]:
    return {"id": str(job.pk), "name": job.name, "url": job_url(job)}


def _active(job: TrainingJob, now: datetime) -> dict[str, Any]:
    step, total = job.current_step, job.total_steps
    percent = (100.0 * step / total if step is not None and total else float(job.progress_percentage or 0))
    late = job.status != Status.RECOVERING and job.heartbeat_is_stale(now)
    since = job.last_heartbeat_at or job.attempt_started_at
    silent = (now - since).total_seconds() if late and since is not None else None
    advice = trend_analysis(job)["recommendation"]
    return {**_ref(job), "status": job.status, "status_label": job.get_status_display(), "step": step,
            "total_steps": total, "percent": round(percent, 2), "loss": _json_float(job.latest_loss),
            "eval_loss": _json_float(job.latest_eval_loss), "heartbeat_late": late, "silent_seconds": silent,
            "recommendation": advice}


def _completed(job: TrainingJob) -> dict[str, Any]:
    perplexity = validation_perplexity(job)
    base, trained = _number(perplexity.get("base")), _number(perplexity.get("trained"))
    if base is None or trained is None:
        artifact = ModelArtifact.objects.filter(job=job).first()
        if artifact is not None:
            base, trained = artifact.perplexity_baseline, artifact.perplexity_trained
    change = (trained - base) / base * 100 if base and trained is not None and math.isfinite(base) else None
    elapsed = job.elapsed
    return {**_ref(job), "perplexity_base": _json_float(base), "perplexity_trained": _json_float(trained),
            "perplexity_change_pct": _json_float(change),
            "duration_seconds": elapsed.total_seconds() if elapsed is not None else None,
            "cost": str(job.actual_cost), "final_loss": _json_float(job.latest_loss)}


def _failed(job: TrainingJob) -> dict[str, Any]:
    return {**_ref(job), "error_type": job.error_type or "unknown error", "error_message": job.error_message[:300],
            "suggested_fix": job.error_suggested_fix, "stage": job.current_stage}


def _interrupted(jobs, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = (JobEvent.objects.filter(job__in=jobs, event_type=JobEvent.Type.STATUS_CHANGED,
                                    new_status=Status.RECOVERING, received_at__gt=start, received_at__lte=end)
            .values("job_id", "job__name", "job__gpu_pricing_tier").annotate(count=Count("id")).order_by("job__name"))
    return [{"id": str(row["job_id"]), "name": row["job__name"], "count": row["count"],
             "spot": row["job__gpu_pricing_tier"] == TrainingJob.PricingTier.SPOT,
             "url": job_url(TrainingJob(pk=row["job_id"]))} for row in rows]


def _anomalies(jobs, start: datetime, end: datetime) -> dict[str, Any]:
    rows = (JobEvent.objects.filter(job__in=jobs, event_type=JobEvent.Type.ANOMALY, received_at__gt=start,
                                    received_at__lte=end)
            .values_list("anomaly_kind", "severity", "job_id", "job__name", "step").order_by("received_at", "id"))
    kinds: dict[str, dict[str, Any]] = {}
    for kind, severity, job_id, name, step in rows:
        kind = kind or "other"
        entry = kinds.setdefault(kind, {"kind": kind, "label": ANOMALY_LABELS.get(kind, kind.replace("_", " ").capitalize()),
                                        "critical": False, "count": 0, "jobs": {}})
        entry["critical"] = entry["critical"] or kind in CRITICAL_ANOMALIES or severity == JobEvent.Severity.CRITICAL
        entry["count"] += 1
        job = entry["jobs"].setdefault(str(job_id), {"id": str(job_id), "name": name, "count": 0, "first_step": step})
        job["count"] += 1
    ordered = sorted(kinds.values(), key=lambda k: (not k["critical"], -k["count"], k["kind"]))
    for entry in ordered:
        entry["jobs"] = sorted(entry["jobs"].values(), key=lambda j: (-j["count"], j["name"]))
    return {"total": sum(k["count"] for k in ordered), "kinds": ordered}


def _cost(jobs, start: datetime, end: datetime, finished: list[TrainingJob]) -> dict[str, Any]:
    attempts = (JobAttempt.objects.filter(job__in=jobs, launched_at__lt=end)
                .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start)).select_related("job"))
    by_job: dict[Any, Decimal] = defaultdict(Decimal)
    names: dict[Any, TrainingJob] = {}
    for attempt in attempts:
        billed_to = attempt.launched_at + timedelta(seconds=attempt.billable_seconds)
        seconds = (min(end, billed_to) - max(start, attempt.launched_at)).total_seconds()
        if seconds > 0:
            by_job[attempt.job_id] += dollars(seconds, attempt.hourly_rate)
            names[attempt.job_id] = attempt.job
    spent = sum(by_job.values(), Decimal(0)).quantize(settings.MONEY)
    rows = sorted(((names[pk], amount.quantize(settings.MONEY)) for pk, amount in by_job.items()),
                  key=lambda row: (-row[1], row[0].name))
    return {"spent": str(spent), "method": COST_METHOD,
            "by_job": [{**_ref(job), "cost": str(amount)} for job, amount in rows if amount > 0],
            "finished_jobs_cost": str(sum((job.actual_cost for job in finished), Decimal(0)).quantize(settings.MONEY))}


def _storage(jobs, now: datetime) -> dict[str, Any]:
    artifacts = ModelArtifact.objects.filter(job__in=jobs).aggregate(
        total=Sum("storage_bytes"), adapters=Sum("adapter_size_bytes"), count=Count("id"))
    cutoff = now - timedelta(days=settings.CHECKPOINT_RETENTION_DAYS)
    holding = jobs.filter(artifact__isnull=True).filter(Q(completed_at__isnull=True) | Q(completed_at__gt=cutoff))
    sizes: dict[Any, dict[int, int]] = defaultdict(dict)
    for job_id, step, payload in (JobEvent.objects.filter(job__in=holding, event_type=JobEvent.Type.CHECKPOINT_SAVED)
                                  .order_by("received_at", "id").values_list("job_id", "step", "payload")):
        size = (payload or {}).get("size_bytes")
        step = step if step is not None else (payload or {}).get("step")
        if isinstance(step, int) and isinstance(size, int) and not isinstance(size, bool):
            sizes[job_id][step] = size  # a step checkpointed again (another attempt) replaced the first
    keep = {job.pk: job.hyperparameters.get("keep_checkpoints") or KEEP_CHECKPOINTS
            for job in TrainingJob.objects.filter(pk__in=list(sizes)).only("id", "configuration")}
    checkpoint_bytes = sum(sum(size for _step, size in sorted(steps.items())[-keep.get(job_id, KEEP_CHECKPOINTS):])
                           for job_id, steps in sizes.items())
    artifact_bytes = artifacts["total"] or 0
    return {"artifact_jobs": artifacts["count"], "artifact_bytes": artifact_bytes,
            "adapter_bytes": artifacts["adapters"] or 0, "checkpoint_jobs": sum(1 for s in sizes.values() if s),
            "checkpoint_bytes": checkpoint_bytes, "total_bytes": artifact_bytes + checkpoint_bytes,
            "keep_checkpoints": KEEP_CHECKPOINTS, "retention_days": settings.CHECKPOINT_RETENTION_DAYS}


def _health(data: dict[str, Any]) -> dict[str, Any]:
    issues: list[dict[str, Any]] = []
    for kind in data["anomalies"]["kinds"]:
        for job in kind["jobs"]:
            times = f" ({humanize.integer(job['count'])} times)" if job["count"] > 1 else ""
            at = f" at step {humanize.integer(job['first_step'])}" if job["first_step"] is not None else ""
            text = {
                "divergence": f"Training divergence in {job['name']}{at}",
                "spike": f"Loss spikes in {job['name']}{times}",
                "loss_spike": f"Loss spikes in {job['name']}{times}",
                "stall": f"{job['name']} stalled{times}",
                "heartbeat_stale": f"The worker of {job['name']} went silent{times}",
            }.get(kind["kind"])
            if text is None and kind["critical"]:
                text = f"{kind['label']} in {job['name']}{times}"
            if text is not None:
                issues.append({"kind": kind["kind"], "critical": kind["critical"], "job_id": job["id"], "text": text})
    for job in data["active"]:
        if job["heartbeat_late"]:
            issues.append({"kind": "silent", "critical": False, "job_id": job["id"],
                           "text": f"No heartbeat from {job['name']} for {humanize.duration(job['silent_seconds'])}"})
    for job in data["failed"]:
        issues.append({"kind": "failed", "critical": True, "job_id": job["id"],
                       "text": f"{job['name']} failed: {job['error_type']}"})
    for job in data["interrupted"]:
        times = "once" if job["count"] == 1 else f"{humanize.integer(job['count'])} times"
        issues.append({"kind": "interrupted", "critical": False, "job_id": job["id"],
                       "text": f"{job['name']} was interrupted {times}"})
    issues.sort(key=lambda issue: not issue["critical"])
    return {"healthy": not issues, "issues": issues}


def _recommendations(data: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names = {job["id"]: job for section in ("active", "completed", "failed", "cancelled") for job in data[section]}
    diverged = next((k["jobs"] for k in data["anomalies"]["kinds"] if k["kind"] == "divergence"), [])
    for job in diverged:
        out.append({"job_id": job["id"], "name": job["name"], "url": names.get(job["id"], {}).get("url", ""),
                    "text": "Urgent: review the divergence" + (f" at step {humanize.integer(job['first_step'])}"
                                                               if job["first_step"] is not None else "")})
    for job in data["failed"]:
        if job["suggested_fix"]:
            out.append({"job_id": job["id"], "name": job["name"], "url": job["url"], "text": job["suggested_fix"]})
    for job in data["active"]:
        if job["heartbeat_late"]:
            out.append({"job_id": job["id"], "name": job["name"], "url": job["url"],
                        "text": "Check its worker: no heartbeat for " + humanize.duration(job["silent_seconds"])})
    # The trend analysis's advice for each active job, except its "Continue ... nothing suggests
    # stopping" for a job already told something urgent above (a divergence to review, a fix, a
    # silent worker): that would contradict it.
    urgent = {rec["job_id"] for rec in out}
    for job in data["active"]:
        advice = job["recommendation"]
        if advice["action"] == "continue" and job["id"] in urgent:
            continue
        out.append({"job_id": job["id"], "name": job["name"], "url": job["url"],
                    "text": f"{ACTIONS.get(advice['action'], advice['action'])}. {advice['reason']}"})
    for job in data["interrupted"]:
        if job["spot"] and job["count"] > 1:
            out.append({"job_id": job["id"], "name": job["name"], "url": job["url"],
                        "text": f"Interrupted {humanize.integer(job['count'])} times on spot GPUs: "
                                "consider on-demand for its next run"})
    return out


def _json_float(value: float | None) -> float | str | None:
    """A float as JSON can hold it: NaN and infinities (a diverged loss) as text, which
    humanize still reads (and shows as "n/a")."""
    return value if value is None or math.isfinite(value) else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- Rendering --------------------------------------------------------------------------------


def render(data: dict[str, Any]) -> tuple[str, str]:
    """(Markdown text, HTML) of a report's data; every figure through core.humanize."""
    context = present(data)
    return (render_to_string("notifications/daily_report.txt", context),
            render_to_string("notifications/daily_report.html", context))


def present(data: dict[str, Any]) -> dict[str, Any]:
    period = data["period"]
    scope = data.get("scope") or {"all": True}
    storage = data["storage"]
    cost = data["cost"]

    def item(job: dict[str, Any], detail: str, parts: list[str] | None = None) -> dict[str, Any]:
        # `parts`: the detail's comma-separated pieces, each of which the HTML keeps on one line.
        return {"name": job["name"], "url": job.get("url", ""), "detail": detail,
                "parts": detail and (parts if parts is not None else [detail])}

    active = []
    for job in data["active"]:
        parts = [job["status_label"]]
        if job["step"] is not None or job["total_steps"]:
            parts.append(f"step {humanize.integer(job['step'] or 0)} / {humanize.integer(job['total_steps'])} "
                         f"({humanize.percent(job['percent'])})")
        if job["loss"] is not None:
            parts.append(f"loss {humanize.significant(job['loss'])}")
        if job["eval_loss"] is not None:
            parts.append(f"held-out loss {humanize.significant(job['eval_loss'])}")
        if job["heartbeat_late"]:
            parts.append(f"no heartbeat for {humanize.duration(job['silent_seconds'])}")
        active.append({**item(job, ", ".join(parts), parts[1:]), "status": job["status_label"],
                       "late": job["heartbeat_late"]})

    completed = []
    for job in data["completed"]:
        parts = []
        if job["perplexity_base"] is not None and job["perplexity_trained"] is not None:
            parts.append(f"perplexity {humanize.change(job['perplexity_base'], job['perplexity_trained'])} "
                         f"({humanize.signed_percent(job['perplexity_change_pct'])})")
        else:
            parts.append("perplexity not measured")
        if job["duration_seconds"] is not None:
            parts.append(f"took {humanize.duration(job['duration_seconds'])}")
        parts.append(f"cost {humanize.money(Decimal(job['cost']))}")
        completed.append(item(job, ", ".join(parts), parts))

    failed = []
    for job in data["failed"]:
        detail = job["error_type"] + (f" during {job['stage'].replace('_', ' ')}" if job["stage"] else "")
        if job["error_message"]:
            detail += f": {job['error_message']}"
        failed.append(item(job, detail))

    def kind_line(kind: dict[str, Any]) -> dict[str, str]:
        jobs = (kind["jobs"][0]["name"] if len(kind["jobs"]) == 1 else
                ", ".join(f"{j['name']} ({humanize.integer(j['count'])})" for j in kind["jobs"]))
        return {"label": kind["label"], "count": humanize.integer(kind["count"]), "jobs": jobs}

    kinds = data["anomalies"]["kinds"]
    storage_lines = [
        f"Artifacts of {_count(storage['artifact_jobs'], 'completed job')}: {_size(storage['artifact_bytes'])} "
        f"(adapters {_size(storage['adapter_bytes'])}; adapter, reports, exports and unpruned checkpoints, "
        "as measured when each was registered)",
        f"Checkpoints of {_count(storage['checkpoint_jobs'], 'other job')}: {_size(storage['checkpoint_bytes'])} "
        f"(running or ended in the last {_count(storage['retention_days'], 'day')}; the sizes their workers "
        f"reported, the newest {humanize.integer(storage['keep_checkpoints'])} of each by default)",
        f"Total: {_size(storage['total_bytes'])}",
    ]
    # The same storage figures as rows (label, count, value, note) for the HTML; none when
    # nothing is stored.
    storage_rows = []
    if storage["artifact_jobs"]:
        storage_rows.append({"label": "Artifacts", "count": _count(storage["artifact_jobs"], "completed job"),
                             "value": _size(storage["artifact_bytes"]),
                             "note": f"adapters {_size(storage['adapter_bytes'])}"})
    if storage["checkpoint_jobs"]:
        storage_rows.append({"label": "Checkpoints", "count": _count(storage["checkpoint_jobs"], "other job"),
                             "value": _size(storage["checkpoint_bytes"]), "note": ""})
    if storage_rows:
        storage_rows.append({"label": "Total", "count": "", "value": _size(storage["total_bytes"]), "note": ""})
    storage_method = ("Artifacts: adapter, reports, exports and unpruned checkpoints, as measured when each was "
                      f"registered. Checkpoints: jobs running or ended in the last {_count(storage['retention_days'], 'day')}, "
                      f"the sizes their workers reported, the newest {humanize.integer(storage['keep_checkpoints'])} "
                      "of each by default.")
    issues = data["health"]["issues"]
    tone = ("red" if any(issue["critical"] for issue in issues) else "amber" if issues else
            "green" if data["activity"] else "blue")
    finished_cost = ("Jobs that finished in the period cost "
                     f"{humanize.money(Decimal(cost['finished_jobs_cost']))} in all"
                     if data["completed"] or data["failed"] or data["cancelled"] else "")
    return {
        "title": "Daily training report",
        "period": f"{_when(period['start'])} to {_when(period['end'])} (last {humanize.integer(period['hours'])} hours)",
        "scope": "All jobs" if scope.get("all") else f"Jobs of {scope.get('username', '')}",
        "activity": data["activity"],
        "active": active, "active_count": _count(len(active), "active job"),
        "completed": completed, "failed": failed,
        "cancelled": [item(job, "") for job in data["cancelled"]],
        "interrupted": [item(job, "once" if job["count"] == 1 else f"{humanize.integer(job['count'])} times")
                        for job in data["interrupted"]],
        "anomaly_total": humanize.integer(data["anomalies"]["total"]),
        "anomalies_critical": [kind_line(k) for k in kinds if k["critical"]],
        "anomalies_other": [kind_line(k) for k in kinds if not k["critical"]],
        "cost_spent": f"Spent in the period: {humanize.money(Decimal(cost['spent']))} ({cost['method']})",
        "cost_finished": finished_cost,
        "cost_by_job": [item(job, humanize.money(Decimal(job["cost"]))) for job in cost["by_job"]],
        "storage_lines": storage_lines,
        "healthy": data["health"]["healthy"],
        "issues": [{"text": issue["text"], "critical": issue["critical"]} for issue in data["health"]["issues"]],
        "recommendations": data["recommendations"],
        "site_url": site_url(),
        # For the HTML only: the summary strip, the cost and storage as figures, the colours.
        "headline": headline(data),
        "spent": humanize.money(Decimal(cost["spent"])),
        "cost_method": cost["method"],
        "finished_cost": (humanize.money(Decimal(cost["finished_jobs_cost"]))
                          if data["completed"] or data["failed"] or data["cancelled"] else ""),
        "storage_rows": storage_rows, "storage_method": storage_method,
        "accent": TONES[tone][0], "tint": TONES[tone][1],
        "settings_url": settings_url(),
    }


def headline(data: dict[str, Any]) -> str:
    """The subject's summary: "2 active, 1 completed, 1 failed; 3 issues"."""
    if not data.get("activity"):
        return "no training activity"
    counts = [f"{humanize.integer(len(data['active']))} active"]
    counts += [f"{humanize.integer(len(data[name]))} {name}" for name in ("completed", "failed", "cancelled")
               if data[name]]
    issues = len(data["health"]["issues"])
    return ", ".join(counts) + ("; all systems healthy" if not issues else f"; {_count(issues, 'issue')}")


def _when(iso: str) -> str:
    local = timezone.localtime(datetime.fromisoformat(iso))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".strip()


def _size(value: int) -> str:
    return str(filesizeformat(value)).replace("\xa0", " ")


def _count(count: int, word: str) -> str:
    return f"{humanize.integer(count)} {word}{'' if count == 1 else 's'}"


# --- Sending ----------------------------------------------------------------------------------


def sees_all_jobs(user) -> bool:
    """Whether `user` may see every job: TrainingJob.objects.visible_to leaves the queryset
    unfiltered (staff, operators), read off the rule itself rather than restating it."""
    return not TrainingJob.objects.visible_to(user).query.has_filters()


def subscribers() -> list:
    return list(get_user_model().objects.filter(is_active=True, notification_settings__daily_report=True)
                .order_by("pk"))


def build_and_send_daily_report(now: datetime | None = None) -> DailyReport:
    """Build the report of every job, store it, and email it (or each subscriber's own) to
    every subscriber. Returns the report of every job."""
    now = now or timezone.now()
    report = build_daily_report(now)
    send_daily_report(report, now=now)
    return report


def send_daily_report(report: DailyReport, *, now: datetime | None = None) -> list[Notification]:
    """Email `report` to the subscribers who may see every job, and to each other subscriber a
    report of their own jobs over the same period. Returns the notifications written: a report
    already sent to someone is not sent to them again."""
    now = now or timezone.now()
    written: list[Notification] = []
    for user in subscribers():
        if UserChannel.objects.filter(user=user, kind="email", enabled=False).exists():
            continue  # a permanent failure switched their email off
        # Once per (report, recipient), whichever report they are sent: theirs is built in the
        # same transaction as their row, so a second sender's failed insert leaves no report.
        key = f"{KIND}:{report.pk}:{user.pk}:email"
        if Notification.objects.filter(dedupe_key=key).exists():
            continue
        try:
            with transaction.atomic():
                theirs = report if sees_all_jobs(user) else build_daily_report(report.period_end, user=user)
                row = Notification.objects.create(
                    kind=KIND, channel="email", recipient=user, dedupe_key=key,
                    payload={"report_id": theirs.pk, "of_report": report.pk},
                    status=Notification.Status.PENDING, next_attempt_at=now, created_at=now)
        except IntegrityError:
            continue
        written.append(row)
    for row in written:
        deliver_notification(row.pk, now=now)
    return written


def build_report_message(notification: Notification) -> Message:
    """The email of a daily-report notification: the stored report, for its recipient only."""
    report = DailyReport.objects.filter(pk=(notification.payload or {}).get("report_id")).first()
    if report is None:
        raise LookupError("the daily report of this notification no longer exists")
    scope = (report.data or {}).get("scope") or {}
    recipient = notification.recipient
    allowed = sees_all_jobs(recipient) if scope.get("all") else scope.get("user_id") == recipient.pk
    if not allowed:
        raise PermissionError(f"{recipient} may no longer see every job this report covers")
    date = f"{timezone.localtime(report.period_end):%Y-%m-%d}"
    subject = f"Daily training report, {date}: {headline(report.data or {})}"
    return Message(id=f"notification-{notification.pk}", subject=subject, text=report.text, html=report.html,
                   slack_blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": report.text[:2900]}}],
                   webhook_type="fine_tuning.daily_report",
                   webhook_data={"object": "daily_report", "id": report.pk, "period_start": report.period_start.isoformat(),
                                 "period_end": report.period_end.isoformat()},
                   url=site_url())


__all__ = ["build_and_send_daily_report", "build_daily_report", "build_report_message",
           "send_daily_report"]
