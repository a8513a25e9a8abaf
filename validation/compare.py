"""The before/after view and the playground, in the admin under Validation → Job validations.

`compare_urls(model_admin)` gives JobValidationAdmin two pages; `<id>` is the job's id (a UUID)
or the job validation's own number:

- `<id>/compare/`     every emotional-intelligence scenario and brand-voice prompt: the
                      conversation, then the base and the trained reply side by side, each with
                      the rules' checks (✓ / ✗ / n/a) and its scores by scorer (people's mean per
                      criterion and how many scored it, the judge's, the automatic ones), under a
                      strip with the validation's headline per benchmark. `?benchmark=` filters
                      (emotional_intelligence, brand_voice); `?sort=` is `position` (the set's
                      order), `best` or `worst` (by the trained − base gap of the best scorer that
                      scored both replies: people, else the judge, else the rules' checks);
- `<id>/playground/`  type a message, see the base and the trained reply (validation.playground
                      runs them in this process where the base model fits, and says plainly
                      when it does not).

Both are for staff who may view validations or jobs and may see this job
(TrainingJob.objects.visible_to); anyone else gets a 404.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse

from core import humanize
from training.models import TrainingJob

from . import playground, rules, sets
from .models import JobValidation, ReplyScore, can_score
from .services import reply_pairs
from .summary import EI_CRITERIA, LABELS, benchmark_rows

logger = logging.getLogger("validation.compare")

BENCHMARKS = (sets.EMOTIONAL_INTELLIGENCE, sets.BRAND_VOICE)  # the ones with replies
SORTS = {"position": "Set order", "best": "Biggest improvement first", "worst": "Biggest regression first"}
SCALE = (1, 5)  # people's and the judge's scores

CHECK_LABELS = {
    "names_feeling_first": "Names the feeling first",
    "plain_language": "Plain language (short sentences)",
    "concrete_numbers": "Gives a concrete number",
    "one_next_step": "Ends with one question or next step",
    "referrals_when_needed": "Refers to professional or crisis help",
    "never_promises_returns": "Promises no returns",
}
NOT_APPLICABLE = {"referrals_when_needed": "this one does not need a referral"}
ROLE_LABELS = {"user": "Person", "assistant": "Assistant (earlier reply)", "system": "System"}


def compare_urls(model_admin) -> list:
    wrap = model_admin.admin_site.admin_view
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}"
    return [
        path("<str:object_id>/compare/", wrap(lambda r, object_id: compare_view(model_admin, r, object_id)),
             name=f"{prefix}_compare"),
        path("<str:object_id>/playground/", wrap(lambda r, object_id: playground_view(model_admin, r, object_id)),
             name=f"{prefix}_playground"),
    ]


# --- Who may see it ---------------------------------------------------------------------------


def _may_view(model_admin, request) -> bool:
    return model_admin.has_view_permission(request) or request.user.has_perm("training.view_trainingjob")


def job_for(model_admin, request, object_id: str) -> TrainingJob:
    """The job by its id or its validation's; a 404 for a job this user may not see."""
    visible = TrainingJob.objects.visible_to(request.user).select_related("base_model")
    job = None
    try:
        job = visible.filter(pk=uuid.UUID(object_id)).first()
    except ValueError:
        if object_id.isdigit():
            job = visible.filter(validation__pk=int(object_id)).first()
    if job is None or not _may_view(model_admin, request):
        raise Http404("No such job validation.")
    return job


def _links(job: TrainingJob, validation: JobValidation | None) -> dict[str, str]:
    links = {"compare": reverse("admin:validation_jobvalidation_compare", args=[job.pk]),
             "playground": reverse("admin:validation_jobvalidation_playground", args=[job.pk])}
    for name, url_name, args in (("dashboard", "admin:training_trainingjob_dashboard", [job.pk]),
                                 ("job", "admin:training_trainingjob_change", [job.pk])):
        with contextlib.suppress(NoReverseMatch):
            links[name] = reverse(url_name, args=args)
    if validation is not None:
        links["validation"] = reverse("admin:validation_jobvalidation_change", args=[validation.pk])
    links["changelist"] = reverse("admin:validation_jobvalidation_changelist")
    return links


