"""A job's validation summary: per benchmark, base vs trained, the change, its 95 % interval,
the seed's threshold and pass/fail, and which scorer produced the number.

Scorers, best first: people (the blind scoring page), the judge model, the rules. A benchmark's
headline uses the best scorer that has scored it and says which; figures from the rules alone
are marked provisional, since the seed's thresholds were set for rated replies.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from django.db import transaction

from artifacts.models import ModelArtifact
from core import humanize
from training.events import record_event
from training.models import JobEvent, TrainingJob

from . import rules, sets, stats
from .models import JobValidation, ReplyScore, ValidationReply

PERPLEXITY = "perplexity"
ORDER = (PERPLEXITY, sets.EMOTIONAL_INTELLIGENCE, sets.KNOWLEDGE_RETENTION, sets.BRAND_VOICE)
LABELS = {
    PERPLEXITY: "Perplexity",
    sets.EMOTIONAL_INTELLIGENCE: "Emotional intelligence",
    sets.KNOWLEDGE_RETENTION: "Knowledge retention",
    sets.BRAND_VOICE: "Brand voice",
}
EI_CRITERIA = ("empathy", "clarity", "appropriateness")


def _interval(interval: stats.Interval | None) -> list[float] | None:
    return interval.as_list() if interval is not None else None


def _not_run(name: str, result: dict[str, Any]) -> dict[str, Any]:
    status = result.get("status", "missing") if result else "missing"
    message = result.get("message") or result.get("reason") or "the worker did not report it"
    return {"label": LABELS[name], "status": status, "passed": None, "headline": f"not measured: {message}",
            "text": {"base": "—", "trained": "—", "change": "—", "verdict": "not measured"}}


def _finish(name: str, entry: dict[str, Any], threshold: float, *, side=humanize.significant) -> dict[str, Any]:
    value = entry.get("value")
    entry.update(label=LABELS[name], status="ok", threshold=threshold)
    entry["passed"] = None if value is None else bool(value >= threshold)
    entry["text"] = {"base": side(entry.get("base")) if entry.get("base") is not None else "—",
                     "trained": side(entry.get("trained")) if entry.get("trained") is not None else "—",
                     "change": figure_text(entry), "verdict": verdict_text(entry)}
    return entry


def figure_text(entry: dict[str, Any]) -> str:
    """'17.1% better (12.0% to 22.3%)' as people read it."""
    value = entry.get("value")
    if value is None:
        return "—"
    unit = str(entry.get("unit", "")).removeprefix("%").strip()
    text = f"{humanize.percent(value)} {unit}".strip()
    interval = entry.get("interval")
    if interval:
        text += f" (95% interval {humanize.percent(interval[0])} to {humanize.percent(interval[1])})"
    return text


def verdict_text(entry: dict[str, Any]) -> str:
    passed = entry.get("passed")
    if passed is None:
        return "not measured"
    word = "Pass" if passed else "Fail"
    if entry.get("threshold") is not None:
        word += f" (needs {humanize.percent(entry['threshold'], 0)} or more)"
    return word + (", provisional: automatic scores only" if entry.get("provisional") else "")


def _accuracy(value: float) -> str:
    return humanize.percent(value * 100)


def _of_five(value: float) -> str:
    return f"{humanize.significant(value, 3)} / 5"


def perplexity_summary(result: dict[str, Any]) -> dict[str, Any]:
    if not result or result.get("status", "ok") != "ok" or result.get("base") is None:
        return _not_run(PERPLEXITY, result)
    rows = [r for r in result.get("per_sample") or [] if isinstance(r, list | tuple) and len(r) == 3]
    value, interval = stats.perplexity_improvement(rows) if rows else (result.get("improvement_pct"), None)
    entry = {"scorer": rules.SCORER, "metric": "held-out perplexity (lower is better)",
             "base": result["base"], "trained": result["trained"], "value": value,
             "interval": _interval(interval), "unit": "% better", "n": result.get("samples"),
             "headline": f"perplexity {humanize.change(result['base'], result['trained'])}"}
    return _finish(PERPLEXITY, entry, stats.PERPLEXITY_MIN_IMPROVEMENT_PCT)


def _rated(replies: list[ValidationReply], criteria: tuple[str, ...] | None) -> dict[str, dict[str, dict[int, list[float]]]]:
    """scorer family ('people', 'judge') -> variant -> reply id -> each score's mean over criteria."""
    out: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for reply in replies:
        for score in reply.scores.all():
            family = "people" if score.scorer == "people" else "judge" if score.scorer.startswith("judge:") else ""
            if not family:
                continue
            values = [score.criteria.get(c) for c in criteria] if criteria else list(score.criteria.values())
            values = [v for v in values if isinstance(v, int | float)]
            if values:
                out[family][score.variant][reply.pk].append(sum(values) / len(values))
    return out


