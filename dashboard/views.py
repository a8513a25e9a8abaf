"""The job dashboard in the admin: /admin/training/trainingjob/<id>/dashboard/ (seed 002,
"Job Details Dashboard").

`dashboard_urls(model_admin)` gives TrainingJobAdmin its routes:

- `dashboard/`            the page: status card, stage indicators, charts, metrics table, cost
                          tracker, analyser's advice and quality score, event log, actions;
- `dashboard/data/`       the card's figures as JSON; the page fetches it every few seconds and
                          updates text and chart URLs in place (no reload);
- `dashboard/chart/<name>.svg`  one chart (loss, lr, throughput, gpu) drawn by dashboard.charts;
- `dashboard/<action>/`   POST cancel or retry, through training.services.jobs.

Every view runs a fixed number of queries whatever the job's history: charts read the metrics
through one GROUP BY into at most CHART_POINTS buckets (min, mean and max per bucket, so spikes
survive), never the whole history; the advice is read off the job's incremental trend state
(monitoring.services.trend_analysis, the same the metrics API returns).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Avg, ExpressionWrapper, F, IntegerField, Max, Min, Q, Value
from django.http import (
    Http404,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from monitoring.services import trend_analysis
from training.lifecycle import TERMINAL, WORKER_STAGES, IllegalTransition, Status
from training.models import JobEvent, MetricPoint, TrainingJob
from training.services import jobs as job_services

from . import charts

CHART_POINTS = 500
TABLE_ROWS = 20
EVENT_ROWS = 100
PAYLOAD_CHARS = 4000  # a metrics event's payload can be tens of KB; the admin's event page has it all
REFRESH_SECONDS = 5
COST_WARNING_FACTOR = Decimal("1.2")  # seed 002: warn when actual exceeds the estimate by > 20%
CHART_NAMES = ("loss", "lr", "throughput", "gpu")
# Estimate keys for the worker stages (the estimate has no finalization of its own).
ESTIMATE_KEYS = {Status.PREPROCESSING: "preprocessing", Status.MODEL_LOADING: "model_loading",
                 Status.TRAINING: "training", Status.VALIDATING: "validation"}
# Seed 002's names for the stages: Preprocessing → Model loading → Training → Finalization → Validation.
STAGE_LABELS = {Status.PREPROCESSING: "Preprocessing", Status.MODEL_LOADING: "Model loading",
                Status.TRAINING: "Training", Status.FINALIZING: "Finalization", Status.VALIDATING: "Validation"}
TABLE_FIELDS = ("step", "epoch", "train_loss", "eval_loss", "learning_rate", "perplexity", "grad_norm",
                "tokens_per_second", "gpu_memory_used_mb", "gpu_utilization_pct", "reported_at")


def dashboard_urls(model_admin) -> list:
    wrap = model_admin.admin_site.admin_view
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_dashboard"
    return [
        path("<path:object_id>/dashboard/", wrap(lambda r, object_id: dashboard_view(model_admin, r, object_id)),
             name=prefix),
        path("<path:object_id>/dashboard/data/",
             wrap(lambda r, object_id: data_view(model_admin, r, object_id)), name=f"{prefix}_data"),
        path("<path:object_id>/dashboard/chart/<str:name>.svg",
             wrap(lambda r, object_id, name: chart_view(model_admin, r, object_id, name)), name=f"{prefix}_chart"),
        path("<path:object_id>/dashboard/<str:action>/",
             wrap(lambda r, object_id, action: action_view(model_admin, r, object_id, action)),
             name=f"{prefix}_action"),
    ]


# --- Reading the job ---------------------------------------------------------------------------


def _job(model_admin, request, object_id: str, *, change: bool = False) -> TrainingJob:
    try:
        job = get_object_or_404(TrainingJob.objects.select_related("base_model", "preset", "training_file",
                                                                     "created_by"), pk=object_id)
    except ValidationError as exc:  # not a UUID
        raise Http404("No such job") from exc
    allowed = model_admin.has_change_permission(request, job) if change else model_admin.has_view_permission(request, job)
    if not allowed:
        raise PermissionDenied
    return job


@dataclass(frozen=True)
class Buckets:
    """The history cut into at most CHART_POINTS step buckets: one row per bucket."""

    rows: list[dict[str, Any]]
    total_points: int


def metric_buckets(job_id: Any, max_points: int = CHART_POINTS) -> Buckets:
    """Two queries whatever the history's length: the step range, then one GROUP BY."""
    points = MetricPoint.objects.filter(job_id=job_id).order_by()
    bounds = points.aggregate(lo=Min("step"), hi=Max("step"))
    if bounds["lo"] is None:
        return Buckets([], 0)
    lo, span = bounds["lo"], bounds["hi"] - bounds["lo"] + 1
    width = max(1, math.ceil(span / max_points))
    bucket = ExpressionWrapper((F("step") - Value(lo)) / Value(width), output_field=IntegerField())
    has_eval = Q(eval_loss__isnull=False)
    rows = list(
        points.annotate(bucket=bucket).values("bucket").annotate(
            last_step=Max("step"), train=Avg("train_loss"), train_lo=Min("train_loss"), train_hi=Max("train_loss"),
            eval=Min("eval_loss"), eval_step=Max("step", filter=has_eval),
            lr=Avg("learning_rate"), tps=Avg("tokens_per_second"),
            mem=Max("gpu_memory_used_mb"), mem_total=Max("gpu_memory_total_mb"),
        ).order_by("bucket")
    )
    return Buckets(rows, span)


