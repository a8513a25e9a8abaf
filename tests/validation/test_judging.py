"""A job's replies scored by the judge model (validation.judging) through a local server that
speaks the OpenAI chat-completions API: scores stored per reply and variant, the summary's
headline moves from the rules to the judge, usage recorded, a refusal stops the run."""

from __future__ import annotations

import pytest

from tests.validation.judge_standin import JudgeStandIn, rule_scores
from tests.validation.results import GOOD, report, suite_of, worker_results
from training.models import JobEvent
from validation import sets
from validation.judge import JudgeConfig
from validation.judging import judge_replies
from validation.models import JobValidation, ReplyScore

pytestmark = pytest.mark.django_db
KEY = "sk-standin-judge-0000"


@pytest.fixture
def judge_api():
    with JudgeStandIn(api_key=KEY, position_bias=1) as api:
        yield api


def config(api, **overrides) -> JudgeConfig:
    return JudgeConfig(**{"base_url": api.base_url, "model": "standin-judge", "api_key": KEY, "timeout_s": 5.0,
                          "backoff_base_s": 0.01, "price_per_million_input": 2.0,
                          "price_per_million_output": 8.0} | overrides)


def test_the_judge_scores_every_reply_and_takes_the_headline(job, judge_api, django_capture_on_commit_callbacks):
    validation = report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    outcome = judge_replies(job.pk, config=config(judge_api))
    assert (outcome["scored"], outcome["skipped"], outcome["error"]) == (80, 0, "")
    # Both orders for each of the 50 scenarios, one call for each of the 30 brand-voice replies.
    assert len(judge_api.requests) == 50 * 2 + 30
    ei_scores = ReplyScore.objects.filter(reply__benchmark=sets.EMOTIONAL_INTELLIGENCE, scorer="judge:standin-judge")
    assert ei_scores.count() == 100
    # The stand-in adds 1 to whichever reply is labelled A; judged in both orders it adds 0.5 to each.
    trained = ei_scores.filter(variant="trained").first()
    assert trained.criteria == {k: v + 0.5 for k, v in rule_scores(GOOD).items()}
    assert trained.details["position_bias"] == 1.0

    validation = JobValidation.objects.get(pk=validation.pk)
    ei = validation.summary["benchmarks"][sets.EMOTIONAL_INTELLIGENCE]
    assert (ei["scorer"], ei["provisional"], ei["n"]) == ("judge:standin-judge", False, 50)
    voice = validation.summary["benchmarks"][sets.BRAND_VOICE]
    assert voice["scorer"] == "judge:standin-judge" and voice["n"] == 30
    usage = validation.judge_usage
    assert usage["calls"] == 130 and usage["scored"] == 80
    assert usage["cost_usd"] == pytest.approx((usage["prompt_tokens"] * 2 + usage["completion_tokens"] * 8) / 1e6)


def test_running_the_judge_again_replaces_its_scores(job, judge_api, django_capture_on_commit_callbacks):
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    judge_replies(job.pk, config=config(judge_api))
    judge_replies(job.pk, config=config(judge_api))
    assert ReplyScore.objects.filter(scorer="judge:standin-judge").count() == 100 + 30


def test_a_refusal_stops_the_run_and_says_why(job, judge_api, django_capture_on_commit_callbacks):
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    outcome = judge_replies(job.pk, config=config(judge_api, api_key="sk-wrong-key-9999"))
    assert outcome["scored"] == 0 and "9999" in outcome["error"] and "sk-wrong" not in outcome["error"]
    assert len(judge_api.requests) == 1
    validation = JobValidation.objects.get(job=job)
    assert validation.summary["benchmarks"][sets.EMOTIONAL_INTELLIGENCE]["scorer"].startswith("automatic")


def test_without_a_judge_nothing_is_sent(job, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.delenv("LLM_JUDGE_BASE_URL", raising=False)
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    assert judge_replies(job.pk)["reason"] == "no judge configured"


def test_validation_finished_is_told_again_with_the_judges_figures(job, judge_api, django_capture_on_commit_callbacks):
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    judge_replies(job.pk, config=config(judge_api))
    judge_replies(job.pk, config=config(judge_api, api_key="sk-wrong-key-9999"))
    told = JobEvent.objects.filter(job=job, event_type=JobEvent.Type.VALIDATION_FINISHED).order_by("pk")
    automatic, judged, refused = (e.payload for e in told)
    ei = {p["key"]: p for p in judged["benchmarks"]}[sets.EMOTIONAL_INTELLIGENCE]
    assert ei["scorer"] == "judge:standin-judge" and ei["provisional"] is False
    assert {p["key"]: p for p in automatic["benchmarks"]}[sets.EMOTIONAL_INTELLIGENCE]["provisional"] is True
    assert refused["judge_error"] and "9999" in refused["message"] and "sk-wrong" not in refused["message"]
    assert told.last().severity == JobEvent.Severity.WARNING
