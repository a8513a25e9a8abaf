"""Scoring a job's replies with the judge model (validation.judge), stored as ReplyScore rows.

    judge_replies(job_id)   # every emotional-intelligence pair (both orders) and brand-voice reply

Runs as a Celery task once the worker's results are recorded, when LLM_JUDGE_BASE_URL and
LLM_JUDGE_MODEL are set. An item the judge could not score (retries spent, malformed answers)
is skipped and counted; a permanent refusal (bad key, unknown model) stops the run. Scores are
replaced, not added to, when the judge runs again. Usage (calls, tokens, cost) goes on the
validation, beside the summary.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.db import transaction

from . import judge, sets
from .models import JobValidation, ReplyScore, ValidationReply
from .summary import announce_finished, refresh_summary

logger = logging.getLogger("validation")


def judge_config() -> judge.JudgeConfig | None:
    return judge.JudgeConfig.from_env(os.environ)


def _store(reply: ValidationReply, variant: str, scorer: str, criteria: dict[str, Any], details: dict[str, Any]) -> None:
    ReplyScore.objects.update_or_create(reply=reply, variant=variant, scorer=scorer, evaluator=None,
                                        defaults={"criteria": criteria, "details": details})


def judge_replies(job_id: Any, *, config: judge.JudgeConfig | None = None) -> dict[str, Any]:
    """Score the job's replies with the judge; returns what was done and what it cost."""
    config = config or judge_config()
    validation = JobValidation.objects.filter(job_id=job_id).prefetch_related("sets").first()
    if config is None or validation is None:
        return {"scored": 0, "skipped": 0, "reason": "no judge configured" if config is None else "no validation"}
    by_kind = {s.kind: s for s in validation.sets.all()}
    scored = skipped = 0
    error = ""
    with judge.JudgeClient(config) as client:
        for reply in validation.replies.all():
            benchmark = by_kind.get(reply.benchmark)
            item = benchmark.item(reply.item_id) if benchmark else None
            if item is None:
                continue
            try:
                if reply.benchmark == sets.EMOTIONAL_INTELLIGENCE:
                    verdict = judge.judge_pair_both_orders(client, item["messages"], item.get("good_reply", []),
                                                           reply.base_reply, reply.trained_reply)
                    details = {"position_bias": verdict.position_bias, "prompt_tokens": verdict.prompt_tokens,
                               "completion_tokens": verdict.completion_tokens,
                               "reasons": [verdict.base_first.reason, verdict.trained_first.reason]}
                    _store(reply, ReplyScore.Variant.BASE, verdict.scorer, verdict.base, details)
                    _store(reply, ReplyScore.Variant.TRAINED, verdict.scorer, verdict.trained, details)
                else:
                    voice = judge.judge_brand_voice(client, item["messages"], reply.trained_reply,
                                                    benchmark.characteristics, bool(item.get("needs_referral")))
                    _store(reply, ReplyScore.Variant.TRAINED, voice.scorer, voice.scores,
                           {"reason": voice.reason, "prompt_tokens": voice.prompt_tokens,
                            "completion_tokens": voice.completion_tokens})
                scored += 1
            except judge.JudgeError as exc:
                if exc.permanent:
                    error = exc.message
                    logger.warning("job %s: the judge refused: %s", job_id, exc.message)
                    break
                skipped += 1
                logger.warning("job %s: the judge could not score %s %s: %s", job_id, reply.benchmark,
                               reply.item_id, exc.message)
        usage = client.usage.to_dict()
    with transaction.atomic():
        validation = JobValidation.objects.select_for_update().get(pk=validation.pk)
        validation.judge_usage = {**usage, "model": config.model, "scored": scored, "skipped": skipped,
                                  "error": error}
        refresh_summary(validation, save_fields=["judge_usage"])
        announce_finished(validation, judge_error=error)
    return {"scored": scored, "skipped": skipped, "error": error, "usage": usage}