def stage_times(job: TrainingJob, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each worker stage with the time spent in it (from status_changed events) and its state."""
    now = now or timezone.now()
    changes = list(JobEvent.objects.filter(job_id=job.pk, event_type=JobEvent.Type.STATUS_CHANGED)
                   .order_by("received_at", "id").values_list("received_at", "payload"))
    spent: dict[str, float] = {}
    for i, (at, payload) in enumerate(changes):
        to = (payload or {}).get("to")
        until = changes[i + 1][0] if i + 1 < len(changes) else (job.completed_at or now)
        if to and until and to not in TERMINAL:
            spent[to] = spent.get(to, 0.0) + max(0.0, (until - at).total_seconds())
    stages = [s.value for s in WORKER_STAGES]
    current = job.status if job.status in stages else None
    reached = {s for s in spent if s in stages} | ({job.current_stage} if job.current_stage else set())
    result = []
    for stage in WORKER_STAGES:
        estimate = (job.estimate or {}).get("stages", {}).get(ESTIMATE_KEYS.get(stage, ""), None)
        state = "current" if stage == current else ("done" if stage in reached or job.status == Status.COMPLETED
                                                     else "upcoming")
        result.append({"stage": stage.value, "label": STAGE_LABELS[stage], "state": state,
                       "seconds": spent.get(stage.value), "spent": duration_text(spent.get(stage.value)),
                       "estimate": duration_text(float(estimate) * 60) if estimate is not None else ""})
    return result


# --- Presenting --------------------------------------------------------------------------------


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def cost_figures(job: TrainingJob) -> dict[str, Any]:
    estimate, actual = job.cost_estimate, job.actual_cost or Decimal("0")
    elapsed = job.elapsed
    if job.is_active and job.hourly_rate:
        rate = job.hourly_rate
    elif elapsed and elapsed.total_seconds() > 0 and actual:
        rate = actual / Decimal(elapsed.total_seconds() / 3600)
    else:
        rate = None
    over = estimate is not None and estimate > 0 and actual > estimate * COST_WARNING_FACTOR
    warning = (f"Actual cost ${actual} is {((actual / estimate) - 1) * 100:.0f}% over the estimate ${estimate}."
               if over else "")
    return {"estimate": f"${estimate}" if estimate is not None else "—",
            "range": (f"${job.cost_estimate_low}–{job.cost_estimate_high}"
                      if job.cost_estimate_low is not None and job.cost_estimate_high is not None else ""),
            "actual": f"${actual}", "rate": f"${rate:.2f}/h" if rate is not None else "—",
            "over": over, "warning": warning}


def card(job: TrainingJob, buckets: Buckets, now: datetime | None = None) -> dict[str, Any]:
    """The status card and cost tracker as display strings, keyed by the page's data-field names."""
    elapsed = job.elapsed
    progress = float(job.progress_percentage or 0)
    cost = cost_figures(job)
    # The incremental analysis the ingestion keeps (the same the metrics API returns).
    advice = trend_analysis(job)["recommendation"]
    eta = None if job.is_terminal else job.estimated_time_remaining_minutes
    text = {
        "status": job.get_status_display(),
        "stage": Status(job.current_stage).label if job.current_stage in Status.values else (job.current_stage or "—"),
        "progress": f"{progress:.1f}%",
        "step": f"{job.current_step if job.current_step is not None else '—'} / {job.total_steps or '—'}",
        "epoch": number(job.current_epoch, 3),
        "elapsed": duration_text(elapsed.total_seconds()) if elapsed else "—",
        "eta": duration_text(eta * 60) if eta is not None else "—",
        "interruptions": job.recovery_summary() or "No interruptions.",
        "train_loss": number(job.latest_loss), "eval_loss": number(job.latest_eval_loss),
        "learning_rate": number(job.latest_learning_rate, 3), "perplexity": number(job.latest_perplexity),
        "cost_estimate": cost["estimate"], "cost_actual": cost["actual"], "cost_rate": cost["rate"],
        "cost_warning": cost["warning"],
        "advice_action": advice["action"].replace("_", " "), "advice_reason": advice["reason"],
        "quality": (f"{job.quality['score']}/100 (grade {job.quality['grade']})" if job.quality else "—"),
        "points": f"{buckets.total_points}",
    }
    return {
        "text": text,
        "status": job.status,
        "progress": progress,
        "is_terminal": job.is_terminal,
        "cost_over": cost["over"],
        "can_cancel": not job.is_terminal,
        "can_retry": job.status in (Status.FAILED, Status.CANCELLED),
        "download_url": download_url(job),
        # Changes whenever a chart would: a new step, a new attempt, or a new status.
        "chart_version": f"{job.attempt}-{job.current_step or 0}-{job.status}",
    }


def download_url(job: TrainingJob) -> str:
    # The admin's download button (artifacts/admin.py): the adapter ZIP as a file, not the API's JSON.
    if job.status != Status.COMPLETED:
        return ""
    return reverse("admin:training_trainingjob_download", args=[job.pk, "adapters"])


def event_summary(payload: Any) -> str:
    payload = payload if isinstance(payload, dict) else {}
    points = payload.get("points")
    if isinstance(points, list) and points:
        steps = [p.get("step") for p in points if isinstance(p, dict) and isinstance(p.get("step"), int)]
        return f"{len(points)} points" + (f", steps {min(steps)}–{max(steps)}" if steps else "")
    for key in ("message", "error_message", "reason", "action", "stage"):
        if payload.get(key):
            return str(payload[key])[:160]
    if "from" in payload and "to" in payload:
        return f"{payload['from']} → {payload['to']}"
    return "payload"


def payload_text(payload: Any) -> str:
    text = json.dumps(payload, indent=2, default=str)
    return text if len(text) <= PAYLOAD_CHARS else text[:PAYLOAD_CHARS] + "\n… (truncated)"


def metric_rows(job: TrainingJob) -> list[dict[str, Any]]:
    rows = list(MetricPoint.objects.filter(job_id=job.pk).order_by("-step").values(*TABLE_FIELDS)[:TABLE_ROWS])
    return [{**row, "reported_at": row["reported_at"].isoformat(timespec="seconds")} for row in rows]


def interruption_rows(job: TrainingJob) -> list[dict[str, Any]]:
    """The job's interrupted attempts, oldest first, with what each lost, for people."""
    rows = []
    for attempt in job.attempts.interruptions().order_by("number"):
        rows.append({
            "number": attempt.number, "tier": attempt.get_pricing_tier_display(),
            "gpu": attempt.gpu_type or "—", "rate": f"${attempt.hourly_rate:.2f}/h",
            "ran": duration_text(attempt.seconds_until(attempt.ended_at)) if attempt.ended_at else "—",
            "ended_at": attempt.ended_at.isoformat(timespec="seconds") if attempt.ended_at else "—",
            "reason": job.mask_secret(attempt.reason), "lost_minutes": f"{attempt.lost_minutes} min",
            "lost_dollars": f"${attempt.lost_dollars}",
        })
    return rows


# --- Views -------------------------------------------------------------------------------------


def dashboard_view(model_admin, request, object_id: str):
    job = _job(model_admin, request, object_id)
    buckets = metric_buckets(job.pk)
    event_type = request.GET.get("event_type", "")
    events = JobEvent.objects.filter(job_id=job.pk).order_by("-received_at", "-id")
    if event_type in JobEvent.Type.values:
        events = events.filter(event_type=event_type)
    data = card(job, buckets)
    base = reverse("admin:training_trainingjob_dashboard", args=[job.pk])
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Dashboard: {job.name}",
        "subtitle": None,
        "opts": model_admin.opts,
        "original": job,
        "job": job,
        "card": data,
        "text": data["text"],
        "stages": stage_times(job),
        "metric_rows": metric_rows(job),
        "interruption_rows": interruption_rows(job),
        # Payloads are the worker's text: shown with the job's secret masked.
        "events": [(e, event_summary(payload), payload_text(payload))
                   for e in events[:EVENT_ROWS] for payload in [job.mask_secret(e.payload)]],
        "event_types": JobEvent.Type.values,
        "event_type": event_type,
        "event_rows": EVENT_ROWS,
        "charts": [(name, f"{base}chart/{name}.svg?v={data['chart_version']}") for name in CHART_NAMES],
        "data_url": f"{base}data/",
        "cancel_url": f"{base}cancel/",
        "retry_url": f"{base}retry/",
        "change_url": reverse("admin:training_trainingjob_change", args=[job.pk]),
        "error_report_url": reverse("job-error-report", args=[job.pk]),
        "refresh_seconds": REFRESH_SECONDS,
        "quality": job.quality or None,
        "has_change_permission": model_admin.has_change_permission(request, job),
    }
    return TemplateResponse(request, "admin/training/trainingjob/dashboard.html", context)


