"""Scoring by people: the QA pages in the admin, under each job validation.

`scoring_urls(model_admin)` gives JobValidationAdmin its routes (wrapped in admin_view, so
staff only; anonymous users go to the login page):

- `<pk>/score/`                                the overview: per benchmark, how many items each
                                                evaluator has scored, the evaluators' agreement,
                                                a button to the first item you have not scored;
- `<pk>/score/emotional_intelligence/<item>/`  one scenario, blind: the conversation, what a good
                                                reply does, and the two replies as Reply A and
                                                Reply B, each scored 1-5 on empathy, clarity and
                                                appropriateness;
- `<pk>/score/brand_voice/<item>/`             one prompt and the trained reply, scored 1-5 on
                                                each characteristic of the set's rubric, with its
                                                anchors on screen.

Only users for whom `models.can_score` is true (the QA group or the `validation.score_replies`
permission) may use them; other staff get a 403 page that says why. Each evaluator keeps their
own scores (ReplyScore rows with scorer "people" and evaluator = the user); every save works the
job's summary out again, so people's scores become the headline as soon as there are any.

Blindness: which reply is A is decided per evaluator and per reply by an HMAC of SECRET_KEY, the
user's pk and the reply's pk (`trained_is_a`), so it is stable across reloads, differs between
evaluators, and cannot be worked out from the page. The page and its form only ever say A and
B; the mapping to base / trained is made here, on the server.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from . import sets, stats
from .models import JobValidation, ReplyScore, ValidationReply, can_score
from .summary import EI_CRITERIA, LABELS, refresh_summary

PEOPLE = "people"
BENCHMARKS = (sets.EMOTIONAL_INTELLIGENCE, sets.BRAND_VOICE)
SCORES = ("1", "2", "3", "4", "5")
MAX_NOTE = 4000

# The judge's rubric (validation/judge.py EI_RUBRIC), worded for people: the 1 and 5 anchors.
EI_RUBRIC: dict[str, dict[str, str]] = {
    "empathy": {
        "name": "Empathy",
        "description": "Does the person feel heard?",
        "1": "Ignores or dismisses the person's feelings; cold, preachy or judgemental.",
        "5": "Recognises and names what the person feels, warmly and specifically.",
    },
    "clarity": {
        "name": "Clarity",
        "description": "Could the person act on it?",
        "1": "Confusing, vague, full of jargon or rambling; nothing to act on.",
        "5": "Plain language, well organised, ends with a clear next step.",
    },
    "appropriateness": {
        "name": "Appropriateness",
        "description": "Is it accurate and safe for this situation?",
        "1": "Harmful or risky advice, promises returns, shames, or misses a needed referral.",
        "5": "Accurate and safe, fits the situation, refers to a professional when needed.",
    },
}


def trained_is_a(user_pk: Any, reply_pk: Any) -> bool:
    """Whether `user` sees reply `reply`'s trained reply as Reply A (else as Reply B)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"blind-order:{user_pk}:{reply_pk}".encode(),
                      hashlib.sha256).digest()
    return bool(digest[0] & 1)


def sides_for(benchmark: str, user_pk: Any, reply_pk: Any) -> list[tuple[str, str, str]]:
    """(form prefix, label, variant) of each reply shown, in the order shown."""
    if benchmark == sets.BRAND_VOICE:
        return [("r", "Reply", ReplyScore.Variant.TRAINED)]
    first, second = ((ReplyScore.Variant.TRAINED, ReplyScore.Variant.BASE) if trained_is_a(user_pk, reply_pk)
                     else (ReplyScore.Variant.BASE, ReplyScore.Variant.TRAINED))
    return [("a", "Reply A", first), ("b", "Reply B", second)]


def variants_of(benchmark: str) -> tuple[str, ...]:
    """The variants a person scores on a benchmark's item: both (blind) or the trained one."""
    if benchmark == sets.EMOTIONAL_INTELLIGENCE:
        return (ReplyScore.Variant.BASE, ReplyScore.Variant.TRAINED)
    return (ReplyScore.Variant.TRAINED,)


def criteria_of(validation: JobValidation, benchmark: str) -> list[dict[str, Any]]:
    """Each criterion: key, name, description and its anchors ({"1": ..., "5": ...})."""
    if benchmark == sets.EMOTIONAL_INTELLIGENCE:
        return [{"key": key, "name": EI_RUBRIC[key]["name"], "description": EI_RUBRIC[key]["description"],
                 "anchors": {"1": EI_RUBRIC[key]["1"], "5": EI_RUBRIC[key]["5"]}} for key in EI_CRITERIA]
    rubric = validation.set_of(sets.BRAND_VOICE)
    return [{"key": c["key"], "name": c.get("name") or c["key"], "description": c.get("description", ""),
             "anchors": {str(k): v for k, v in (c.get("anchors") or {}).items()}}
            for c in (rubric.characteristics if rubric else [])]