def _scorer_name(family: str, replies: list[ValidationReply]) -> str:
    if family == "people":
        people = {s.evaluator_id for r in replies for s in r.scores.all() if s.scorer == "people"}
        return f"people ({len(people)} evaluator{'s' if len(people) != 1 else ''})"
    models = sorted({s.scorer for r in replies for s in r.scores.all() if s.scorer.startswith("judge:")})
    return ", ".join(models)


def ei_summary(validation: JobValidation, replies: list[ValidationReply]) -> dict[str, Any]:
    result = validation.evaluator(sets.EMOTIONAL_INTELLIGENCE)
    if not result or result.get("status", "ok") != "ok":
        return _not_run(sets.EMOTIONAL_INTELLIGENCE, result)
    checks_base = [r.automatic.get("base", {}) for r in replies]
    checks_trained = [r.automatic.get("trained", {}) for r in replies]
    reference = [r.automatic.get("reference", {}) for r in replies]
    rows = [[ref["base"][0], ref["trained"][0], ref["base"][1]] for ref in reference
            if isinstance(ref.get("base"), list) and isinstance(ref.get("trained"), list) and ref["base"][1]]
    ref_value, ref_interval = stats.perplexity_improvement(rows)
    base_ppl = stats.perplexity_of([r[0] for r in rows], [int(r[2]) for r in rows]) if rows else None
    trained_ppl = stats.perplexity_of([r[1] for r in rows], [int(r[2]) for r in rows]) if rows else None
    details = {
        "reference_perplexity": {"base": base_ppl, "trained": trained_ppl, "improvement_pct": ref_value,
                                 "interval": _interval(ref_interval), "scorer": rules.SCORER},
        "checks": {"base": stats.mean([v for c in checks_base if (v := rules.reply_score(c)) is not None]),
                   "trained": stats.mean([v for c in checks_trained if (v := rules.reply_score(c)) is not None]),
                   "per_check": {key: {"base": rules.pass_rate([{key: c.get(key)} for c in checks_base]),
                                       "trained": rules.pass_rate([{key: c.get(key)} for c in checks_trained])}
                                 for key in rules.EI_CHECKS},
                   "scorer": rules.SCORER},
    }
    rated = _rated(replies, EI_CRITERIA)
    for family in ("people", "judge"):
        by_variant = rated.get(family, {})
        paired = [pk for pk in by_variant.get("base", {}) if pk in by_variant.get("trained", {})]
        if not paired:
            continue
        base = [stats.mean(by_variant["base"][pk]) for pk in paired]
        trained = [stats.mean(by_variant["trained"][pk]) for pk in paired]
        value, interval = stats.paired_mean_improvement(base, trained)
        entry = {"scorer": _scorer_name(family, replies), "provisional": False,
                 "metric": "mean of empathy, clarity and appropriateness (1-5)",
                 "base": stats.mean(base), "trained": stats.mean(trained), "value": value,
                 "interval": _interval(interval), "unit": "% better", "n": len(paired),
                 "of": len(replies), "details": details,
                 "headline": f"rated {humanize.change(stats.mean(base), stats.mean(trained))} of 5"}
        return _finish(sets.EMOTIONAL_INTELLIGENCE, entry, stats.EI_MIN_IMPROVEMENT_PCT, side=_of_five)
    # The rules alone: the likelihood of the reference replies is the headline, the checks beside it.
    entry = {"scorer": f"{rules.SCORER} (reference-reply likelihood)", "provisional": True,
             "metric": "perplexity of the reference replies (lower is better)",
             "base": base_ppl, "trained": trained_ppl, "value": ref_value, "interval": _interval(ref_interval),
             "unit": "% better", "n": len(rows), "of": len(replies), "details": details,
             "headline": (f"reference replies' perplexity {humanize.change(base_ppl, trained_ppl)}"
                          if base_ppl is not None else "no reference replies scored")}
    return _finish(sets.EMOTIONAL_INTELLIGENCE, entry, stats.EI_MIN_IMPROVEMENT_PCT)


