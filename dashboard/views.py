"""The job dashboard in the admin: /admin/training/trainingjob/<id>/dashboard/ (seed 002,
"Job Details Dashboard").

`dashboard_urls(model_admin)` gives TrainingJobAdmin its routes:

- `dashboard/`            the page: for a finished job a result block first (perplexity and
                          held-out loss before → after, the final verdict), then the status card,
                          stage indicators, charts, metrics table, cost tracker, the analyser's
                          advice (its verdict once the job has ended) and quality score, the
                          event log (heartbeats folded out unless asked for), actions;
- `dashboard/data/`       the card's figures and the stage strip as JSON; the page fetches it
                          every few seconds and updates text, stages and chart URLs in place
                          (no reload);
- `dashboard/chart/<name>.svg`  one chart (loss, lr, throughput, gpu) drawn by dashboard.charts;
- `dashboard/<action>/`   POST cancel or retry, through training.services.jobs.

Every view runs a fixed number of queries whatever the job's history: charts read the metrics
through one GROUP BY into at most CHART_POINTS buckets (min, mean and max per bucket, so spikes
survive), never the whole history; the advice is read off the job's incremental trend state
(monitoring.services.trend_analysis, the same the metrics API returns).

Every number is formatted by core.humanize (losses to 4 significant digits, percentages to one
decimal, durations as "16m 30s", money as "$1,234.50"); the JSON feed carries the same text, so
the page's script writes strings and formats nothing. Two perplexities appear and are named
apart: the validation step's token-weighted one (the result, ModelArtifact.perplexity_*) and the
metrics table's exp(eval loss) of the Trainer's periodic evaluation.
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

from core import humanize
from monitoring.quality import COMPONENT_MAX
from monitoring.recommendation import Outcome, improvement_pct
from monitoring.services import job_outcome, job_verdict, last_evaluation, trend_analysis
from training.lifecycle import TERMINAL, WORKER_STAGES, IllegalTransition, Status
from training.models import JobEvent, MetricPoint, TrainingJob
from training.services import jobs as job_services
from training.services.progress import job_progress
from validation.services import validation_overview
from validation.summary import ORDER as VALIDATION_ORDER

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
    # The newest step with a metric and the newest with a held-out loss: what the charts drew.
    newest: tuple[int, int] = (0, 0)


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
    newest_eval = max((r["eval_step"] for r in rows if r["eval_step"] is not None), default=0)
    return Buckets(rows, span, (bounds["hi"], newest_eval))


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
    # A failed or cancelled job ended inside its last stage: that one stopped, it did not finish.
    stopped = job.current_stage if job.status in (Status.FAILED, Status.CANCELLED) else None
    reached = {s for s in spent if s in stages} | ({job.current_stage} if job.current_stage else set())
    # The stages run in order: any before the one the job is in were passed, recorded or not.
    if job.current_stage in stages:
        reached |= set(stages[:stages.index(job.current_stage)])
    result = []
    for stage in WORKER_STAGES:
        estimate = (job.estimate or {}).get("stages", {}).get(ESTIMATE_KEYS.get(stage, ""), None)
        if stage == current:
            state = "current"
        elif stage == stopped:
            state = job.status  # "failed" or "cancelled"
        elif stage in reached or job.status == Status.COMPLETED:
            state = "done"
        else:
            state = "upcoming"
        result.append({"stage": stage.value, "label": STAGE_LABELS[stage], "state": state,
                       "seconds": spent.get(stage.value), "spent": humanize.duration(spent.get(stage.value)),
                       "estimate": humanize.duration(float(estimate) * 60) if estimate is not None else ""})
    return result


# --- Presenting --------------------------------------------------------------------------------


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
    warning = (f"Actual cost {humanize.money(actual)} is {humanize.percent((actual / estimate - 1) * 100, 0)} "
               f"over the estimate {humanize.money(estimate)}." if over else "")
    low, high = job.cost_estimate_low, job.cost_estimate_high
    return {"estimate": humanize.money(estimate),
            "range": f"({humanize.money(low)}–{humanize.money(high)})" if low is not None and high is not None else "",
            "actual": humanize.money(actual), "rate": f"{humanize.money(rate)}/h" if rate is not None else "—",
            "over": over, "warning": warning}


def stage_text(job: TrainingJob) -> str:
    """The card's Stage: the current one while it runs; how it ended once it has."""
    if job.status == Status.COMPLETED:
        return "Finished (all stages done)"
    if job.status in (Status.FAILED, Status.CANCELLED):
        where = STAGE_LABELS.get(job.current_stage)
        verb = "Failed" if job.status == Status.FAILED else "Cancelled"
        return f"{verb} during {where.lower()}" if where else f"{verb} before any stage ran"
    return Status(job.current_stage).label if job.current_stage in Status.values else (job.current_stage or "—")