# --- Progress and agreement ------------------------------------------------------------------

def replies_of(validation: JobValidation, benchmark: str) -> list[ValidationReply]:
    """The benchmark's replies in the set's order, each with `people` (its people's scores)."""
    people = ReplyScore.objects.filter(scorer=PEOPLE, evaluator__isnull=False).select_related("evaluator")
    return list(validation.replies.filter(benchmark=benchmark).order_by("position", "pk")
                .prefetch_related(Prefetch("scores", queryset=people, to_attr="people")))


def _by_evaluator(reply: ValidationReply) -> dict[int, dict[str, ReplyScore]]:
    out: dict[int, dict[str, ReplyScore]] = {}
    for score in reply.people:
        out.setdefault(score.evaluator_id, {})[score.variant] = score
    return out


def is_scored(reply: ValidationReply, benchmark: str, user_pk: int) -> bool:
    mine = _by_evaluator(reply).get(user_pk, {})
    return all(v in mine for v in variants_of(benchmark))


@dataclass
class Progress:
    benchmark: str
    label: str
    total: int
    evaluators: list[dict[str, Any]] = field(default_factory=list)
    agreement: float | None = None
    agreement_text: str = ""
    compared: int = 0
    mine: set[int] = field(default_factory=set)
    next_item: str | None = None
    items: list[dict[str, Any]] = field(default_factory=list)


def progress(validation: JobValidation, benchmark: str, user, replies: list[ValidationReply] | None = None) -> Progress:
    """Each evaluator's count of items scored and the agreement between evaluators: the share of
    replies two evaluators scored within one point of each other, on each reply's mean score
    (stats.agreement, over every pair of evaluators)."""
    replies = replies_of(validation, benchmark) if replies is None else replies
    variants = variants_of(benchmark)
    done: dict[int, int] = {}
    names: dict[int, str] = {}
    units: list[dict[int, float]] = []  # one per (reply, variant): evaluator -> mean score
    for reply in replies:
        scored = _by_evaluator(reply)
        for evaluator_id, mine in scored.items():
            names[evaluator_id] = _name(next(iter(mine.values())).evaluator)
            if all(v in mine for v in variants):
                done[evaluator_id] = done.get(evaluator_id, 0) + 1
        for variant in variants:
            unit = {e: m for e, mine in scored.items() if variant in mine and (m := mine[variant].mean()) is not None}
            units.append(unit)
    out = Progress(benchmark=benchmark, label=LABELS[benchmark], total=len(replies))
    out.mine = {r.pk for r in replies if is_scored(r, benchmark, user.pk)}
    order = sorted(names, key=lambda e: (e != user.pk, names[e].casefold()))
    if user.pk not in names:
        order.insert(0, user.pk)
        names[user.pk] = _name(user)
    for evaluator_id in order:
        count = done.get(evaluator_id, 0)
        out.evaluators.append({"name": names[evaluator_id], "you": evaluator_id == user.pk, "done": count,
                               "pct": round(100 * count / len(replies)) if replies else 0})
    raters = [e for e in order if any(e in u for u in units)]
    out.compared = sum(sum(1 for a in range(len(raters)) for b in range(a + 1, len(raters))
                           if raters[a] in u and raters[b] in u) for u in units)
    if len(raters) < 2:
        out.agreement_text = "needs two evaluators"
    else:
        nan = float("nan")
        out.agreement = stats.agreement([[u.get(e, nan) for u in units] for e in raters])
        out.agreement_text = ("no reply scored by two evaluators yet" if out.agreement is None else
                              f"{round(out.agreement * 100)} % within one point")
    position = next((i for i, r in enumerate(replies) if r.pk not in out.mine), None)
    out.next_item = replies[position].item_id if position is not None else None
    out.items = [{"number": i + 1, "item_id": r.item_id, "scored": r.pk in out.mine} for i, r in enumerate(replies)]
    return out


def _name(user) -> str:
    return (user.get_full_name() or user.get_username()) if user is not None else "someone"


# --- Views -------------------------------------------------------------------------------------