def retention_summary(validation: JobValidation) -> dict[str, Any]:
    result = validation.evaluator(sets.KNOWLEDGE_RETENTION)
    if not result or result.get("status", "ok") != "ok":
        return _not_run(sets.KNOWLEDGE_RETENTION, result)
    benchmark = validation.set_of(sets.KNOWLEDGE_RETENTION)
    topics = {i["id"]: i.get("topic", "") for i in (benchmark.items if benchmark else [])}
    base_ok, trained_ok, base_norm, trained_norm, item_topics = [], [], [], [], []
    for item in result.get("items") or []:
        try:
            key = sets.LETTERS.index(item["answer"])
            base, trained = item["base"], item["trained"]
            base_ok.append(stats.choice_index(base["loglik"]) == key)
            trained_ok.append(stats.choice_index(trained["loglik"]) == key)
            base_norm.append(stats.choice_index(base["loglik"], base["chars"]) == key)
            trained_norm.append(stats.choice_index(trained["loglik"], trained["chars"]) == key)
            item_topics.append(topics.get(item["id"], ""))
        except (KeyError, TypeError, ValueError):
            continue
    if not base_ok:
        return _not_run(sets.KNOWLEDGE_RETENTION, {"status": "error", "message": "no question was scored"})
    value, interval = stats.retention(base_ok, trained_ok)
    norm_value, norm_interval = stats.retention(base_norm, trained_norm)
    per_topic = {}
    for topic in sorted(set(item_topics)):
        chosen = [i for i, t in enumerate(item_topics) if t == topic]
        per_topic[topic or "other"] = {"base": sum(base_ok[i] for i in chosen) / len(chosen),
                                       "trained": sum(trained_ok[i] for i in chosen) / len(chosen), "n": len(chosen)}
    base_acc, trained_acc = sum(base_ok) / len(base_ok), sum(trained_ok) / len(trained_ok)
    entry = {"scorer": f"{rules.SCORER} (option log-likelihood)", "provisional": False,
             "metric": "multiple-choice accuracy; retention = trained / base",
             "base": base_acc, "trained": trained_acc, "value": value, "interval": _interval(interval),
             "unit": "% of base", "n": len(base_ok),
             "details": {"acc_norm": {"base": sum(base_norm) / len(base_norm), "trained": sum(trained_norm) / len(trained_norm),
                                      "retention_pct": norm_value, "interval": _interval(norm_interval)},
                         "per_topic": per_topic},
             "headline": (f"accuracy {humanize.percent(base_acc * 100)} → {humanize.percent(trained_acc * 100)}"
                          + (f", {humanize.percent(value)} of base" if value is not None else ""))}
    return _finish(sets.KNOWLEDGE_RETENTION, entry, stats.RETENTION_MIN_PCT, side=_accuracy)