def result_figures(outcome: Outcome | None, last_eval: tuple[int, float] | None) -> dict[str, str]:
    """The result block's figures as text, "" where there is nothing to show (a running job, or
    a finished one the validation step did not measure). The headline is the validation step's
    perplexity; the Trainer's exp(eval loss) is named and explained next to it."""
    figures = dict.fromkeys(("result_perplexity", "result_perplexity_change", "result_loss", "result_loss_change",
                             "result_heldout", "result_trainer_note"), "")
    if outcome is None or outcome.ending != Status.COMPLETED:
        return figures
    base, trained = outcome.perplexity_base, outcome.perplexity_trained
    if base is not None and trained is not None:
        pct = improvement_pct(base, trained)
        direction = "lower (better)" if trained < base else ("higher (worse)" if trained > base else "unchanged")
        figures["result_perplexity"] = humanize.change(base, trained)
        figures["result_perplexity_change"] = (f"{humanize.percent(abs(pct or 0))} {direction}, "
                                               f"{humanize.signed(trained - base)} absolute")
    if outcome.loss_base is not None and outcome.loss_trained is not None:
        figures["result_loss"] = humanize.change(outcome.loss_base, outcome.loss_trained)
        figures["result_loss_change"] = f"{humanize.signed(outcome.loss_trained - outcome.loss_base)} absolute"
    if outcome.heldout_samples is not None:
        tokens = (f", {humanize.integer(outcome.heldout_tokens)} assistant tokens"
                  if outcome.heldout_tokens is not None else "")
        figures["result_heldout"] = f"{humanize.integer(outcome.heldout_samples)} held-out samples{tokens}"
    if last_eval is not None and figures["result_perplexity"]:
        step, loss = last_eval
        figures["result_trainer_note"] = (
            f"The metrics table's exp(eval loss), {exp_text(loss)} at step {humanize.integer(step)}, is the "
            "Trainer's periodic evaluation on the same held-out set: it averages per-batch mean losses "
            "instead of weighting every token equally, so it differs a little from the validation "
            "perplexity above, which is the figure of record (also in the adapter's summary and package).")
    return figures


def exp_text(loss: float | None) -> str:
    """exp(loss) for people; "—" when there is none or it would overflow (a diverged loss)."""
    if loss is None or not math.isfinite(loss) or loss > 700:
        return "—"
    return humanize.significant(math.exp(loss))