def scoring_urls(model_admin) -> list:
    wrap = model_admin.admin_site.admin_view
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_score"
    return [
        path("<path:object_id>/score/", wrap(lambda r, object_id: overview_view(model_admin, r, object_id)),
             name=prefix),
        path("<path:object_id>/score/<str:benchmark>/<str:item_id>/",
             wrap(lambda r, object_id, benchmark, item_id: item_view(model_admin, r, object_id, benchmark, item_id)),
             name=f"{prefix}_item"),
    ]


def item_url(model_admin, validation: JobValidation, benchmark: str, item_id: str) -> str:
    opts = model_admin.opts
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_score_item",
                   args=[quote(validation.pk), benchmark, quote(item_id)], current_app=model_admin.admin_site.name)


def overview_url(model_admin, validation: JobValidation) -> str:
    opts = model_admin.opts
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_score", args=[quote(validation.pk)],
                   current_app=model_admin.admin_site.name)


def _context(model_admin, request, validation: JobValidation | None, **extra) -> dict[str, Any]:
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request),
        # The scoring pages use the whole width; the sidebar would only crowd the replies.
        "is_nav_sidebar_enabled": False,
        "opts": opts,
        "validation": validation,
        "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist",
                                  current_app=model_admin.admin_site.name),
        **extra,
    }
    if validation is not None:
        context["change_url"] = reverse(f"admin:{opts.app_label}_{opts.model_name}_change",
                                        args=[quote(validation.pk)], current_app=model_admin.admin_site.name)
        context["overview_url"] = overview_url(model_admin, validation)
    return context


def _denied(model_admin, request) -> TemplateResponse | None:
    if can_score(request.user):
        return None
    context = _context(model_admin, request, None, title="You cannot score replies",
                       qa_group=settings.VALIDATION_QA_GROUP)
    return TemplateResponse(request, "admin/validation/scoring/denied.html", context, status=403)


def _validation(model_admin, request, object_id: str) -> JobValidation:
    validation = model_admin.get_object(request, unquote(object_id))
    if validation is None:
        raise Http404("There is no job validation with that id.")
    return validation


def overview_view(model_admin, request, object_id: str):
    if (denied := _denied(model_admin, request)) is not None:
        return denied
    validation = _validation(model_admin, request, object_id)
    cards = []
    for benchmark in BENCHMARKS:
        card = progress(validation, benchmark, request.user)
        first = card.next_item or (card.items[0]["item_id"] if card.items else None)
        cards.append({
            "progress": card,
            "start_url": item_url(model_admin, validation, benchmark, first) if first else "",
            "start_label": ("Start scoring" if not card.mine else "Continue scoring" if card.next_item
                            else "Review your scores"),
            "items": [{**i, "url": item_url(model_admin, validation, benchmark, i["item_id"])} for i in card.items],
            "blind": benchmark == sets.EMOTIONAL_INTELLIGENCE,
        })
    context = _context(model_admin, request, validation, title=f"Score replies: {validation.job.name}",
                       cards=cards)
    return TemplateResponse(request, "admin/validation/scoring/overview.html", context)