def brand_voice_summary(validation: JobValidation, replies: list[ValidationReply]) -> dict[str, Any]:
    result = validation.evaluator(sets.BRAND_VOICE)
    if not result or result.get("status", "ok") != "ok":
        return _not_run(sets.BRAND_VOICE, result)
    benchmark = validation.set_of(sets.BRAND_VOICE)
    characteristics = [c["key"] for c in (benchmark.characteristics if benchmark else [])]
    for family in ("people", "judge"):
        scores = [s for r in replies for s in r.scores.all() if s.variant == ReplyScore.Variant.TRAINED
                  and (s.scorer == "people" if family == "people" else s.scorer.startswith("judge:"))]
        if not scores:
            continue
        per_reply: dict[int, list[float]] = defaultdict(list)
        per_char: dict[str, list[float]] = defaultdict(list)
        flagged = set()
        for score in scores:
            values = {k: v for k, v in score.criteria.items() if isinstance(v, int | float)}
            if values:
                per_reply[score.reply_id].append(sum(values.values()) / len(values))
            for key, v in values.items():
                per_char[key].append(v)
                if v < stats.FLAG_BELOW:
                    flagged.add(score.reply_id)
        means = [stats.mean(v) for v in per_reply.values()]
        mean, interval = stats.mean_interval(means)
        by_id = {r.pk: r.item_id for r in replies}
        entry = {"scorer": _scorer_name(family, replies), "provisional": False,
                 "metric": "mean score over the characteristics (1-5), as % of 5",
                 "base": None, "trained": mean, "value": stats.scale_pct(mean) if mean is not None else None,
                 "interval": [stats.scale_pct(x) for x in interval.as_list()] if interval else None,
                 "unit": "% of 5", "n": len(per_reply), "of": len(replies),
                 "per_characteristic": {k: {"mean": stats.mean(per_char[k]), "n": len(per_char[k])}
                                        for k in characteristics or sorted(per_char) if per_char.get(k)},
                 "flagged": sorted(by_id[pk] for pk in flagged),
                 "headline": f"mean {humanize.significant(mean, 3)} of 5" if mean is not None else ""}
        return _finish(sets.BRAND_VOICE, entry, stats.BRAND_VOICE_MIN_PCT, side=_of_five)
    trained = [rules.reply_score(r.automatic.get("trained", {})) for r in replies]
    base = [rules.reply_score(r.automatic.get("base", {})) for r in replies]
    trained_scores = [v for v in trained if v is not None]
    mean, interval = stats.mean_interval(trained_scores)
    checkable = list(rules.CHECKS)
    per_char = {key: {"base": rules.pass_rate([{key: r.automatic.get("base", {}).get(key)} for r in replies]),
                      "trained": rules.pass_rate([{key: r.automatic.get("trained", {}).get(key)} for r in replies])}
                for key in checkable}
    flagged = sorted(r.item_id for r in replies
                     if any(v is False for v in r.automatic.get("trained", {}).values()))
    base_scores = [v for v in base if v is not None]
    entry = {"scorer": f"{rules.SCORER} ({len(checkable)} of {len(characteristics) or 10} characteristics checkable)",
             "provisional": True, "metric": "share of the checkable rubric points met",
             "base": stats.scale_pct(stats.mean(base_scores), 1.0) if base_scores else None,
             "trained": stats.scale_pct(mean, 1.0) if mean is not None else None,
             "value": stats.scale_pct(mean, 1.0) if mean is not None else None,
             "interval": [x * 100 for x in interval.as_list()] if interval else None,
             "unit": "% of points", "n": len(trained_scores), "of": len(replies),
             "per_characteristic": per_char, "flagged": flagged,
             "headline": f"{humanize.percent(mean * 100)} of the checkable points met" if mean is not None else ""}
    return _finish(sets.BRAND_VOICE, entry, stats.BRAND_VOICE_MIN_PCT, side=humanize.percent)


def summarise(validation: JobValidation) -> dict[str, Any]:
    """Every benchmark's entry, and whether the model passed all of them (None: not all measured)."""
    replies = list(validation.replies.prefetch_related("scores"))
    by_kind: dict[str, list[ValidationReply]] = defaultdict(list)
    for reply in replies:
        by_kind[reply.benchmark].append(reply)
    benchmarks = {
        PERPLEXITY: perplexity_summary(validation.evaluator(PERPLEXITY)),
        sets.EMOTIONAL_INTELLIGENCE: ei_summary(validation, by_kind[sets.EMOTIONAL_INTELLIGENCE]),
        sets.KNOWLEDGE_RETENTION: retention_summary(validation),
        sets.BRAND_VOICE: brand_voice_summary(validation, by_kind[sets.BRAND_VOICE]),
    }
    for entry in benchmarks.values():
        for key in ("base", "trained", "value"):
            if isinstance(entry.get(key), float) and not math.isfinite(entry[key]):
                entry[key] = None
    verdicts = [e.get("passed") for e in benchmarks.values()]
    return {
        "benchmarks": benchmarks,
        "passed": None if None in verdicts else all(verdicts),
        "sets": {s.kind: s.identity() for s in validation.sets.all()},
    }


def refresh_summary(validation: JobValidation, save_fields: list[str] | None = None) -> dict[str, Any]:
    """Work the summary out again (after new results or new scores) and copy the headline
    figures to the job's ModelArtifact."""
    validation.summary = summarise(validation)
    validation.save(update_fields=[*(save_fields or []), "summary", "updated_at"])
    sync_artifact(validation)
    return validation.summary


def sync_artifact(validation: JobValidation) -> None:
    """The ModelArtifact's headline columns: on the job (results.validation_headline, which
    artifact registration copies, since the artifact is often registered after the results)
    and on the artifact if it already exists."""
    benchmarks = validation.summary.get("benchmarks", {})
    ei = benchmarks.get(sets.EMOTIONAL_INTELLIGENCE, {})
    fields = {
        "ei_score_baseline": ei.get("base"), "ei_score_trained": ei.get("trained"),
        "ei_improvement_pct": ei.get("value"),
        "forgetting_retention_pct": benchmarks.get(sets.KNOWLEDGE_RETENTION, {}).get("value"),
        "brand_voice_consistency_pct": benchmarks.get(sets.BRAND_VOICE, {}).get("value"),
    }
    with transaction.atomic():
        TrainingJob.objects.merge_results(validation.job_id, validation_headline=fields)
        ModelArtifact.objects.filter(job_id=validation.job_id).update(**fields)


