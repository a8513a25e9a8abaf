"""What the worker's validation results become: the suite it was sent, replies checked by the
rules, a summary per benchmark against the seed's thresholds, a critical event on forgetting,
the artifact's headline figures."""

from __future__ import annotations

import json

import pytest

from artifacts.models import ModelArtifact
from core import storage
from tests.validation.results import report, suite_of, worker_results
from training.models import JobEvent
from training.services.ingest import compact_validation
from validation import sets
from validation.models import BenchmarkSet, JobValidation, ReplyScore, ReportShare
from validation.services import prepare_suite, refresh_summary, upload_set
from validation.share import token_hash

pytestmark = pytest.mark.django_db


def test_the_worker_is_sent_the_builtin_suite_once_and_every_attempt_reuses_it(job):
    suite = suite_of(job)
    assert suite["system_prompt"] is None
    assert [len(suite[k]["items"]) for k in sets.KINDS] == [50, 100, 30]
    assert len(suite[sets.BRAND_VOICE]["characteristics"]) == 10
    assert all(len(suite[k]["sha256"]) == 64 for k in sets.KINDS)
    first = JobValidation.objects.get(job=job)
    assert sorted(first.sets.values_list("kind", flat=True)) == sorted(sets.KINDS)
    # A set attached after the first attempt started does not change what the job is validated with.
    upload_set(user=job.created_by, kind=sets.KNOWLEDGE_RETENTION, name="mine", version="1",
               data=_question_file(1)).jobs.add(job)
    assert suite_of(job) == suite


def _question_file(count: int) -> bytes:
    return "\n".join(json.dumps({"id": f"q{i}", "topic": "taxes", "question": f"Question {i}?",
                                 "options": ["one", "two", "three", "four"], "answer": "B",
                                 "explanation": "Because."}) for i in range(count)).encode()


def test_the_most_specific_attached_set_wins(job, owner):
    on_dataset = upload_set(user=owner, kind=sets.KNOWLEDGE_RETENTION, name="team", version="1", data=_question_file(2))
    on_dataset.datasets.add(job.training_file)
    on_job = upload_set(user=owner, kind=sets.KNOWLEDGE_RETENTION, name="job", version="1", data=_question_file(3))
    on_job.jobs.add(job)
    suite = suite_of(job)
    assert suite[sets.KNOWLEDGE_RETENTION]["name"] == "job" and len(suite[sets.KNOWLEDGE_RETENTION]["items"]) == 3
    assert suite[sets.EMOTIONAL_INTELLIGENCE]["name"] == "elena-emotional-intelligence"


def test_an_upload_with_bad_records_is_refused_and_nothing_is_written(owner):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        upload_set(user=owner, kind=sets.KNOWLEDGE_RETENTION, name="bad", version="1",
                   data=b'{"id": "q1"}\n{oops', file_name="bad.jsonl")
    messages = caught.value.message_dict["file"]
    assert "bad.jsonl, line 1, field 'topic': must name the topic (for example 'taxes')" in messages
    assert "bad.jsonl, line 2: is not valid JSON (Expecting property name enclosed in double quotes at column 2)" in messages
    assert not BenchmarkSet.objects.filter(name="bad").exists()