def _context(model_admin, request, job: TrainingJob, validation: JobValidation | None, title: str,
             page: str) -> dict[str, Any]:
    return {**model_admin.admin_site.each_context(request), "title": title, "subtitle": None,
            "opts": model_admin.opts, "is_nav_sidebar_enabled": False, "job": job, "validation": validation, "links": _links(job, validation),
            "page": page}


# --- The headline strip -----------------------------------------------------------------------


def summary_strip(validation: JobValidation | None) -> list[dict[str, Any]]:
    """One cell per benchmark in the seed's order: base → trained, the change, the verdict."""
    return benchmark_rows(validation.summary if validation else None)


def overall(validation: JobValidation | None) -> tuple[str, str]:
    """(the verdict in words, its state) for the strip's heading."""
    if validation is None:
        return "Not validated yet: the job's first attempt has not been configured.", "none"
    if validation.status == JobValidation.Status.PENDING:
        return "Waiting for the worker's results.", "none"
    passed = (validation.summary or {}).get("passed")
    if passed is None:
        return "Not every benchmark was measured.", "none"
    return ("Passed every threshold.", "pass") if passed else ("Short of at least one threshold.", "fail")


# --- One item ---------------------------------------------------------------------------------


@dataclass
class Difference:
    value: float  # trained − base as a share of the scale (−1 to 1): what sorting compares
    text: str  # "+1.33 of 5", "+2 of 4 checks"
    scorer: str  # "people (3 evaluators)", "judge: gpt-4o", "automatic checks"
    state: str  # "up" | "down" | "same"


@dataclass
class Side:
    name: str  # "base" | "trained"
    label: str
    reply: str
    hit_cap: bool
    checks: list[dict[str, str]]
    scores: list[dict[str, Any]]
    cap_text: str = ""  # "hit the 192-token cap" when generation stopped at the cap
    note: str = ""  # why people's or the judge's scores are missing


@dataclass
class Item:
    benchmark: str
    benchmark_label: str
    id: str
    position: int
    category: str
    needs_referral: bool
    referral: str
    messages: list[dict[str, str]]
    good_reply: list[str]
    reference: str
    sides: list[Side]
    difference: Difference | None = None
    anchor: str = field(default="")


def _number(value: float | None) -> str:
    return humanize.significant(value, 3, trim=True) if value is not None else "—"


def _mean(values: Iterable[float]) -> float | None:
    found = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    return sum(found) / len(found) if found else None