def summary_lines(overview: dict[str, Any]) -> list[str]:
    """The validation table as console lines (manage.py train), one benchmark a line:
    "  Emotional intelligence  412 → 198  51.9% better (95% interval 47.0% to 56.2%)  Pass ...  [automatic]"."""
    if overview.get("status") in (None, "not_started"):
        return []
    if overview["status"] == "pending":
        return ["  Validation: no results from the worker"]
    passed = overview.get("passed")
    verdict = ("passed every threshold" if passed else "not every benchmark measured" if passed is None
               else "short of at least one threshold")
    lines = [f"  Validation ({verdict}):"]
    rows = [overview["benchmarks"][key] for key in ORDER if key in overview.get("benchmarks", {})]
    width = max((len(r.get("label", "")) for r in rows), default=0)
    for row in rows:
        text = row.get("text", {})
        if row.get("status") != "ok":
            lines.append(f"    {row.get('label', ''):<{width}}  {row.get('headline', 'not measured')}")
            continue
        lines.append(f"    {row['label']:<{width}}  {text.get('base', '—')} → {text.get('trained', '—')}  "
                     f"{text.get('change', '—')}  {text.get('verdict', '')}  [{row.get('scorer', '')}]")
    return lines


def threshold_text(entry: dict[str, Any]) -> str:
    """'≥ 30% better', '≥ 95% of base' as people read a threshold."""
    threshold = entry.get("threshold")
    if threshold is None:
        return "—"
    unit = str(entry.get("unit", "")).removeprefix("%").strip()
    return f"≥ {humanize.percent(threshold, 0)} {unit}".strip()


def benchmark_rows(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each benchmark of a summary in the table's order, as people read it: what the before/after
    strip, the "validation finished" event and the report's headlines all show."""
    benchmarks = (summary or {}).get("benchmarks") or {}
    rows = []
    for key in ORDER:
        entry = benchmarks.get(key)
        if not entry:
            continue
        text = entry.get("text") or {}
        passed = entry.get("passed")
        rows.append({"key": key, "label": entry.get("label") or LABELS[key], "passed": passed,
                     "state": "pass" if passed else "none" if passed is None else "fail",
                     "base": text.get("base", "—"), "trained": text.get("trained", "—"),
                     "change": text.get("change", "—"), "verdict": text.get("verdict", "not measured"),
                     "threshold": threshold_text(entry), "scorer": entry.get("scorer", ""),
                     "provisional": bool(entry.get("provisional")), "headline": entry.get("headline", ""),
                     "metric": entry.get("metric", "")})
    return rows


def finished_payload(summary: dict[str, Any], *, judge_error: str = "") -> dict[str, Any]:
    """What the "validation finished" event tells (notifications read only this): a sentence,
    the verdict, and each benchmark's figures as people read them, in the table's order."""
    rows = benchmark_rows(summary)
    passing = [r for r in rows if r["passed"]]
    short = [r["label"] for r in rows if r["passed"] is False]
    unmeasured = [r["label"] for r in rows if r["passed"] is None]
    message = f"{len(passing)} of {len(rows)} benchmarks meet their thresholds."
    if short:
        message += f" Short: {join_words([s.lower() for s in short])}."
    if unmeasured:
        message += f" Not measured: {join_words([s.lower() for s in unmeasured])}."
    if any(r["provisional"] for r in rows):
        message += " Figures marked automatic are provisional until people or a judge score the replies."
    if judge_error:
        message += f" The judge could not score: {judge_error}"
    return {"message": message, "passed": summary.get("passed"), "benchmarks": rows, "judge_error": judge_error}


def join_words(words: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def announce_finished(validation: JobValidation, *, attempt: int | None = None, judge_error: str = "") -> None:
    """The "validation finished" job event: every automatic scorer (the worker's, the rules, the
    judge where one is configured) has scored; people may still be scoring."""
    payload = finished_payload(validation.summary, judge_error=judge_error)
    severity = JobEvent.Severity.WARNING if judge_error else JobEvent.Severity.INFO
    record_event(validation.job_id, JobEvent.Type.VALIDATION_FINISHED, source="validation",
                 severity=severity, attempt=attempt, payload=payload)