def test_results_become_a_summary_against_the_thresholds(job, django_capture_on_commit_callbacks):
    validation = report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    assert validation.status == JobValidation.Status.COMPLETE
    summary = validation.summary["benchmarks"]

    ppl = summary["perplexity"]
    assert ppl["passed"] is False and ppl["threshold"] == 30.0  # exp(2.9) -> exp(2.7): 18.1 %
    low, high = ppl["interval"]
    assert low <= ppl["value"] <= high

    ei = summary[sets.EMOTIONAL_INTELLIGENCE]
    assert ei["scorer"] == "automatic (reference-reply likelihood)" and ei["provisional"] is True
    assert ei["value"] == pytest.approx((1 - 2.71828 ** 1.2 / 2.71828 ** 2.0) * 100, rel=1e-3)  # exp(1.2) vs exp(2)
    assert ei["passed"] is True
    assert ei["details"]["checks"]["trained"] == 1.0 and ei["details"]["checks"]["base"] < 0.5

    retention = summary[sets.KNOWLEDGE_RETENTION]
    assert retention["base"] == 0.75 and retention["value"] == 100.0 and retention["passed"] is True
    assert retention["details"]["per_topic"]["taxes"]["n"] == 25

    voice = summary[sets.BRAND_VOICE]
    assert voice["value"] == 100.0 and voice["passed"] is True and voice["flagged"] == []
    assert voice["scorer"] == "automatic (6 of 10 characteristics checkable)"

    assert validation.summary["passed"] is False  # perplexity is short of 30 %
    assert validation.replies.count() == 80
    job.refresh_from_db()
    assert job.results["validation_headline"]["forgetting_retention_pct"] == 100.0
    # The job's row keeps the figures, not the replies (the event's payload has them).
    compact = compact_validation({"evaluators": worker_results(suite_of(job))})["evaluators"]
    assert "items" not in compact["brand_voice"] and "per_sample" not in compact["perplexity"]
    assert compact["perplexity"]["base"] == 17.9


def test_forgetting_raises_a_critical_event(job, django_capture_on_commit_callbacks):
    validation = report(job, worker_results(suite_of(job), forgotten=10), django_capture_on_commit_callbacks)
    retention = validation.summary["benchmarks"][sets.KNOWLEDGE_RETENTION]
    assert retention["value"] < 95.0 and retention["passed"] is False
    event = JobEvent.objects.get(job=job, event_type=JobEvent.Type.ANOMALY)
    assert (event.severity, event.anomaly_kind) == (JobEvent.Severity.CRITICAL, "forgetting")


def test_one_failed_evaluator_leaves_the_others_standing(job, django_capture_on_commit_callbacks):
    validation = report(job, worker_results(suite_of(job), error=sets.BRAND_VOICE), django_capture_on_commit_callbacks)
    assert validation.status == JobValidation.Status.PARTIAL
    voice = validation.summary["benchmarks"][sets.BRAND_VOICE]
    assert voice["status"] == "error" and voice["passed"] is None
    assert voice["headline"] == "not measured: CUDA out of memory" and voice["text"]["verdict"] == "not measured"
    assert validation.summary["benchmarks"][sets.KNOWLEDGE_RETENTION]["status"] == "ok"
    assert validation.summary["passed"] is None


def test_scores_from_people_take_over_from_the_rules(job, owner, django_capture_on_commit_callbacks):
    validation = report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    for reply in validation.replies.filter(benchmark=sets.EMOTIONAL_INTELLIGENCE)[:10]:
        ReplyScore.objects.create(reply=reply, variant="base", scorer="people", evaluator=owner,
                                  criteria={"empathy": 2, "clarity": 3, "appropriateness": 2})
        ReplyScore.objects.create(reply=reply, variant="trained", scorer="people", evaluator=owner,
                                  criteria={"empathy": 5, "clarity": 4, "appropriateness": 4})
    for reply in validation.replies.filter(benchmark=sets.BRAND_VOICE)[:2]:
        ReplyScore.objects.create(reply=reply, variant="trained", scorer="people", evaluator=owner,
                                  criteria={"warmth": 5, "directness": 2})
    summary = refresh_summary(validation)["benchmarks"]
    ei = summary[sets.EMOTIONAL_INTELLIGENCE]
    assert (ei["scorer"], ei["n"], ei["of"]) == ("people (1 evaluator)", 10, 50)
    assert ei["value"] == pytest.approx((13 / 3 - 7 / 3) / (7 / 3) * 100)
    voice = summary[sets.BRAND_VOICE]
    assert voice["trained"] == 3.5 and voice["value"] == 70.0 and voice["passed"] is False
    assert len(voice["flagged"]) == 2  # directness 2 is under 3


