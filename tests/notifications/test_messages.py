"""The rich messages: every kind renders a subject, plain text, HTML, Slack blocks and webhook
data; sections with nothing to show are left out; numbers read as people write them; the
completed email arrives through a real SMTP server with both parts as built."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from notifications.kinds import LABELS, WEBHOOK_TYPES, Kind
from notifications.messages import EYEBROWS, build_message, job_url
from notifications.models import Notification
from notifications.services import deliver_notification
from training.lifecycle import Status
from training.models import JobEvent, MetricPoint

pytestmark = pytest.mark.django_db

QUALITY = {"score": 84, "grade": "B",
           "components": {"loss_reduction": 25, "convergence": 25, "stability": 20, "overfitting_gap": 10,
                          "efficiency": 4},
           "suggestions": [{"category": "overfitting", "priority": "medium",
                            "text": "Held-out loss ends above the training loss; try fewer epochs."}],
           "measurements": {}}


# --- Seeded jobs (the browser test renders the same ones) -------------------------------------


def completed_job(make_job, **fields):
    """A finished QLoRA run with every figure an email can show."""
    end = timezone.now()
    job = make_job(**{
        "status": Status.COMPLETED, "started_at": end - timedelta(seconds=990), "completed_at": end,
        "current_step": 48, "total_steps": 48, "current_epoch": 3.0, "progress_percentage": Decimal("100"),
        "latest_loss": 1.2345678, "latest_eval_loss": 1.3456789,
        "cost_estimate": Decimal("2.50"), "cost_estimate_low": Decimal("2.00"), "cost_estimate_high": Decimal("3.10"),
        "actual_cost": Decimal("2.81"), "gpu_pricing_tier": "on_demand", "hourly_rate": Decimal("7.99"),
        "billable_seconds": 1266.0,
        "quality": QUALITY,
        "results": {
            "validation": {"evaluators": {"perplexity": {"base": 17.94123, "trained": 12.07891, "samples": 13}}},
            "final": {"final_train_loss": 1.2345678, "final_eval_loss": 1.3456789, "steps": 48,
                      "summary": {"quantization": "4bit", "device": "cuda", "tokens_trained": 32811,
                                  "peak_memory_mb": 5120.4}}},
        **fields})
    MetricPoint.objects.create(job=job, step=48, train_loss=1.2345678, gpu_memory_used_mb=39342)
    return job


def failed_job(make_job, **fields):
    """An out-of-memory failure at step 12 with a history of events."""
    job = make_job(**{
        "status": Status.FAILED, "started_at": timezone.now() - timedelta(minutes=7),
        "completed_at": timezone.now(), "current_stage": Status.TRAINING, "current_step": 12, "total_steps": 48,
        "attempt": 1, "last_checkpoint_step": 10, "latest_loss": 2.1234567,
        "error_type": "out_of_memory",
        "error_message": "CUDA out of memory. Tried to allocate 2.00 GiB (secret s3cret in the path)",
        "error_suggested_fix": "Halve per_device_batch_size or max_seq_length, or pick a GPU with more memory.",
        "cost_estimate": Decimal("2.50"), "actual_cost": Decimal("0.42"), **fields})
    start = timezone.now() - timedelta(minutes=7)
    history = [("status_changed", {"from": "queued", "to": "provisioning"}, "queued", "provisioning"),
               ("launched", {"message": "local worker started (pid 4242)"}, "", ""),
               ("heartbeat", {}, "", ""), ("metrics", {"points": [{"step": 1}]}, "", ""),
               ("stage_changed", {"stage": "model_loading"}, "", ""),
               ("stage_changed", {"stage": "training"}, "", ""),
               ("checkpoint_saved", {"step": 10}, "", ""),
               ("heartbeat", {}, "", ""),
               ("error", {"error_type": "out_of_memory", "message": "CUDA out of memory"}, "", ""),
               ("status_changed", {"from": "training", "to": "failed", "message": "the worker reported an error"},
                "training", "failed")]
    for n, (kind, payload, old, new) in enumerate(history):
        JobEvent.objects.create(job=job, event_type=kind, payload=payload, old_status=old, new_status=new,
                                step=10 if kind == "checkpoint_saved" else None,
                                received_at=start + timedelta(seconds=30 * n))
    return job


def notify(job, kind, event=None, payload=None):
    return Notification.objects.create(kind=str(kind), channel="email", recipient=job.created_by, job=job,
                                       event=event, payload=payload or {}, dedupe_key=uuid.uuid4().hex)


def event(job, event_type, **fields):
    return JobEvent.objects.create(job=job, event_type=event_type, **fields)


def visible_text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("&nbsp;", " ").split())


def slack_text(blocks) -> str:
    parts = []
    for block in blocks:
        for item in [block.get("text"), *block.get("fields", []), *(e.get("text") for e in block.get("elements", []))]:
            if item:
                parts.append(item["text"])
    return "\n".join(parts)


def assert_complete(message, kind):
    assert message.subject and "\n" not in message.subject and len(message.subject) <= 200
    assert message.text.strip() and message.html.startswith("<!doctype html>")
    assert message.slack_blocks[0]["type"] == "header"
    [actions] = [b for b in message.slack_blocks if b["type"] == "actions"]
    assert actions["elements"][0]["url"].startswith("http")
    assert message.webhook_type == WEBHOOK_TYPES[kind]
    assert message.webhook_data["object"] == "fine_tuning.job"
    assert message.webhook_data["metadata"]["kind"] == kind


# --- Completed ----------------------------------------------------------------------------------


def test_the_completed_message_has_every_section_with_readable_numbers(make_job):
    job = completed_job(make_job)
    message = build_message(notify(job, Kind.COMPLETED))
    assert_complete(message, Kind.COMPLETED)
    assert message.subject == "Completed: elena v1 — perplexity 17.9 → 12.1"
    for part in (message.text, visible_text(message.html)):
        for heading in ("Overview", "Training Configuration", "Dataset", "Performance Metrics", "Resource Usage",
                        "Cost"):
            assert heading in part
        for figure in ("SFT with QLoRA (4-bit)", "SmolLM2 135M Instruct", "16m 30s", "2.00e-04", "48 / 48",
                       "elena_morales_chat.jsonl", "64", "32,811", "1.235", "1.346", "17.94 → 12.08", "-32.7%",
                       "84 / 100", "grade B", "NVIDIA H100 PCIe 80GB", "38.4 GB", "$2.81", "$2.50", "+12.4%",
                       "fewer epochs"):
            assert figure in part, figure
    assert "1.2345678" not in message.text and "0.0002" not in message.text
    assert job_url(job) in message.text and f'href="{job_url(job)}"' in message.html


def test_a_completed_job_without_the_data_has_no_empty_sections(make_job):
    job = make_job(status=Status.COMPLETED, gpu_type="", latest_loss=0.9, configuration={"hyperparameters": {}})
    message = build_message(notify(job, Kind.COMPLETED))
    html = visible_text(message.html)
    for part in (message.text, html):
        for heading in ("Resource Usage", "Cost", "Training Configuration", "Suggestions", "Recent Events"):
            assert heading not in part
        assert "Performance Metrics" in part and "0.9000" in part
        assert "—" not in part and "None" not in part
    assert message.subject == "Completed: elena v1"  # no perplexity, no eval loss: no figure
    assert not re.search(r"<h2[^>]*>\s*</h2>", message.html)


def test_the_subject_falls_back_to_the_eval_loss(make_job):
    job = make_job(status=Status.COMPLETED, latest_eval_loss=1.3456789)
    assert build_message(notify(job, Kind.COMPLETED)).subject == "Completed: elena v1 — eval loss 1.346"


def test_lora_on_a_cpu_and_qlora_on_a_gpu_when_quantization_is_auto(make_job):
    cpu = make_job(status=Status.COMPLETED, gpu_type="CPU_LOCAL")
    gpu = make_job(status=Status.COMPLETED)
    assert "SFT with LoRA" in build_message(notify(cpu, Kind.COMPLETED)).text
    assert "SFT with QLoRA (4-bit)" in build_message(notify(gpu, Kind.COMPLETED)).text


def test_the_completed_webhook_is_a_fine_tuning_job_object(make_job):
    job = completed_job(make_job)
    data = build_message(notify(job, Kind.COMPLETED)).webhook_data
    assert data["id"] == str(job.pk) and data["status"] == "succeeded"
    assert data["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and data["fine_tuned_model"]
    assert data["finished_at"] == int(job.completed_at.timestamp()) and isinstance(data["created_at"], int)
    assert data["trained_tokens"] == 32811 and data["error"] is None
    assert data["metadata"]["step"] == 48 and data["metadata"]["percent"] == 100.0
    assert data["metadata"]["url"] == job_url(job) and data["metadata"]["quality_score"] == 84
    assert data["metadata"]["actual_cost"] == "2.81"


def test_the_completed_slack_message_has_fields_and_a_dashboard_button(make_job):
    job = completed_job(make_job)
    blocks = build_message(notify(job, Kind.COMPLETED)).slack_blocks
    titles = [b["text"]["text"] for b in blocks if b["type"] == "section" and "fields" in b and "text" in b]
    assert titles[:3] == ["*Overview*", "*Training Configuration*", "*Dataset*"]
    assert "*Perplexity*\n17.94 → 12.08 (-32.7%)" in slack_text(blocks)
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert actions["elements"][0] == {"type": "button", "text": {"type": "plain_text", "text": "Open the dashboard"},
                                      "url": job_url(job), "style": "primary"}
    assert all(len(b.get("fields", [])) <= 10 for b in blocks)


def test_the_completed_email_arrives_through_smtp_with_both_parts(smtp, make_job, owner):
    job = completed_job(make_job)
    row = notify(job, Kind.COMPLETED)
    assert deliver_notification(row.pk) == "sent"
    [mail] = smtp.messages()
    assert mail["To"] == owner.email
    # Python's email folds a long encoded subject onto a continuation line; clients unfold it.
    assert mail["Subject"].strip() == "Completed: elena v1 — perplexity 17.9 → 12.1"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert text.replace("\r\n", "\n") == build_message(row).text
    assert "Performance Metrics" in text and "17.94 → 12.08  (-32.7%)" in text
    assert "Resource Usage" in text and "38.4 GB" in text
    assert "Performance Metrics</h2>" in html and "17.94 → 12.08" in html and "-32.7%" in html
    # Tables and inline styles; the one <style> block only narrows the layout on phones.
    assert 'role="presentation"' in html and html.count("<style") == 1 and "@media" in html
    assert f'href="{job_url(job)}"' in html


# --- Failed --------------------------------------------------------------------------------------


def test_the_failed_message_has_the_error_fix_retry_link_and_recent_events(make_job):
    job = failed_job(make_job)
    message = build_message(notify(job, Kind.FAILED))
    assert_complete(message, Kind.FAILED)
    assert message.subject == "Failed: elena v1 — Out of memory"
    html = visible_text(message.html)
    for part in (message.text, html):
        assert "Out of memory" in part and "Tried to allocate 2.00 GiB" in part
        assert "Halve per_device_batch_size" in part
        assert "during training at step 12 of 48" in part and "step 10" in part
        assert "Recent Events" in part and "checkpoint saved" in part and "training → failed" in part
        assert "heartbeat" not in part and "1 point" not in part
        assert "s3cret" not in part  # the job's secret is masked
    assert f'{job_url(job)}#retry-form' in message.html and "Retry from the dashboard" in html
    assert f"/admin/training/trainingjob/{job.pk}/change/" in message.html
    data = message.webhook_data
    assert data["status"] == "failed" and data["error"]["code"] == "out_of_memory"
    assert data["error"]["message"].startswith("CUDA out of memory") and "s3cret" not in data["error"]["message"]
    assert data["fine_tuned_model"] is None


def test_recent_events_are_the_last_eight_without_heartbeats(make_job):
    job = failed_job(make_job)
    for n in range(12):
        event(job, "checkpoint_saved", step=20 + n, received_at=timezone.now() + timedelta(seconds=n))
    text = build_message(notify(job, Kind.FAILED)).text
    listed = re.findall(r"checkpoint saved\s+step (\d+)", text)
    assert listed == [str(20 + n) for n in range(4, 12)]


def test_a_failure_without_a_type_names_its_message(make_job):
    job = make_job(status=Status.FAILED, error_message="the pod vanished\nwith a long story after it")
    assert build_message(notify(job, Kind.FAILED)).subject == "Failed: elena v1 — the pod vanished with a long story after it"


# --- Milestones, anomalies, cost -------------------------------------------------------------------


def test_a_milestone_has_percent_steps_and_loss(make_job):
    job = make_job(current_step=24, total_steps=48, latest_loss=1.56789, progress_percentage=Decimal("50"))
    found = event(job, "milestone", milestone_percent=50, step=24,
                  payload={"kind": "milestone", "percent": 50, "step": 24, "message": "Training 50% complete (step 24 of 48)."})
    message = build_message(notify(job, Kind.MILESTONE, found))
    assert_complete(message, Kind.MILESTONE)
    assert message.subject == "50% done: elena v1 — step 24 / 48, loss 1.568"
    assert "Quality" not in message.text
    assert message.webhook_data["metadata"]["milestone_percent"] == 50


def test_the_hundred_percent_milestone_computes_the_quality_score(make_job):
    job = make_job(current_step=48, total_steps=48, latest_loss=0.8)
    for step, loss in enumerate([3.0, 2.4, 1.9, 1.5, 1.2, 1.0, 0.9, 0.85, 0.82, 0.8], start=1):
        MetricPoint.objects.create(job=job, step=step * 4, train_loss=loss)
    found = event(job, "milestone", milestone_percent=100, step=48, payload={"percent": 100})
    message = build_message(notify(job, Kind.MILESTONE, found))
    assert re.search(r"Quality score\s+\d+ / 100  \(grade [A-F]\)", message.text)
    assert isinstance(message.webhook_data["metadata"]["quality_score"], int)


def test_a_critical_anomaly_says_so_in_the_subject(make_job):
    job = make_job(current_step=120, total_steps=480)
    found = event(job, "anomaly", anomaly_kind="divergence", severity="critical", step=120,
                  payload={"kind": "divergence", "step": 120, "message": "Training diverged: loss became nan.",
                           "suggested_action": "Lower the learning rate and resume from step 100."})
    message = build_message(notify(job, Kind.ANOMALY_CRITICAL, found))
    assert_complete(message, Kind.ANOMALY_CRITICAL)
    assert message.subject == "Critical: divergence in elena v1 at step 120"
    for part in (message.text, visible_text(message.html), slack_text(message.slack_blocks)):
        assert "Training diverged: loss became nan." in part and "Lower the learning rate" in part
    assert message.webhook_data["metadata"]["anomaly"] == "divergence"


def test_a_normal_finding_is_not_critical(make_job):
    job = make_job()
    found = event(job, "anomaly", anomaly_kind="overfitting", severity="warning", step=30,
                  payload={"message": "Held-out loss has been rising.", "suggested_action": "Stop early."})
    message = build_message(notify(job, Kind.ANOMALY, found))
    assert message.subject == "Overfitting in elena v1 at step 30"
    assert "Critical" not in message.subject


def test_cost_over_estimate_shows_actual_estimate_and_percent_over(make_job):
    job = make_job(cost_estimate=Decimal("950.00"), actual_cost=Decimal("1234.50"))
    message = build_message(notify(job, Kind.COST_OVER_ESTIMATE,
                                   payload={"actual_cost": "1234.50", "cost_estimate": "950.00"}))
    assert_complete(message, Kind.COST_OVER_ESTIMATE)
    assert message.subject == "Over estimate: elena v1 — $1,234.50 vs $950.00 (+29.9%)"
    assert "$1,234.50" in message.text and "+29.9%" in visible_text(message.html)
    assert message.webhook_data["metadata"]["percent_over"] == pytest.approx(29.947, abs=1e-3)


@pytest.mark.parametrize("kind", [Kind.CANCELLED, Kind.INTERRUPTED, Kind.RECOVERED])
def test_the_other_job_kinds_render_every_part(make_job, kind):
    job = make_job(current_step=20, total_steps=48, last_checkpoint_step=20, resumed_from_step=20)
    found = event(job, "resumed", payload={"resumed_from_step": 20}) if kind == Kind.RECOVERED else None
    message = build_message(notify(job, kind, found))
    assert_complete(message, kind)
    assert "elena v1" in message.subject and "20" in message.subject


@pytest.mark.parametrize("kind", [Kind.BUDGET_THRESHOLD])
def test_budget_kinds_get_a_generic_message(make_job, kind):
    job = make_job()
    message = build_message(notify(job, kind, payload={"message": "Project budget 80% spent.", "spent": "800.00",
                                                       "budget": 1000, "threshold_percent": 80}))
    assert_complete(message, kind)
    assert message.subject == f"{EYEBROWS.get(kind) or LABELS[kind]}: elena v1"
    for part in (message.text, visible_text(message.html)):
        assert "Project budget 80% spent." in part and "$800.00" in part and "$1,000.00" in part and "80.0%" in part


@pytest.mark.parametrize("state,kind,subject,intro", [
    ("awaiting_review", Kind.REVIEW_REQUESTED, "Review requested: elena v1 — validation passed every threshold",
     "finished training; its model waits for QA's approval. Validation passed every threshold."),
    ("approved", Kind.APPROVED, "Model approved: elena v1 — Every benchmark passed.",
     "quinn approved the model after reading validation report version 2. Its deployment package is released."),
    ("rejected", Kind.REJECTED, "Model rejected: elena v1 — Every benchmark passed.",
     "quinn rejected the model after reading validation report version 2."),
    ("changes_requested", Kind.REJECTED, "Changes requested: elena v1 — Every benchmark passed.",
     "quinn asked for changes to the model after reading validation report version 2."),
])
def test_review_messages_say_who_decided_what_on_which_report(make_job, state, kind, subject, intro):
    job = make_job()
    payload = {"verdict": "passed every threshold"} if state == "awaiting_review" else {
        "message": "Every benchmark passed.", "decided_by": "quinn", "report_version": 2,
        "suggestion": "" if state == "approved" else "Retry with the Conservative preset.",
        "verdict": "passed every threshold"}
    message = build_message(notify(job, kind, event(job, "review", new_status=state, payload=payload)))
    assert_complete(message, kind)
    assert message.subject == subject and intro in message.text
    if state in ("rejected", "changes_requested"):
        assert "Retry with the Conservative preset." in message.text and "#retry-form" in message.text
    if state == "awaiting_review":
        assert "/admin/validation/modelreview/?state__exact=awaiting_review" in message.text


VALIDATION_ROWS = [
    {"key": "perplexity", "label": "Perplexity", "passed": True, "base": "17.86", "trained": "11.92",
     "change": "33.3% better (31.0% to 35.4%)", "verdict": "Pass (≥ 30%)", "scorer": "automatic", "provisional": False},
    {"key": "emotional_intelligence", "label": "Emotional intelligence", "passed": False, "base": "3.1",
     "trained": "3.9", "change": "25.8% better (18.2% to 33.0%)", "verdict": "Fail (needs ≥ 40%)",
     "scorer": "judge:gpt-4.1", "provisional": False},
    {"key": "knowledge_retention", "label": "Knowledge retention", "passed": None, "base": "—", "trained": "—",
     "change": "—", "verdict": "not measured", "scorer": "", "provisional": False},
]


def test_validation_finished_shows_each_benchmark_with_its_verdict(make_job):
    job = make_job()
    found = event(job, "validation_finished", payload={
        "message": "1 of 3 benchmarks meet their thresholds.", "passed": False, "benchmarks": VALIDATION_ROWS})
    message = build_message(notify(job, Kind.VALIDATION_FINISHED, found))
    assert_complete(message, Kind.VALIDATION_FINISHED)
    assert message.subject == "Validation 1 of 3 thresholds met: elena v1"
    for part in (message.text, visible_text(message.html), slack_text(message.slack_blocks)):
        assert "1 of 3 benchmarks meet their thresholds." in part
        assert "17.86 → 11.92" in part and "33.3% better (31.0% to 35.4%)" in part
        assert "Fail (needs ≥ 40%)" in part and "judge:gpt-4.1" in part
    assert f"/admin/validation/jobvalidation/{job.pk}/compare/" in message.text
    assert message.webhook_data["metadata"]["passed"] is False
    assert message.webhook_data["metadata"]["benchmarks"][0]["trained"] == "11.92"


def test_a_subject_is_one_line_of_at_most_200_characters(make_job):
    job = make_job(name="a very\nlong " + "name " * 46)
    subject = build_message(notify(job, Kind.COMPLETED)).subject
    assert "\n" not in subject and len(subject) == 200 and subject.endswith("…")