def data_view(model_admin, request, object_id: str):
    job = _job(model_admin, request, object_id)
    data = card(job, metric_buckets(job.pk))
    data["metrics"] = metric_rows(job)
    return JsonResponse(data)


def chart_view(model_admin, request, object_id: str, name: str):
    if name not in CHART_NAMES:
        raise Http404("No such chart")
    job = _job(model_admin, request, object_id)
    buckets = metric_buckets(job.pk)
    response = HttpResponse(charts.render_svg(build_chart(job, name, buckets)), content_type="image/svg+xml")
    # The page asks for a new URL (?v=) whenever the chart changes; a short max-age covers reloads.
    response["Cache-Control"] = "private, max-age=5"
    return response


def build_chart(job: TrainingJob, name: str, buckets: Buckets) -> charts.Chart:
    rows = buckets.rows
    steps = [r["last_step"] for r in rows]
    if name == "loss":
        evals = [r for r in rows if r["eval"] is not None]
        state = job.trend_state or {}
        best = None
        if isinstance(state.get("best_step"), int) and isinstance(state.get("best_eval_loss"), int | float):
            best = (state["best_step"], state["best_eval_loss"])
        anomalies = [(p.get("step"), p.get("kind")) for p in JobEvent.objects.filter(
            job_id=job.pk, event_type=JobEvent.Type.ANOMALY,
            payload__kind__in=["spike", "divergence", "overfitting", "plateau", "stall"],
        ).order_by("-id").values_list("payload", flat=True)[:50] if isinstance(p.get("step"), int)]
        return charts.Chart("Loss", "loss", [
            charts.Series("training", steps, [r["train"] for r in rows], charts.COLORS["train"],
                          low=[r["train_lo"] for r in rows], high=[r["train_hi"] for r in rows]),
            charts.Series("held-out", [r["eval_step"] for r in evals], [r["eval"] for r in evals],
                          charts.COLORS["eval"], marker="o"),
        ], best=best, anomalies=anomalies)
    if name == "lr":
        return charts.Chart("Learning rate", "learning rate", [charts.Series("lr", steps, [r["lr"] for r in rows])])
    if name == "throughput":
        return charts.Chart("Throughput", "tokens/s", [charts.Series("tokens/s", steps, [r["tps"] for r in rows])])
    total = max((r["mem_total"] for r in rows if r["mem_total"]), default=None)
    series = [charts.Series("used (MB)", steps, [r["mem"] for r in rows])]
    if total:
        series.append(charts.Series("total (MB)", steps, [total] * len(steps), "#9ca3af"))
    return charts.Chart("GPU memory", "MB", series)


def action_view(model_admin, request, object_id: str, action: str):
    if action not in ("cancel", "retry"):
        raise Http404("No such action")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    job = _job(model_admin, request, object_id, change=True)
    here = reverse("admin:training_trainingjob_dashboard", args=[job.pk])
    try:
        if action == "cancel":
            job_services.cancel_job(job, user=request.user)
            messages.success(request, f"Cancelled job '{job.name}'.")
        else:
            new_job = job_services.retry_job(job, user=request.user)
            messages.success(request, f"Created retry '{new_job.name}' (pending: start it when ready).")
            return HttpResponseRedirect(reverse("admin:training_trainingjob_dashboard", args=[new_job.pk]))
    except (IllegalTransition, ValidationError) as exc:
        messages.warning(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
    return HttpResponseRedirect(here)


__all__ = ["build_chart", "card", "dashboard_urls", "metric_buckets", "stage_times"]