def test_the_artifact_gets_the_headline_figures_whichever_comes_first(job, django_capture_on_commit_callbacks):
    artifact = ModelArtifact.objects.create(job=job, adapter_path="a", adapter_config_path="b")
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    artifact.refresh_from_db()
    assert artifact.forgetting_retention_pct == 100.0 and artifact.brand_voice_consistency_pct == 100.0
    assert artifact.ei_improvement_pct == pytest.approx(55.07, abs=0.01)


def test_the_suite_is_stored_under_the_job(job):
    prepare_suite(job)
    assert storage.exists(f"jobs/{job.pk}/validation/suite.json")


def test_manage_py_train_prints_the_table(job, settings, django_capture_on_commit_callbacks):
    from training.result_lines import job_summary_lines

    assert job_summary_lines(job) == []  # nothing configured yet, nothing to say
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    lines = job_summary_lines(job)
    assert lines[0] == "  Validation (short of at least one threshold):"
    retention = next(line for line in lines if "Knowledge retention" in line)
    assert "75.0% → 75.0%" in retention and "Pass (needs 95% or more)" in retention
    assert "[automatic (option log-likelihood)]" in retention
    assert len(lines) == 7
    assert lines[5] == f"  Validation report (version 1): {settings.MEDIA_ROOT}/jobs/{job.pk}/reports/validation_report_v1.pdf"
    settings.NOTIFICATIONS_SITE_URL = "https://plane.example.com"
    lines = job_summary_lines(job)
    share = ReportShare.objects.order_by("-pk").first()
    assert lines[6].startswith("  Share link (30 days, no login needed): https://plane.example.com/share/reports/")
    assert token_hash(lines[6].rsplit("/share/reports/", 1)[1].strip("/")) == share.token_hash


def test_a_capped_suite_sends_the_first_items(job, settings):
    settings.VALIDATION_MAX_ITEMS = 2
    suite = suite_of(job)
    assert [len(suite[k]["items"]) for k in sets.KINDS] == [2, 2, 2]
    assert suite[sets.KNOWLEDGE_RETENTION]["items"][0]["id"] == "kr-001"


def test_validation_finished_is_told_once_with_every_benchmark(job, django_capture_on_commit_callbacks):
    report(job, worker_results(suite_of(job), forgotten=10), django_capture_on_commit_callbacks)
    event = JobEvent.objects.get(job=job, event_type=JobEvent.Type.VALIDATION_FINISHED)
    payload = event.payload
    assert [r["label"] for r in payload["benchmarks"]] == [
        "Perplexity", "Emotional intelligence", "Knowledge retention", "Brand voice"]
    assert payload["passed"] is False and event.severity == JobEvent.Severity.INFO
    assert payload["message"].startswith("2 of 4 benchmarks meet their thresholds. "
                                         "Short: perplexity and knowledge retention.")
    assert "provisional" in payload["message"]
    retention = payload["benchmarks"][2]
    assert retention["passed"] is False and retention["verdict"].lower().startswith("fail")
    assert retention["change"].endswith(")") and retention["scorer"] == "automatic (option log-likelihood)"


def test_with_a_judge_validation_finishes_when_the_judge_has_scored(job, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setenv("LLM_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLM_JUDGE_MODEL", "standin-judge")
    queued = []
    monkeypatch.setattr("validation.tasks.judge_job_replies.delay", queued.append)
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    assert queued == [str(job.pk)]
    assert not JobEvent.objects.filter(job=job, event_type=JobEvent.Type.VALIDATION_FINISHED).exists()


def test_a_refused_share_link_leaves_the_table(job, monkeypatch, django_capture_on_commit_callbacks):
    from training.result_lines import job_summary_lines

    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    monkeypatch.setattr("validation.share.may_share", lambda user, job: False)
    lines = job_summary_lines(job)
    assert lines[0].startswith("  Validation (") and len(lines) == 7
    assert lines[6] == "  Share link: none (Only the job's owner or QA can share its report.)"