def _check_rows(checks: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    order = list(rules.CHECKS)
    for key, value in sorted(checks.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        label = CHECK_LABELS.get(key, key.replace("_", " ").capitalize())
        why = (rules.CHECKS[key].__doc__ or "").strip() if key in rules.CHECKS else ""
        if value is None:
            rows.append({"label": label, "mark": "n/a", "state": "na", "title": NOT_APPLICABLE.get(key, "does not apply")})
        else:
            rows.append({"label": label, "mark": "✓" if value else "✗", "state": "met" if value else "missed",
                         "title": why})
    return rows


def _checks_met(checks: dict[str, Any]) -> tuple[int, int]:
    applicable = [v for v in checks.values() if v is not None]
    return sum(bool(v) for v in applicable), len(applicable)


def _family(scorer: str) -> str:
    return "people" if scorer == "people" else "judge" if scorer.startswith("judge:") else scorer


def _score_blocks(scores: dict[str, list[dict[str, Any]]], criteria: list[tuple[str, str]],
                  checks: dict[str, Any], reference: list[Any] | None) -> list[dict[str, Any]]:
    """People's, the judge's and the automatic scores of one reply, each as rows of text."""
    blocks = []
    names = dict(criteria)
    ordered = sorted(scores, key=lambda s: (0 if s == "people" else 1 if s.startswith("judge:") else 2, s))
    for scorer in ordered:
        entries = [e for e in scores[scorer] if isinstance(e, dict)]
        if not entries:
            continue
        keys = [k for k, _ in criteria if any(k in e for e in entries)]
        keys += sorted({k for e in entries for k in e} - set(keys))
        rows = []
        for key in keys:
            values = [e[key] for e in entries if isinstance(e.get(key), int | float)]
            mean = _mean(values)
            if mean is None:
                continue
            rows.append({"label": names.get(key, key.replace("_", " ").capitalize()), "value": _number(mean),
                         "n": len(values), "low": mean < 3})
        per_entry = [_mean(v for v in e.values() if isinstance(v, int | float)) for e in entries]
        overall_mean = _mean(m for m in per_entry if m is not None)
        if scorer == "people":
            count = len(entries)
            title = f"People · {count} evaluator{'s' if count != 1 else ''}"
        else:
            title = f"Judge · {scorer.removeprefix('judge:')}" if scorer.startswith("judge:") else scorer.capitalize()
        blocks.append({"title": title, "rows": rows, "mean": _number(overall_mean), "per_person": scorer == "people",
                       "family": _family(scorer)})
    met, applicable = _checks_met(checks)
    automatic = [{"label": "Checks met", "value": f"{met} of {applicable}", "n": None, "low": False}] if applicable else []
    if reference and len(reference) == 2 and isinstance(reference[0], int | float) and reference[1]:
        ppl = math.exp(reference[0] / reference[1])
        automatic.append({"label": "Reference reply's perplexity (lower is better)", "value": _number(ppl),
                          "n": None, "low": False})
    if automatic:
        blocks.append({"title": "Automatic", "rows": automatic, "mean": None, "per_person": False,
                       "family": "automatic"})
    return blocks


def _family_mean(scores: dict[str, list[dict[str, Any]]], family: str, criteria: list[str]) -> tuple[float | None, str]:
    """The mean over a family's scores of each score's mean over the criteria, and its scorer name."""
    chosen = {s: e for s, e in scores.items() if _family(s) == family}
    means = []
    for entries in chosen.values():
        for entry in entries:
            values = [entry.get(c) for c in criteria] if criteria else list(entry.values())
            mean = _mean(v for v in values if isinstance(v, int | float))
            if mean is None and criteria:
                mean = _mean(v for v in entry.values() if isinstance(v, int | float))
            if mean is not None:
                means.append(mean)
    if family == "people":
        name = f"people ({len(chosen.get('people', []))} evaluator{'s' if len(chosen.get('people', [])) != 1 else ''})"
    else:
        name = ", ".join(s.replace("judge:", "judge: ") for s in sorted(chosen))
    return _mean(means), name


def difference(pair: dict[str, Any], criteria: list[str]) -> Difference | None:
    """The trained − base gap by the best scorer that scored both replies: people, the judge,
    else the rules' checks (the share of applicable checks met)."""
    base, trained = pair["base"], pair["trained"]
    span = SCALE[1] - SCALE[0]
    for family in ("people", "judge"):
        b, _ = _family_mean(base["scores"], family, criteria)
        t, name = _family_mean(trained["scores"], family, criteria)
        if b is not None and t is not None:
            gap = t - b
            figure = humanize.significant(abs(gap), 3, trim=True)
            sign = "+" if gap > 0 else "-" if gap < 0 else ""
            return Difference(gap / span, f"{sign}{figure} of {SCALE[1]}" if round(gap, 2) else f"±0 of {SCALE[1]}",
                              name, _state(gap))
    met_b, n = _checks_met(base["checks"])
    met_t, n_t = _checks_met(trained["checks"])
    if not n or not n_t:
        return None
    gap = met_t / n_t - met_b / n
    moved = met_t - met_b
    text = f"{moved:+d} of {n_t} checks" if moved else f"±0 of {n_t} checks"
    return Difference(gap, text, "automatic checks", _state(gap))


def _state(gap: float) -> str:
    return "up" if gap > 1e-9 else "down" if gap < -1e-9 else "same"


def token_cap(validation: JobValidation, kind: str) -> int | None:
    """The new-token cap the worker generated the replies with (its report says)."""
    cap = (validation.evaluator(kind).get("generation") or {}).get("max_new_tokens")
    return cap if isinstance(cap, int) and not isinstance(cap, bool) else None


def compare_items(job: TrainingJob, validation: JobValidation, benchmark: str = "", sort: str = "position") -> list[Item]:
    """Every item (of `benchmark`, if given) in the order asked for."""
    pairs = reply_pairs(job, benchmark or None)
    sets_by_kind = {s.kind: s for s in validation.sets.all()}
    references = {(b, i): (a or {}).get("reference") or {}
                  for b, i, a in validation.replies.values_list("benchmark", "item_id", "automatic")}
    specs = {kind: {item["id"]: item for item in row.items} for kind, row in sets_by_kind.items()}
    rubric = {c["key"]: c.get("name") or c["key"] for c in
              (sets_by_kind[sets.BRAND_VOICE].characteristics if sets.BRAND_VOICE in sets_by_kind else [])}
    criteria_of = {sets.EMOTIONAL_INTELLIGENCE: [(c, c.capitalize()) for c in EI_CRITERIA],
                   sets.BRAND_VOICE: list(rubric.items())}
    positions: dict[str, int] = {}
    caps = {kind: token_cap(validation, kind) for kind in BENCHMARKS}
    items = []
    for pair in pairs:
        kind = pair["benchmark"]
        positions[kind] = positions.get(kind, 0) + 1
        spec = specs.get(kind, {}).get(pair["id"], {})
        criteria = criteria_of.get(kind, [])
        reference = references.get((kind, pair["id"]), {})
        sides = []
        for name, label in (("base", "Base model"), ("trained", "Trained model")):
            side = pair[name]
            blocks = _score_blocks(side["scores"], criteria, side["checks"], reference.get(name))
            note = ""
            if not any(b["family"] in ("people", "judge") for b in blocks):
                note = ("People and the judge score brand voice on the trained replies only."
                        if kind == sets.BRAND_VOICE and name == "base" else "Not scored by people or the judge yet.")
            cap = caps.get(kind)
            sides.append(Side(name=name, label=label, reply=side["reply"], hit_cap=side["hit_cap"],
                              checks=_check_rows(side["checks"]), scores=blocks, note=note,
                              cap_text=f"hit the {cap}-token cap" if cap else "hit the token cap"))
        category = str(pair.get("category") or "")
        items.append(Item(
            benchmark=kind, benchmark_label=LABELS.get(kind, kind), id=pair["id"], position=positions[kind],
            category=category.replace("_", " ").capitalize(), needs_referral=pair["needs_referral"],
            referral=str(spec.get("referral") or ""),
            messages=[{"role": ROLE_LABELS.get(m.get("role"), m.get("role", "")), "role_key": m.get("role", ""),
                       "content": m.get("content", "")} for m in pair["messages"]],
            good_reply=[str(g) for g in spec.get("good_reply") or []], reference=str(spec.get("reference") or ""),
            sides=sides, difference=difference(pair, [k for k, _ in criteria]), anchor=f"{kind}-{pair['id']}"))
    order = {k: i for i, k in enumerate(BENCHMARKS)}
    items.sort(key=lambda i: (order.get(i.benchmark, 9), i.position))
    if sort in ("best", "worst"):
        sign = -1 if sort == "best" else 1
        items.sort(key=lambda i: (i.difference is None, sign * i.difference.value if i.difference else 0))
    return items


def blind_scoring_left(validation: JobValidation | None, user) -> tuple[int, int]:
    """(scenarios this evaluator has scored blind, scenarios in all), for a member of the QA group
    or anyone who has begun scoring this validation; (0, 0) for everyone else (an admin who never
    scores is not asked). This page says which reply is the trained one."""
    if validation is None or not can_score(user):
        return 0, 0
    replies = validation.replies.filter(benchmark=sets.EMOTIONAL_INTELLIGENCE)
    mine = ReplyScore.objects.filter(reply__in=replies, scorer="people", evaluator=user)
    base = set(mine.filter(variant=ReplyScore.Variant.BASE).values_list("reply_id", flat=True))
    trained = set(mine.filter(variant=ReplyScore.Variant.TRAINED).values_list("reply_id", flat=True))
    done = len(base & trained)
    if not done and not user.groups.filter(name=settings.VALIDATION_QA_GROUP).exists():
        return 0, 0
    return done, replies.count()


def compare_view(model_admin, request, object_id: str):
    job = job_for(model_admin, request, object_id)
    validation = JobValidation.objects.filter(job=job).prefetch_related("sets").first()
    done, total = blind_scoring_left(validation, request.user)
    if done < total and request.GET.get("reveal") != "1":
        # A QA evaluator who has not finished would lose the blindness of the scenarios left.
        context = {**_context(model_admin, request, job, validation, f"Before and after: {job.name}", "compare"),
                   "done": done, "total": total,
                   "score_url": reverse("admin:validation_jobvalidation_score", args=[validation.pk]),
                   "reveal_url": f"{request.path}?reveal=1"}
        return TemplateResponse(request, "admin/validation/compare/blind_first.html", context)
    benchmark = request.GET.get("benchmark", "")
    benchmark = benchmark if benchmark in BENCHMARKS else ""
    sort = request.GET.get("sort", "position")
    sort = sort if sort in SORTS else "position"
    items = compare_items(job, validation, benchmark, sort) if validation is not None else []
    counts = dict.fromkeys(BENCHMARKS, 0)
    if validation is not None:
        for kind in validation.replies.values_list("benchmark", flat=True):
            counts[kind] = counts.get(kind, 0) + 1
    verdict, verdict_state = overall(validation)
    context = {
        **_context(model_admin, request, job, validation, f"Before and after: {job.name}", "compare"),
        "strip": summary_strip(validation), "verdict": verdict, "verdict_state": verdict_state,
        "items": items, "benchmark": benchmark, "sort": sort, "sorts": SORTS,
        "benchmarks": [(k, LABELS[k], counts.get(k, 0)) for k in BENCHMARKS], "total": sum(counts.values()),
        "scored_by": sorted({d.scorer for i in items if (d := i.difference)}),
        "revealed": request.GET.get("reveal") == "1",  # kept through the filters
    }
    return TemplateResponse(request, "admin/validation/compare/compare.html", context)


# --- The playground ---------------------------------------------------------------------------


class PlaygroundForm(forms.Form):
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 5, "placeholder": "Type what a client might say…"}),
                              strip=False)
    system_prompt = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 3}),
                                    help_text="Sent before your message to both models. Clear it to send none.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cap = playground.max_new_tokens_cap()
        self.fields["max_new_tokens"] = forms.IntegerField(
            min_value=1, max_value=cap, initial=cap, label="Longest reply (tokens)",
            help_text=f"At most {humanize.integer(cap)}; a reply usually ends sooner, at its end-of-turn token.")

    def _capped(self, name: str, what: str) -> str:
        value = self.cleaned_data.get(name, "")
        limit = playground.max_prompt_chars()
        if len(value) > limit:
            raise forms.ValidationError(
                f"{what} is {humanize.integer(len(value))} characters; the playground takes at most "
                f"{humanize.integer(limit)}. Shorten it and try again.")
        return value

    def clean_message(self) -> str:
        value = self._capped("message", "Your message")
        if not value.strip():
            raise forms.ValidationError("Type a message first.")
        return value

    def clean_system_prompt(self) -> str:
        return self._capped("system_prompt", "The system prompt")


