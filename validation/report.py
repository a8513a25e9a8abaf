"""The validation report: the document a job's results make, and its numbered PDF versions.

`build_document` gathers what the report shows (report_pdf.py's document: plain strings already
formatted for people, floats only where a chart plots them) from the job, its metrics, events,
validation summary and replies. `generate_report` renders it, stores the PDF under
jobs/<id>/reports/validation_report_v<N>.pdf (the artifact's `validation-report` download serves
it) and keeps a ValidationReport row with the document, so the shared web view shows exactly
what the PDF showed.

A report is made when validation finishes (the `validation_finished` event), and again when
people's scores change: the beat task `regenerate_reports` remakes those whose scores changed
and have been quiet for REPORT_QUIET_SECONDS, so a scoring session makes one new version, not
one per keystroke.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import F, Max, OuterRef, Subquery
from django.utils import timezone

from artifacts.models import ModelArtifact
from artifacts.packaging import report_key
from core import humanize, storage
from training.models import JobEvent, MetricPoint, TrainingJob

from . import rules, sets
from .compare import compare_items, overall
from .models import JobValidation, ReplyScore, ValidationReport
from .summary import LABELS, benchmark_rows, join_words

logger = logging.getLogger("validation.report")

EXAMPLES = 3  # best and worst scenarios shown in full
MAX_CURVE_POINTS = 400
VERDICT_WORDS = {"ready": "ready to deliver", "not_ready": "not ready to deliver", "incomplete": "not yet decided"}


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    return f"{local.day} {local:%b %Y, %H:%M} {local.tzname()}"


# --- The document's parts ----------------------------------------------------------------------


def executive(validation: JobValidation) -> dict[str, Any]:
    """The verdict in plain words for a reader who has not trained a model."""
    headlines = benchmark_rows(validation.summary)
    passed = (validation.summary or {}).get("passed")
    verdict = "ready" if passed else "incomplete" if passed is None else "not_ready"
    meeting = [h["label"].lower() for h in headlines if h["passed"]]
    short = [h["label"].lower() for h in headlines if h["passed"] is False]
    unmeasured = [h["label"].lower() for h in headlines if h["passed"] is None]
    if verdict == "ready":
        sentence = (f"The fine-tuned model meets all {len(headlines)} quality thresholds ({join_words(meeting)}), "
                    "so it is ready to deliver.")
    elif verdict == "not_ready":
        sentence = (f"The fine-tuned model meets {len(meeting)} of {len(headlines)} quality thresholds. "
                    f"It falls short on {join_words(short)}, so it is not ready to deliver yet.")
    else:
        sentence = (f"Not every measure could be taken ({join_words(unmeasured) if unmeasured else 'no results'}), "
                    "so this report cannot yet say whether the model is ready.")
    if any(h["provisional"] for h in headlines):
        sentence += (" Some figures come from automatic checks alone and are provisional until people or a "
                     "judge model have scored the replies.")
    return {"verdict": verdict, "sentence": sentence, "headlines": headlines}


def training(job: TrainingJob) -> dict[str, Any]:
    points = list(MetricPoint.objects.filter(job=job).order_by("step").values_list("step", "train_loss", "eval_loss"))
    every = max(1, len(points) // MAX_CURVE_POINTS)
    train = [[float(s), float(t)] for i, (s, t, _) in enumerate(points) if t is not None and i % every == 0]
    evals = [[float(s), float(e)] for s, _, e in points if e is not None]
    batch, accumulation = job.hyperparameter("per_device_batch_size", "per_device_train_batch_size"), \
        job.hyperparameter("gradient_accumulation_steps")
    summary = job.run_summary
    config = [
        ["Base model", job.base_model.name],
        ["Preset", job.preset.name if job.preset_id else "custom"],
        ["Method", "QLoRA (4-bit)" if summary.get("quantization") == "4bit" else "LoRA"],
        ["Learning rate", humanize.scientific(((summary.get("learning_rate") or {}).get("effective"))
                                              or job.hyperparameter("learning_rate"))],
        ["Epochs", humanize.significant(job.hyperparameter("num_epochs", "num_train_epochs"), 3, trim=True)],
        ["Batch size", humanize.integer(batch) + (f" × {accumulation} accumulation" if accumulation and accumulation > 1
                                                  else "")],
        ["LoRA rank / alpha", f"{humanize.integer(job.hyperparameter('lora_r'))} / {humanize.integer(job.hyperparameter('lora_alpha'))}"],
        ["Max sequence length", humanize.integer(job.hyperparameter("max_seq_length", "max_length"))],
        ["Steps", humanize.integer(job.total_steps or job.current_step)],
        ["Precision", str(summary.get("precision") or "—")],
        ["Device", str(summary.get("device") or job.executor)],
    ]
    interruptions = [{"when": _when(e.received_at), "what": str(job.mask_secret((e.payload or {}).get("message")
                                                                             or "interrupted")),
                      "cost": ""} for e in job.events.filter(event_type=JobEvent.Type.INTERRUPTED)]
    if interruptions and job.recovery_summary():
        interruptions[-1]["cost"] = job.recovery_summary()
    elapsed = job.elapsed
    cost = humanize.money(job.actual_cost)
    if not job.actual_cost and job.executor == "local":
        cost += " (this machine; nothing billed)"
    elif job.cost_estimate is not None:
        cost += f" (estimate {humanize.money(job.cost_estimate)})"
    return {"loss": {"train": train, "eval": evals},
            "config": [[k, v] for k, v in config if v not in ("", "—", "— / —")],
            "cost": cost, "duration": humanize.duration(elapsed.total_seconds() if elapsed else None),
            "interruptions": interruptions}


def _chart(key: str, entry: dict[str, Any]) -> dict[str, Any] | None:
    base, trained = entry.get("base"), entry.get("trained")
    if base is None and trained is None:
        return None
    if key == sets.KNOWLEDGE_RETENTION:
        return {"base": base * 100 if base is not None else None, "trained": trained * 100 if trained is not None
                else None, "base_interval": None, "trained_interval": None, "unit": "% correct"}
    # The chart's axis label: short, so it fits beside a small chart (the table says the rest).
    if key == "perplexity" or (key == sets.EMOTIONAL_INTELLIGENCE and entry.get("provisional")):
        unit = "perplexity"
    elif key == sets.BRAND_VOICE and entry.get("provisional"):
        unit = "% of points"
    else:
        unit = "mean (1-5)"
    trained_interval = entry.get("interval") if key == sets.BRAND_VOICE and base is None else None
    if trained_interval and entry.get("unit") == "% of 5":
        trained_interval = [x / 20 for x in trained_interval]  # the chart plots the 1-5 mean
    return {"base": base, "trained": trained, "base_interval": None, "trained_interval": trained_interval,
            "unit": unit}


def _characteristics(validation: JobValidation, entry: dict[str, Any]) -> list[dict[str, Any]] | None:
    per = entry.get("per_characteristic")
    if not per:
        return None
    benchmark = validation.set_of(sets.BRAND_VOICE)
    names = {c["key"]: c.get("name") or c["key"] for c in (benchmark.characteristics if benchmark else [])}
    rows = []
    for key, figures in per.items():
        name = names.get(key) or rules_label(key)
        if "mean" in figures:  # people or the judge: a 1-5 mean of the trained replies
            mean = figures.get("mean")
            rows.append({"name": name, "base": None, "trained": mean,
                         "text": f"{humanize.significant(mean, 3)} of 5 ({humanize.integer(figures.get('n'))} scores)"})
        else:  # the rules: the share of replies meeting the point
            b, t = figures.get("base"), figures.get("trained")
            rows.append({"name": name, "base": b * 100 if b is not None else None,
                         "trained": t * 100 if t is not None else None,
                         "text": f"{humanize.percent(b * 100 if b is not None else None, 0)} → "
                                 f"{humanize.percent(t * 100 if t is not None else None, 0)} of replies"})
    return rows


def rules_label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _flagged(validation: JobValidation, entry: dict[str, Any]) -> list[dict[str, str]] | None:
    ids = entry.get("flagged") or []
    if not ids:
        return None
    benchmark = validation.set_of(sets.BRAND_VOICE)
    replies = {r.item_id: r for r in validation.replies.filter(benchmark=sets.BRAND_VOICE, item_id__in=ids)}
    out = []
    for item_id in ids:
        reply = replies.get(item_id)
        item = benchmark.item(item_id) if benchmark else None
        prompt = " / ".join(m.get("content", "") for m in (item or {}).get("messages", []) if m.get("role") == "user")
        missed = [rules_label(k) for k, v in ((reply.automatic.get("trained") or {}) if reply else {}).items()
                  if v is False]
        out.append({"item_id": item_id, "prompt": prompt, "reply": reply.trained_reply if reply else "",
                    "reason": ("misses: " + ", ".join(missed)) if missed else "scored below 3 on a characteristic"})
    return out


def _notes(key: str, entry: dict[str, Any]) -> list[str]:
    notes = []
    if entry.get("n") is not None:
        notes.append(f"Measured on {humanize.integer(entry['n'])}"
                     + (f" of {humanize.integer(entry['of'])}" if entry.get("of") not in (None, entry["n"]) else "")
                     + " items.")
    details = entry.get("details") or {}
    if key == sets.KNOWLEDGE_RETENTION and details.get("acc_norm"):
        norm = details["acc_norm"]
        notes.append(f"Length-normalised accuracy: {humanize.percent((norm.get('base') or 0) * 100)} → "
                     f"{humanize.percent((norm.get('trained') or 0) * 100)}.")
        for topic, figures in (details.get("per_topic") or {}).items():
            notes.append(f"{topic.capitalize()}: {humanize.percent(figures['base'] * 100)} → "
                         f"{humanize.percent(figures['trained'] * 100)} of {humanize.integer(figures['n'])} questions.")
    if key == sets.EMOTIONAL_INTELLIGENCE and (checks := details.get("checks")):
        notes.append(f"Automatic checks met: {humanize.percent((checks.get('base') or 0) * 100)} of points (base) → "
                     f"{humanize.percent((checks.get('trained') or 0) * 100)} (trained).")
    if entry.get("provisional"):
        notes.append("Provisional: automatic checks only; people or a judge model have not scored these replies.")
    return notes


def benchmarks(validation: JobValidation) -> list[dict[str, Any]]:
    found = (validation.summary or {}).get("benchmarks") or {}
    out = []
    for row in benchmark_rows(validation.summary):
        entry = found[row["key"]]
        measured = entry.get("status") == "ok"
        out.append({
            **row, "kind": row["key"],
            "n": humanize.integer(entry.get("n")) if entry.get("n") is not None else "—",
            "chart": _chart(row["key"], entry) if measured else None,
            "characteristics": _characteristics(validation, entry) if measured else None,
            "flagged": _flagged(validation, entry) if measured else None,
            "notes": _notes(row["key"], entry) if measured else [entry.get("headline", "not measured")],
        })
    return out


def _example(item: Any) -> dict[str, Any]:
    base, trained = item.sides

    def score(side: Any) -> str:
        """The best scorer's mean (people, then the judge), else the checks met."""
        rated = [b for b in side.scores if b.get("family") in ("people", "judge") and b.get("mean")]
        if rated:
            return f"{rated[0]['mean']} of 5 ({rated[0]['title'].replace(' · ', ': ')})"
        met = [c for c in side.checks if c.get("state") in ("met", "missed")]
        return f"{sum(c['state'] == 'met' for c in met)} of {len(met)} checks met" if met else "—"

    return {"item_id": item.id, "benchmark": item.benchmark_label,
            "messages": [{"role": m["role"], "content": m["content"]} for m in item.messages],
            "base_reply": base.reply, "trained_reply": trained.reply, "base_score": score(base),
            "trained_score": score(trained), "gap": item.difference.text if item.difference else "—"}