def card(job: TrainingJob, buckets: Buckets, now: datetime | None = None) -> dict[str, Any]:
    """The status card and cost tracker as display strings, keyed by the page's data-field names."""
    elapsed = job.elapsed
    progress = float(job.progress_percentage or 0)
    cost = cost_figures(job)
    last_eval = last_evaluation(job.pk)
    outcome = job_outcome(job, last_eval=last_eval, now=now)
    verdict = job_verdict(job, outcome)
    if verdict is not None:
        advice_label, advice_action, advice_reason = "Verdict", verdict.headline, verdict.reason
    else:
        # The incremental analysis the ingestion keeps (the same the metrics API returns).
        advice = trend_analysis(job)["recommendation"]
        advice_label, advice_action, advice_reason = "Advice", advice["action"].replace("_", " "), advice["reason"]
    # The API's and `manage.py train`'s figure, worked out at each refresh from the latest
    # heartbeat and the estimate: a started job has one from launch on (the estimate until a
    # step is timed), and a finished job none. The stored column only moves when an ingested
    # report moves it (CI twice saw it blank for 30 s while the API had a figure).
    live = job_progress(job, now=now)
    eta = live["eta_seconds"]
    # Written only from the validation step's results (ingest.apply_validation_results).
    validation_perplexity = job.latest_perplexity
    step_total = humanize.integer(job.total_steps) if job.total_steps else "—"
    text = {
        "status": job.get_status_display(),
        "stage": stage_text(job),
        "progress": humanize.percent(progress),
        "step": f"{humanize.integer(job.current_step)} / {step_total}",
        "epoch": humanize.significant(job.current_epoch, 3, trim=True),
        "elapsed": humanize.duration(elapsed.total_seconds()) if elapsed else "—",
        "eta": ("—" if eta is None else humanize.duration(eta) + (" (estimate)" if live["basis"] == "estimate" else "")),
        "interruptions": job.recovery_summary() or "No interruptions.",
        "train_loss": humanize.significant(job.latest_loss),
        "eval_loss": humanize.significant(last_eval[1] if last_eval else job.latest_eval_loss),
        "eval_step": f"step {humanize.integer(last_eval[0])}" if last_eval else "",
        "eval_perplexity": exp_text(last_eval[1] if last_eval else job.latest_eval_loss),
        "learning_rate": humanize.scientific(job.latest_learning_rate),
        "perplexity": (humanize.significant(validation_perplexity) if validation_perplexity is not None
                       else "— (not measured)" if job.is_terminal else "— (measured after training)"),
        "cost_estimate": cost["estimate"], "cost_range": cost["range"], "cost_actual": cost["actual"],
        "cost_rate": cost["rate"], "cost_warning": cost["warning"],
        "advice_label": advice_label, "advice_action": advice_action, "advice_reason": advice_reason,
        "verdict": verdict.reason if verdict is not None else "",
        "quality": (f"{job.quality['score']}/100 (grade {job.quality['grade']})" if job.quality else "—"),
        "points": humanize.integer(buckets.total_points),
        **result_figures(outcome, last_eval),
    }
    return {
        "text": text,
        "status": job.status,
        "progress": progress,
        "is_terminal": job.is_terminal,
        "verdict_kind": verdict.kind if verdict is not None else "",
        "has_result": bool(text["result_perplexity"]),
        "cost_over": cost["over"],
        "can_cancel": not job.is_terminal,
        "can_retry": job.status in (Status.FAILED, Status.CANCELLED),
        "download_url": download_url(job),
        # Changes whenever a chart would: new metric points, a new step, attempt or status. The
        # metrics of a step arrive in a batch after the heartbeat that moved current_step, so the
        # step alone left the charts at "No data yet" until the next step.
        "chart_version": "-".join(map(str, (job.attempt, job.current_step or 0, job.status, *buckets.newest))),
        # The stage strip (current, done, stopped; time spent, estimates): the page redraws it
        # from each refresh, as it does the card.
        "stages": stage_times(job, now),
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
        count = f"{humanize.integer(len(points))} point{'s' if len(points) != 1 else ''}"
        if not steps:
            return count
        return count + (f", step {steps[0]}" if min(steps) == max(steps) else f", steps {min(steps)}–{max(steps)}")
    evaluators = payload.get("evaluators")
    if isinstance(evaluators, dict):  # validation_results
        perplexity = evaluators.get("perplexity") if isinstance(evaluators.get("perplexity"), dict) else {}
        if perplexity.get("base") is not None or perplexity.get("trained") is not None:
            return f"validation perplexity {humanize.change(perplexity.get('base'), perplexity.get('trained'))}"
        return "validation: " + (", ".join(map(str, evaluators)) or "no evaluators")
    if "final_train_loss" in payload or "final_eval_loss" in payload:  # completed
        return (f"completed: {humanize.integer(payload.get('steps'))} steps, training loss "
                f"{humanize.significant(payload.get('final_train_loss'))}, held-out loss "
                f"{humanize.significant(payload.get('final_eval_loss'))}")
    for key in ("message", "error_message", "reason", "action", "stage"):
        if payload.get(key):
            return str(payload[key])[:160]
    if "from" in payload and "to" in payload:
        return f"{payload['from']} → {payload['to']}"
    return "payload"


def payload_text(payload: Any) -> str:
    # Floats rounded for reading (2.9872450828552246 -> 2.987); the admin's event page and the
    # API keep the stored payload at full precision.
    text = json.dumps(humanize.rounded_floats(payload), indent=2, default=str)
    return text if len(text) <= PAYLOAD_CHARS else text[:PAYLOAD_CHARS] + "\n… (truncated)"


def metric_rows(job: TrainingJob) -> list[dict[str, str]]:
    """The latest TABLE_ROWS points as the table's text, newest first ("" for a missing value).
    `perplexity` is exp(eval_loss) of the Trainer's periodic evaluation (reports.clean_point)."""
    rows = MetricPoint.objects.filter(job_id=job.pk).order_by("-step").values(*TABLE_FIELDS)[:TABLE_ROWS]
    return [metric_row(row) for row in rows]


def metric_row(row: dict[str, Any]) -> dict[str, str]:
    def show(text: str) -> str:
        return "" if text == humanize.MISSING else text

    return {
        "step": humanize.integer(row["step"]),
        "epoch": show(humanize.significant(row["epoch"], 3, trim=True)),
        "train_loss": show(humanize.significant(row["train_loss"])),
        "eval_loss": show(humanize.significant(row["eval_loss"])),
        "learning_rate": show(humanize.scientific(row["learning_rate"])),
        "perplexity": show(humanize.significant(row["perplexity"])),
        "grad_norm": show(humanize.significant(row["grad_norm"], 3)),
        "tokens_per_second": show(humanize.integer(row["tokens_per_second"])),
        "gpu_memory_used_mb": show(humanize.integer(row["gpu_memory_used_mb"])),
        "gpu_utilization_pct": show(humanize.percent(row["gpu_utilization_pct"], 0)),
        "reported_at": row["reported_at"].isoformat(timespec="seconds"),
    }


def interruption_rows(job: TrainingJob) -> list[dict[str, Any]]:
    """The job's interrupted attempts, oldest first, with what each lost, for people."""
    rows = []
    for attempt in job.attempts.interruptions().order_by("number"):
        rows.append({
            "number": attempt.number, "tier": attempt.get_pricing_tier_display(),
            "gpu": attempt.gpu_type or "—", "rate": f"{humanize.money(attempt.hourly_rate)}/h",
            "ran": humanize.duration(attempt.seconds_until(attempt.ended_at)) if attempt.ended_at else "—",
            "ended_at": attempt.ended_at.isoformat(timespec="seconds") if attempt.ended_at else "—",
            "reason": job.mask_secret(attempt.reason), "lost_minutes": humanize.duration(attempt.lost_minutes * 60),
            "lost_dollars": humanize.money(attempt.lost_dollars),
        })
    return rows


def quality_components(quality: dict[str, Any] | None) -> list[str]:
    """"loss reduction: 25/30" for each component of the stored quality score."""
    components = (quality or {}).get("components") or {}
    return [f"{name.replace('_', ' ')}: {humanize.integer(points)}/{COMPONENT_MAX.get(name, '?')}"
            for name, points in components.items() if isinstance(points, int | float)]


@dataclass(frozen=True)
class EventLog:
    rows: list[tuple[JobEvent, str, str]]  # (event, one-line summary, payload text)
    hidden_heartbeats: int  # folded out of `rows`; the page offers to show them


def event_log(job: TrainingJob, event_type: str = "", *, show_heartbeats: bool = False) -> EventLog:
    """The newest EVENT_ROWS events, of one type when `event_type` is given. Heartbeats (one
    every 30 s, all alike) are folded out and counted unless asked for, by type or by
    `show_heartbeats`, so the log shows what happened."""
    events = JobEvent.objects.filter(job_id=job.pk).order_by("-received_at", "-id")
    hidden = 0
    if event_type:
        events = events.filter(event_type=event_type)
    elif not show_heartbeats:
        hidden = JobEvent.objects.filter(job_id=job.pk, event_type=JobEvent.Type.HEARTBEAT).count()
        events = events.exclude(event_type=JobEvent.Type.HEARTBEAT)
    # Payloads are the worker's text: shown with the job's secret masked.
    rows = [(e, event_summary(payload), payload_text(payload))
            for e in events[:EVENT_ROWS] for payload in [job.mask_secret(e.payload)]]
    return EventLog(rows, hidden)


# --- Views -------------------------------------------------------------------------------------


def dashboard_view(model_admin, request, object_id: str):
    job = _job(model_admin, request, object_id)
    buckets = metric_buckets(job.pk)
    event_type = request.GET.get("event_type", "")
    event_type = event_type if event_type in JobEvent.Type.values else ""
    log = event_log(job, event_type, show_heartbeats=request.GET.get("heartbeats") == "show")
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
        "stages": data["stages"],
        "metric_rows": metric_rows(job),
        "interruption_rows": interruption_rows(job),
        "events": log.rows,
        "hidden_heartbeats": log.hidden_heartbeats,
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
        "quality_components": quality_components(job.quality),
        "has_change_permission": model_admin.has_change_permission(request, job),
        "validation": validation_section(job),
    }
    return TemplateResponse(request, "admin/training/trainingjob/dashboard.html", context)


def validation_section(job: TrainingJob) -> dict[str, Any] | None:
    """The validation suite's table (validation.summary): one row per benchmark, in the seed's order."""
    overview = validation_overview(job)
    if overview["status"] == "not_started":
        return None
    rows = [overview["benchmarks"][key] for key in VALIDATION_ORDER if key in overview["benchmarks"]]
    passed = overview["passed"]
    return {
        "status": overview["status"], "rows": rows,
        "verdict": ("Waiting for the worker's results" if overview["status"] == "pending"
                    else "Passed every threshold" if passed else "Not every benchmark measured" if passed is None
                    else "Short of at least one threshold"),
        "passed": passed,
        "sets": overview["sets"],
        "replies_url": reverse("job-validation-replies", args=[job.pk]),
        "compare_url": reverse("admin:validation_jobvalidation_compare", args=[job.pk]),
        "playground_url": reverse("admin:validation_jobvalidation_playground", args=[job.pk]),
    }


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


__all__ = ["build_chart", "card", "dashboard_urls", "event_log", "metric_buckets", "result_figures", "stage_times"]