def playground_view(model_admin, request, object_id: str):
    job = job_for(model_admin, request, object_id)
    validation = JobValidation.objects.filter(job=job).first()
    fit = playground.where_it_runs(job.base_model)
    adapter = playground.adapter_state(job)
    prompt, prompt_source = playground.default_system_prompt(job)
    initial = {"system_prompt": prompt, "max_new_tokens": playground.max_new_tokens_cap()}
    answer, error = None, ""
    if request.method == "POST" and fit.ok and adapter.ok:
        form = PlaygroundForm(request.POST, initial=initial)
        if form.is_valid():
            data = form.cleaned_data
            try:
                answer = playground.answer(job, data["message"], data["system_prompt"], data["max_new_tokens"])
            except playground.PlaygroundError as exc:
                error = str(exc)
            except Exception as exc:  # a model that fails to load or generate: said on the page, never a 500
                logger.exception("playground failed for job %s", job.pk)
                error = f"The models could not answer: {type(exc).__name__}: {exc}"
    else:
        form = PlaygroundForm(initial=initial)
    context = {
        **_context(model_admin, request, job, validation, f"Playground: {job.name}", "playground"),
        "form": form, "fit": fit, "adapter": adapter, "answer": answer, "error": error,
        "answer_sides": ([{"name": "base", "label": "Base model (adapter off)", "reply": answer.base},
                          {"name": "trained", "label": "Trained model", "reply": answer.trained}] if answer else []),
        "prompt_source": prompt_source, "job_prompt": prompt, "base_model": job.base_model,
        "runnable": fit.ok and adapter.ok, "max_new_tokens": playground.max_new_tokens_cap(),
        "max_prompt_chars": humanize.integer(playground.max_prompt_chars()),
        "loaded": playground.loaded_model(),
    }
    return TemplateResponse(request, "admin/validation/compare/playground.html", context)