def examples(job: TrainingJob, validation: JobValidation) -> dict[str, list[dict[str, Any]]]:
    """The three scenarios the training helped most and the three it helped least."""
    ranked = [i for i in compare_items(job, validation, sets.EMOTIONAL_INTELLIGENCE, sort="best")
              if i.difference is not None]
    # Gaps of different scorers are on different scales: rank by the best scorer that scored any.
    for family in ("people", "judge", "automatic"):
        chosen = [i for i in ranked if i.difference.scorer.startswith(family)]
        if chosen:
            ranked = chosen
            break
    best = ranked[:EXAMPLES]
    worst = [i for i in reversed(ranked) if i not in best][:EXAMPLES]
    return {"best": [_example(i) for i in best], "worst": [_example(i) for i in worst]}


def _score_rows(validation: JobValidation) -> list[dict[str, str]]:
    people: dict[int, int] = {}
    rows = []
    for reply in validation.replies.prefetch_related("scores").order_by("benchmark", "position"):
        label = LABELS.get(reply.benchmark, reply.benchmark)
        for variant in ("base", "trained"):
            checks = reply.automatic.get(variant) or {}
            value = rules.reply_score(checks)
            if value is not None:
                rows.append({"benchmark": label, "item_id": reply.item_id, "model": variant,
                             "criterion": "checks met", "score": humanize.percent(value * 100, 0),
                             "scorer": rules.SCORER})
        for score in reply.scores.all():
            who = score.scorer
            if score.scorer == "people":
                number = people.setdefault(score.evaluator_id or 0, len(people) + 1)
                who = f"people (evaluator {number})"  # no names in a client's report
            for criterion, value in score.criteria.items():
                if isinstance(value, int | float):
                    rows.append({"benchmark": label, "item_id": reply.item_id, "model": score.variant,
                                 "criterion": criterion.replace("_", " "),
                                 "score": humanize.significant(value, 3, trim=True), "scorer": who})
    retention = validation.evaluator(sets.KNOWLEDGE_RETENTION)
    for item in retention.get("items") or [] if retention.get("status", "ok") == "ok" else []:
        try:
            key = sets.LETTERS.index(item["answer"])
            for variant in ("base", "trained"):
                logliks = item[variant]["loglik"]
                chosen = max(range(len(logliks)), key=lambda i: logliks[i])
                rows.append({"benchmark": LABELS[sets.KNOWLEDGE_RETENTION], "item_id": item["id"], "model": variant,
                             "criterion": f"answer {sets.LETTERS[chosen]} (key {item['answer']})",
                             "score": "correct" if chosen == key else "wrong",
                             "scorer": f"{rules.SCORER} (option log-likelihood)"})
        except (KeyError, TypeError, ValueError):
            continue
    return rows


