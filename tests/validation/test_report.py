"""The validation report's versions: made when validation finishes, again (as the next number)
when people's scores change and have been quiet, never twice for the same scores; what its
document says (verdict, benchmarks, examples, appendix), and the PDF's text."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from pypdf import PdfReader

from artifacts.models import ModelArtifact
from core import storage
from tests.validation.results import report, suite_of, worker_results
from training.models import MetricPoint
from validation import report_tasks, sets
from validation.models import ReplyScore, ValidationReport
from validation.report import (
    REPORT_QUIET_SECONDS,
    build_document,
    generate_report,
    stale_report_jobs,
)
from validation.summary import refresh_summary

pytestmark = pytest.mark.django_db


def pdf_text(report_row: ValidationReport) -> str:
    reader = PdfReader(io.BytesIO(storage.read_bytes(report_row.key)))
    return "\n".join(page.extract_text() for page in reader.pages)


def score_people(validation, owner, count=10):
    for reply in validation.replies.filter(benchmark=sets.EMOTIONAL_INTELLIGENCE)[:count]:
        ReplyScore.objects.create(reply=reply, variant="base", scorer="people", evaluator=owner,
                                  criteria={"empathy": 2, "clarity": 3, "appropriateness": 2})
        ReplyScore.objects.create(reply=reply, variant="trained", scorer="people", evaluator=owner,
                                  criteria={"empathy": 5, "clarity": 4, "appropriateness": 4})
    refresh_summary(validation)


def test_validation_finishing_makes_report_one(job, django_capture_on_commit_callbacks):
    artifact = ModelArtifact.objects.create(job=job, adapter_path="", adapter_config_path="")
    for step, loss in ((1, 2.9), (2, 2.7), (3, 2.5)):
        MetricPoint.objects.create(job=job, step=step, train_loss=loss, eval_loss=loss + 0.1 if step == 3 else None)
    report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    first = ValidationReport.objects.get(job=job)
    assert (first.version, first.reason) == (1, "validation_finished")
    assert first.key == f"jobs/{job.pk}/reports/validation_report_v1.pdf" and storage.exists(first.key)
    assert first.size_bytes == storage.size(first.key) and len(first.sha256) == 64
    artifact.refresh_from_db()
    assert artifact.validation_report_path == first.key

    text = pdf_text(first)
    for heading in ("Executive summary", "Training", "Benchmarks", "Before and after", "Technical appendix"):
        assert heading in text
    assert "Not ready" in text and "version 1" in text
    ppl = first.document["executive"]["headlines"][0]
    assert ppl["label"] == "Perplexity" and ppl["passed"] is False and ppl["change"].split(" ")[0] in text
    assert first.document["training"]["loss"] == {"train": [[1.0, 2.9], [2.0, 2.7], [3.0, 2.5]], "eval": [[3.0, 2.6]]}


def test_the_document_says_what_the_results_say(job, owner, django_capture_on_commit_callbacks):
    validation = report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    score_people(validation, owner)
    document = build_document(job, validation, 3)
    executive = document["executive"]
    assert executive["verdict"] == "not_ready"
    assert "falls short on perplexity" in executive["sentence"] and "provisional" in executive["sentence"]
    ei = {b["kind"]: b for b in document["benchmarks"]}[sets.EMOTIONAL_INTELLIGENCE]
    assert ei["scorer"] == "people (1 evaluator)" and ei["provisional"] is False and ei["n"] == "10"
    retention = {b["kind"]: b for b in document["benchmarks"]}[sets.KNOWLEDGE_RETENTION]
    assert retention["chart"]["base"] == 75.0 and any(n.startswith("Taxes: ") for n in retention["notes"])
    # The three scenarios people scored best, with their replies in full; then the three worst.
    best, worst = document["examples"]["best"], document["examples"]["worst"]
    assert len(best) == 3 and len(worst) == 3 and not {b["item_id"] for b in best} & {w["item_id"] for w in worst}
    assert best[0]["gap"] == "+2 of 5" and best[0]["trained_score"].startswith("4.33 of 5 (People")
    reply = validation.replies.get(benchmark=sets.EMOTIONAL_INTELLIGENCE, item_id=best[0]["item_id"])
    assert best[0]["trained_reply"] == reply.trained_reply
    appendix = document["appendix"]
    people_rows = [r for r in appendix["scores"] if r["scorer"].startswith("people")]
    assert len(people_rows) == 10 * 2 * 3 and {r["scorer"] for r in people_rows} == {"people (evaluator 1)"}
    assert owner.username not in str(appendix)  # a client's report names no evaluator
    assert sum(r["benchmark"] == "Knowledge retention" for r in appendix["scores"]) == 200
    assert {s["kind"] for s in appendix["sets"]} == {"Emotional intelligence", "Knowledge retention", "Brand voice"}
    assert ["Dataset (SHA-256)", job.training_file.sha256] in appendix["hashes"]


def test_changed_scores_make_the_next_version_once_they_are_quiet(job, owner, django_capture_on_commit_callbacks):
    validation = report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    assert stale_report_jobs() == []
    score_people(validation, owner, count=3)
    assert stale_report_jobs() == []  # someone is scoring: wait
    later = timezone.now() + timedelta(seconds=REPORT_QUIET_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        assert stale_report_jobs() == [job.pk]
        assert report_tasks.regenerate_reports() == 1
        second = ValidationReport.objects.get(job=job, version=2)
        assert second.reason == "scores_changed"
        assert "people (1 evaluator)" in pdf_text(second)
        assert stale_report_jobs() == []
    # The same scores never make another version, however it is asked.
    assert generate_report(job.pk, "scores_changed", only_if_changed=True) is None
    assert generate_report(job.pk).version == 3  # asked for outright (the admin's button)
    assert list(ValidationReport.objects.filter(job=job).values_list("version", flat=True)) == [3, 2, 1]


def test_no_results_no_report(job):
    assert generate_report(job.pk) is None
    assert not ValidationReport.objects.exists()


def test_the_beat_row_names_a_registered_task():
    from django_celery_beat.models import PeriodicTask

    from config.celery import app

    row = PeriodicTask.objects.get(task="validation.report_tasks.regenerate_reports")
    assert row.enabled and (row.interval.every, row.interval.period) == (300, "seconds")
    app.loader.import_default_modules()
    assert {"validation.report_tasks.regenerate_reports", "validation.report_tasks.generate_validation_report"} <= set(app.tasks)


def test_the_admin_lists_the_versions_serves_them_signed_and_makes_new_ones(
        job, staff, django_user_model, django_capture_on_commit_callbacks):
    from django.test import Client
    from django.urls import reverse

    from artifacts.models import DownloadAudit
    from training.lifecycle import Status

    validation = report(job, worker_results(suite_of(job)), django_capture_on_commit_callbacks)
    job.status = Status.COMPLETED
    job.save(update_fields=["status"])
    ModelArtifact.objects.create(job=job, adapter_path="", adapter_config_path="",
                                 validation_report_path=ValidationReport.objects.get(job=job).key)
    client = Client()
    client.force_login(staff)
    page = client.get(reverse("admin:validation_jobvalidation_change", args=[validation.pk]))
    link = reverse("admin:validation_jobvalidation_report", args=[validation.pk, 1])
    assert page.status_code == 200 and f'href="{link}"' in page.content.decode()
    redirect = client.get(link)
    assert redirect.status_code == 302 and "/api/artifacts/" in redirect["Location"]
    pdf = Client().get(redirect["Location"].split("testserver", 1)[-1])  # the signed link needs no session
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert DownloadAudit.objects.get(kind="validation-report").format == "v1"
    assert client.get(reverse("admin:validation_jobvalidation_report", args=[validation.pk, 9])).status_code == 404
    clerk = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    other = Client()
    other.force_login(clerk)
    assert other.get(link).status_code == 404

    response = client.post(reverse("admin:validation_jobvalidation_changelist"),
                           {"action": "make_report", "_selected_action": [validation.pk]}, follow=True)
    assert "A new report was asked for 1 job." in response.content.decode()
    assert ValidationReport.objects.filter(job=job).count() == 2