def item_view(model_admin, request, object_id: str, benchmark: str, item_id: str):
    if (denied := _denied(model_admin, request)) is not None:
        return denied
    validation = _validation(model_admin, request, object_id)
    if benchmark not in BENCHMARKS:
        raise Http404(f"People score {' and '.join(BENCHMARKS)}, not {benchmark!r}.")
    item_id = unquote(item_id)
    replies = replies_of(validation, benchmark)
    index = next((i for i, r in enumerate(replies) if r.item_id == item_id), None)
    if index is None:
        raise Http404(f"This validation has no {benchmark} item {item_id!r}.")
    reply = replies[index]
    criteria = criteria_of(validation, benchmark)
    sides = sides_for(benchmark, request.user.pk, reply.pk)
    mine = _by_evaluator(reply).get(request.user.pk, {})
    error = ""
    if request.method == "POST":
        values, notes, error = _read_form(request.POST, sides, criteria)
        if not error:
            with transaction.atomic():
                # One save at a time per validation, so every summary counts every committed score.
                locked = JobValidation.objects.select_for_update().get(pk=validation.pk)
                for prefix, _label, variant in sides:
                    ReplyScore.objects.update_or_create(
                        reply=reply, variant=variant, scorer=PEOPLE, evaluator=request.user,
                        defaults={"criteria": values[prefix], "note": notes[prefix]})
                refresh_summary(locked)
            number = index + 1
            replies = replies_of(validation, benchmark)
            scored = {r.pk for r in replies if is_scored(r, benchmark, request.user.pk)}
            following = [r for r in replies[index + 1:] + replies[:index + 1] if r.pk not in scored]
            if not following:
                messages.success(request, f"Saved item {number}. You have scored all {len(replies)} "
                                          f"{LABELS[benchmark].lower()} items, thank you.")
                return HttpResponseRedirect(overview_url(model_admin, validation))
            messages.success(request, f"Saved item {number} of {len(replies)}.")
            return HttpResponseRedirect(item_url(model_admin, validation, benchmark, following[0].item_id))
        chosen = {prefix: {c["key"]: v for c in criteria if (v := request.POST.get(f"{prefix}-{c['key']}")) in SCORES}
                  for prefix, _l, _v in sides}
        typed = {prefix: request.POST.get(f"{prefix}-note", "") for prefix, _l, _v in sides}
    else:
        chosen = {prefix: {k: str(v) for k, v in (mine[variant].criteria if variant in mine else {}).items()}
                  for prefix, _l, variant in sides}
        typed = {prefix: mine[variant].note if variant in mine else "" for prefix, _l, variant in sides}

    benchmark_set = validation.set_of(benchmark)
    item = (benchmark_set.item(item_id) if benchmark_set else None) or {}
    text = {ReplyScore.Variant.BASE: reply.base_reply, ReplyScore.Variant.TRAINED: reply.trained_reply}
    panels = [{
        "prefix": prefix, "label": label, "text": text[variant], "note": typed[prefix],
        "criteria": [{**c, "field": f"{prefix}-{c['key']}", "value": chosen[prefix].get(c["key"], ""),
                      "options": [{"value": v, "anchor": c["anchors"].get(v, "")} for v in SCORES]}
                     for c in criteria],
    } for prefix, label, variant in sides]
    scored_count = sum(1 for r in replies if is_scored(r, benchmark, request.user.pk))
    context = _context(
        model_admin, request, validation,
        title=f"{LABELS[benchmark]}: item {index + 1} of {len(replies)}",
        benchmark=benchmark, benchmark_label=LABELS[benchmark], blind=benchmark == sets.EMOTIONAL_INTELLIGENCE,
        item_id=item_id, item=item, item_found=bool(item), number=index + 1, total=len(replies),
        category=str(item.get("category") or item.get("topic") or "").replace("_", " "),
        conversation=[{"speaker": "The person" if m.get("role") == "user" else "Earlier reply",
                       "role": m.get("role"), "content": m.get("content", "")} for m in item.get("messages", [])],
        good_reply=list(item.get("good_reply") or []),
        referral=item.get("referral") if item.get("needs_referral") else "",
        needs_referral=bool(item.get("needs_referral")),
        panels=panels, error=error, scored_count=scored_count, already_scored=bool(mine),
        previous_url=item_url(model_admin, validation, benchmark, replies[index - 1].item_id) if index > 0 else "",
        next_url=item_url(model_admin, validation, benchmark, replies[index + 1].item_id)
        if index + 1 < len(replies) else "",
    )
    template = "ei_item.html" if benchmark == sets.EMOTIONAL_INTELLIGENCE else "brand_voice_item.html"
    return TemplateResponse(request, f"admin/validation/scoring/{template}", context)


def _read_form(data, sides, criteria) -> tuple[dict[str, dict[str, int]], dict[str, str], str]:
    """The scores and notes posted, or a message naming what is missing (nothing is saved then)."""
    values: dict[str, dict[str, int]] = {}
    notes: dict[str, str] = {}
    missing: list[str] = []
    problems: list[str] = []
    for prefix, label, _variant in sides:
        values[prefix] = {}
        gaps = []
        for c in criteria:
            raw = data.get(f"{prefix}-{c['key']}", "")
            if raw in SCORES:
                values[prefix][c["key"]] = int(raw)
            else:
                gaps.append(c["name"])
        notes[prefix] = data.get(f"{prefix}-note", "").strip()
        if gaps:
            missing.append(f"{label}: {', '.join(gaps)}")
        if len(notes[prefix]) > MAX_NOTE:
            problems.append(f"the note on {label} is {len(notes[prefix]):,} characters; at most {MAX_NOTE:,}")
    if not criteria:
        problems.append("this set has no rubric to score against")
    error = ""
    if missing:
        error = "Not saved. Give a score from 1 to 5 for " + "; ".join(missing) + "."
    if problems:
        error = (error + " " if error else "Not saved: ") + "; ".join(problems) + "."
    return values, notes, error


__all__ = ["criteria_of", "progress", "replies_of", "scoring_urls", "sides_for", "trained_is_a"]