def _adapter_sha256(artifact: ModelArtifact | None) -> str:
    if artifact is None or not artifact.adapter_path or not storage.exists(artifact.adapter_path):
        return ""
    digest = hashlib.sha256()
    with storage.open_read(artifact.adapter_path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def appendix(job: TrainingJob, validation: JobValidation) -> dict[str, Any]:
    summary = job.run_summary
    training_file = job.training_file
    split = summary.get("dataset") if isinstance(summary.get("dataset"), dict) else {}
    dataset = [["Training file", training_file.name], ["Records", humanize.integer(training_file.record_count)],
               ["Size", f"{humanize.integer(training_file.size_bytes)} bytes"]]
    for name, value in (split or {}).items():
        label = name.replace("_", " ").capitalize()
        if isinstance(value, int | float) and not isinstance(value, bool) and label not in {r[0] for r in dataset}:
            dataset.append([label, humanize.integer(value)
                            if float(value).is_integer() else humanize.significant(value)])
    if summary.get("tokens_trained"):
        dataset.append(["Tokens trained", humanize.integer(summary["tokens_trained"])])
    # What trained and evaluated the model (the worker's summary.json), then what drew this report.
    versions = [[f"{name} (worker)", str(value)] for name, value in (summary.get("versions") or {}).items()]
    if not versions:
        versions.append(["worker libraries", "not reported by this job's worker"])
    for name in ("Django", "reportlab", "matplotlib"):
        try:
            versions.append([f"{name} (report)", metadata.version(name)])
        except metadata.PackageNotFoundError:
            continue
    artifact = ModelArtifact.objects.filter(job=job).first()
    hashes = [["Dataset (SHA-256)", training_file.sha256]]
    if adapter := _adapter_sha256(artifact):
        hashes.append([f"Adapter ({Path(artifact.adapter_path).name}, SHA-256)", adapter])
    sets_rows = [{"kind": LABELS.get(s.kind, s.kind), "name": s.name, "version": s.version, "sha256": s.sha256}
                 for s in validation.sets.all()]
    return {"scores": _score_rows(validation), "sets": sets_rows, "dataset": dataset, "versions": versions,
            "hashes": hashes}


def build_document(job: TrainingJob, validation: JobValidation, version: int, *,
                   generated_at: datetime | None = None) -> dict[str, Any]:
    """Everything report_pdf.render_report draws, as plain data (JSON-serialisable)."""
    words, _ = overall(validation)
    owner = job.created_by
    return {
        "title": f"Validation report — {job.name}", "version": version,
        "generated_at": _when(generated_at or timezone.now()),
        "job": {"id": str(job.pk), "name": job.name,
                "owner": (owner.get_full_name() or owner.get_username()) if owner else "—",
                "base_model": job.base_model.name, "preset": job.preset.name if job.preset_id else "custom",
                "dataset": job.training_file.name, "status": job.get_status_display(),
                "started": _when(job.started_at), "finished": _when(job.completed_at), "overall": words},
        "executive": executive(validation),
        "training": training(job),
        "benchmarks": benchmarks(validation),
        "examples": examples(job, validation),
        "appendix": appendix(job, validation),
    }


# --- Versions ------------------------------------------------------------------------------------


def scores_fingerprint(validation: JobValidation) -> str:
    """What the report's figures depend on beyond the worker's results: every score and when the
    results came; equal fingerprints make the same report."""
    rows = ReplyScore.objects.filter(reply__validation=validation).order_by("pk").values_list(
        "pk", "variant", "scorer", "evaluator_id", "criteria", "updated_at")
    digest = hashlib.sha256(str(validation.received_at).encode())
    for row in rows:
        digest.update(json.dumps(row, default=str, sort_keys=True).encode())
    return digest.hexdigest()


def generate_report(job_id: Any, reason: str = ValidationReport.Reason.REQUESTED, *,
                    only_if_changed: bool = False) -> ValidationReport | None:
    """Render the job's report as its next version; None when there is nothing to report (no
    results yet) or, with `only_if_changed`, when the scores are those of the last version."""
    from .report_pdf import render_report  # reportlab and matplotlib: loaded by whoever renders

    validation = JobValidation.objects.filter(job_id=job_id).select_related(
        "job", "job__base_model", "job__training_file", "job__preset", "job__created_by").first()
    if validation is None or validation.received_at is None:
        return None
    job = validation.job
    fingerprint = scores_fingerprint(validation)
    last = ValidationReport.objects.filter(job=job).order_by("-version").first()
    if only_if_changed and last is not None and last.scores_fingerprint == fingerprint:
        return None
    now = timezone.now()
    with transaction.atomic():
        # The validation's row lock numbers one report at a time; rendering takes a second or two.
        JobValidation.objects.select_for_update().filter(pk=validation.pk).first()
        version = (ValidationReport.objects.filter(job=job).aggregate(v=Max("version"))["v"] or 0) + 1
        document = build_document(job, validation, version, generated_at=now)
        with tempfile.TemporaryDirectory(prefix="validation-report-") as folder:
            path = Path(folder) / "report.pdf"
            render_report(document, path)
            data = path.read_bytes()
        key = report_key(job.pk, version)
        storage.save_bytes(key, data)
        report = ValidationReport.objects.create(
            job=job, version=version, key=key, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
            reason=reason, scores_fingerprint=fingerprint, document=document, generated_at=now)
        ModelArtifact.objects.filter(job=job).update(validation_report_path=key)
    logger.info("job %s: validation report v%d (%s, %d bytes)", job.pk, version, reason, len(data))
    return report


# People's scores quiet for this long before the beat task remakes a report.
REPORT_QUIET_SECONDS = 120


def stale_report_jobs(now: datetime | None = None) -> list[Any]:
    """Jobs with a report whose people's scores changed after it, and not in the last
    REPORT_QUIET_SECONDS (someone may still be scoring). One query; each validation's newest
    score and newest report are subqueries, not a join of every score with every report."""
    quiet = (now or timezone.now()) - timedelta(seconds=REPORT_QUIET_SECONDS)
    newest_score = (ReplyScore.objects.filter(reply__validation=OuterRef("pk")).order_by("-updated_at")
                    .values("updated_at")[:1])
    newest_report = (ValidationReport.objects.filter(job=OuterRef("job")).order_by("-generated_at")
                     .values("generated_at")[:1])
    return list(JobValidation.objects.annotate(scored=Subquery(newest_score), reported=Subquery(newest_report))
                .filter(reported__isnull=False, scored__gt=F("reported"), scored__lte=quiet)
                .values_list("job_id", flat=True))
