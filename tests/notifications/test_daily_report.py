"""The daily training report: a seeded day gives every section with the right figures; an empty
day says there was no activity; `manage.py daily_report --print`; subscribers get it through the
real SMTP server, and a subscriber who is not staff reads only about their own jobs."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.template.defaultfilters import filesizeformat

from artifacts.models import ModelArtifact
from notifications import messages, reports
from notifications.models import DailyReport, Notification, NotificationSettings
from training.lifecycle import Status
from training.models import JobAttempt, JobEvent

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 11, 12, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)


def attempt(job, number, *, launched, hours, rate, closed=True, outcome="completed"):
    return JobAttempt.objects.create(job=job, number=number, executor="local", pricing_tier="spot", hourly_rate=Decimal(rate),
                                     launched_at=launched, ref_recorded_at=launched, billable_seconds=hours * 3600,
                                     billing_closed=closed, ended_at=launched + hours * H if closed else None,
                                     outcome=outcome if closed else "running")


def event(job, event_type, at, **fields):
    return JobEvent.objects.create(job=job, event_type=event_type, source="test", received_at=at, **fields)


def anomaly(job, kind, at, step, severity="info"):
    return event(job, JobEvent.Type.ANOMALY, at, anomaly_kind=kind, severity=severity, step=step,
                 payload={"kind": kind, "step": step, "message": f"{kind} at {step}"})


def checkpoint(job, at, step, size):
    return event(job, JobEvent.Type.CHECKPOINT_SAVED, at, step=step,
                 payload={"step": step, "key": f"checkpoints/step-{step}", "size_bytes": size})


@pytest.fixture
def seeded_day(make_job):
    """Two running jobs (one silent for 2 hours), one completed with perplexity, one failed,
    one that finished three days ago; divergence and new-best anomalies; attempts with cost."""
    running = make_job(name="elena v1", status=Status.TRAINING, current_step=120, total_steps=480, latest_loss=0.74891,
                       attempt=2, attempt_started_at=NOW - 10 * H, last_heartbeat_at=NOW - timedelta(minutes=1))
    # Interrupted 10 hours ago: attempt 1 ran 20 h (14 h of it in the period), attempt 2 the last 10 h.
    attempt(running, 1, launched=NOW - 30 * H, hours=20, rate="2.00", outcome="interrupted")
    attempt(running, 2, launched=NOW - 10 * H, hours=10, rate="2.00", closed=False)
    event(running, JobEvent.Type.STATUS_CHANGED, NOW - 10 * H, old_status="training", new_status="recovering")
    anomaly(running, "divergence", NOW - 5 * H, 100, "critical")
    anomaly(running, "divergence", NOW - 4 * H, 110, "critical")
    anomaly(running, "divergence", NOW - 25 * H, 20, "critical")  # before the period
    for step in (40, 80, 100, 120):
        checkpoint(running, NOW - 8 * H + step * timedelta(seconds=60), step, 5_000_000)

    silent = make_job(name="stuck run", status=Status.TRAINING, current_step=10, total_steps=100, attempt=1,
                      attempt_started_at=NOW - 6 * H, last_heartbeat_at=NOW - 2 * H)
    attempt(silent, 1, launched=NOW - 6 * H, hours=6, rate="0.50", closed=False)

    done = make_job(name="support bot", status=Status.COMPLETED, started_at=NOW - 5 * H, completed_at=NOW - 3 * H,
                    actual_cost=Decimal("3.00"), latest_loss=0.5,
                    results={"validation": {"evaluators": {"perplexity": {"base": 17.44, "trained": 9.12,
                                                                          "improvement_pct": 47.7}}}})
    attempt(done, 1, launched=NOW - 5 * H, hours=2, rate="1.50")
    for step in (10, 20, 30):
        anomaly(done, "new_best", NOW - 4 * H, step)
    ModelArtifact.objects.create(job=done, adapter_path="a", adapter_config_path="c", adapter_size_bytes=10_000_000,
                                 storage_bytes=50_000_000)

    broken = make_job(name="faq tuner", status=Status.FAILED, current_stage="training", started_at=NOW - 2 * H,
                      completed_at=NOW - H, actual_cost=Decimal("1.00"), error_type="OutOfMemory",
                      error_message="CUDA out of memory", error_suggested_fix="Lower per_device_batch_size to 2.")
    attempt(broken, 1, launched=NOW - 2 * H, hours=1, rate="1.00", outcome="failed")
    checkpoint(broken, NOW - 1.5 * H, 5, 1_000_000)

    old = make_job(name="last week", status=Status.COMPLETED, started_at=NOW - 80 * H, completed_at=NOW - 72 * H,
                   actual_cost=Decimal("9.00"))
    attempt(old, 1, launched=NOW - 80 * H, hours=8, rate="1.00")
    ModelArtifact.objects.create(job=old, adapter_path="a", adapter_config_path="c", adapter_size_bytes=4_000_000,
                                 storage_bytes=20_000_000)
    return {"running": running, "silent": silent, "done": done, "broken": broken, "old": old}


def size(n: int) -> str:
    return str(filesizeformat(n)).replace("\xa0", " ")


def test_a_seeded_day_gives_every_section_with_its_figures(seeded_day):
    report = reports.build_daily_report(NOW)
    text = report.text
    assert report.period_start == NOW - 24 * H and report.period_end == NOW
    assert DailyReport.objects.get() == report

    assert text.startswith("# Daily training report\n")
    assert "**Period:** 2025-11-11 08:00 UTC to 2025-11-12 08:00 UTC (last 24 hours)" in text
    assert "**Jobs:** All jobs" in text
    # Training status: the two running jobs, progress and latest loss.
    assert "2 active jobs" in text
    assert "- **elena v1**: Training, step 120 / 480 (25.0%), loss 0.7489\n" in text
    assert "- **stuck run**: Training, step 10 / 100 (10.0%), no heartbeat for 2h 00m\n" in text
    # Finished: perplexity before → after for the completed job, the error for the failed one.
    assert "### Completed (1)\n- **support bot**: perplexity 17.44 → 9.120 (-47.7%), took 2h 00m, cost $3.00\n" in text
    assert "### Failed (1)\n- **faq tuner**: OutOfMemory during training: CUDA out of memory\n" in text
    assert "last week" not in text.split("## Storage")[0]
    assert "### Interrupted\n- **elena v1**: once\n" in text
    # Anomalies of the period by kind, critical first although fewer.
    assert "Total anomalies: 5" in text
    assert "### Critical\n- Divergence: 2 in elena v1\n" in text
    assert "### Other findings\n- New best checkpoints: 3 in support bot\n" in text
    assert text.index("### Critical") < text.index("### Other findings")
    # Money: elena v1 14 h of attempt 1 + 10 h of attempt 2 at $2; support bot 2 h at $1.50;
    # faq tuner 1 h at $1; stuck run 6 h at $0.50; last week's attempt is outside the period.
    assert "- Spent in the period: $55.00 (the billed time of every attempt" in text
    assert ("  - **elena v1**: $48.00\n  - **stuck run**: $3.00\n  - **support bot**: $3.00\n"
            "  - **faq tuner**: $1.00\n") in text
    assert "- Jobs that finished in the period cost $4.00 in all" in text
    # Storage: artifacts as measured; checkpoints the workers reported, the newest 3 of elena's 4.
    assert f"Artifacts of 2 completed jobs: {size(70_000_000)} (adapters {size(14_000_000)};" in text
    assert f"Checkpoints of 2 other jobs: {size(16_000_000)}" in text
    assert f"Total: {size(86_000_000)}" in text
    # Health and recommendations.
    health = text.split("## Health summary")[1].split("## Recommendations")[0]
    assert "All systems healthy" not in health
    assert "- 🚨 Training divergence in elena v1 at step 100\n" in health
    assert "- 🚨 faq tuner failed: OutOfMemory\n" in health
    assert "- ⚠️ No heartbeat from stuck run for 2h 00m\n" in health
    assert "- ⚠️ elena v1 was interrupted once\n" in health
    assert health.index("🚨") < health.index("⚠️")
    recommendations = text.split("## Recommendations")[1]
    assert "- **elena v1**: Urgent: review the divergence at step 100\n" in recommendations
    assert "- **faq tuner**: Lower per_device_batch_size to 2.\n" in recommendations
    assert "- **stuck run**: Check its worker: no heartbeat for 2h 00m\n" in recommendations
    # Both running jobs have something urgent: the trend analysis's "Continue" would contradict it.
    assert "Continue." not in recommendations and "nothing suggests stopping" not in report.html

    data = report.data
    assert data["cost"]["spent"] == "55.00" and data["anomalies"]["total"] == 5
    assert [k["kind"] for k in data["anomalies"]["kinds"]] == ["divergence", "new_best"]
    assert data["completed"][0]["perplexity_base"] == 17.44 and data["failed"][0]["error_type"] == "OutOfMemory"
    assert data["storage"]["checkpoint_bytes"] == 16_000_000 and not data["health"]["healthy"]
    assert re.search(rf'<a href="{re.escape(messages.job_url(seeded_day["running"]))}"[^>]*>elena v1</a>', report.html)
    assert "perplexity 17.44 → 9.120 (-47.7%)" in report.html


def test_an_empty_day_says_there_was_no_activity(make_job):
    make_job(name="long ago", status=Status.COMPLETED, completed_at=NOW - 100 * H)
    report = reports.build_daily_report(NOW)
    assert "No training activity in the last 24 hours" in report.text
    assert "## Training status" not in report.text and "long ago" not in report.text
    assert "- ✅ All systems healthy" in report.text
    assert "## Storage" in report.text
    assert report.data["activity"] is False and report.data["health"] == {"healthy": True, "issues": []}
    assert reports.headline(report.data) == "no training activity"


def test_a_diverged_loss_is_stored_and_shown(make_job):
    make_job(name="diverged", current_step=30, total_steps=48, latest_loss=float("inf"), latest_eval_loss=float("nan"))
    report = reports.build_daily_report(NOW)
    assert "- **diverged**: Training, step 30 / 48 (62.5%), loss n/a, held-out loss n/a\n" in report.text
    assert DailyReport.objects.get().data["active"][0]["loss"] == "inf"


def test_only_a_job_with_nothing_urgent_is_told_to_continue(make_job):
    make_job(name="calm run", current_step=10, total_steps=100, last_heartbeat_at=NOW - timedelta(minutes=1))
    diverged = make_job(name="wild run", current_step=10, total_steps=100, last_heartbeat_at=NOW - timedelta(minutes=1))
    anomaly(diverged, "divergence", NOW - H, 8, "critical")
    recommendations = reports.build_daily_report(NOW).text.split("## Recommendations")[1]
    assert "- **calm run**: Continue. No held-out evaluation yet; nothing suggests stopping.\n" in recommendations
    assert "- **wild run**: Urgent: review the divergence at step 8\n" in recommendations
    assert "**wild run**: Continue" not in recommendations


def test_the_command_builds_stores_and_prints_the_report(seeded_day):
    out = io.StringIO()
    call_command("daily_report", "--print", stdout=out)
    report = DailyReport.objects.get()
    assert out.getvalue().strip() == report.text.strip()
    assert "# Daily training report" in out.getvalue() and "elena v1" in out.getvalue()


def test_the_command_prints_one_users_report(seeded_day, outsider):
    out = io.StringIO()
    call_command("daily_report", "--print", "--user", outsider.username, stdout=out)
    assert "**Jobs:** Jobs of oscar" in out.getvalue() and "elena v1" not in out.getvalue()


def subscribe(*users):
    for user in users:
        NotificationSettings.objects.update_or_create(user=user, defaults={"daily_report": True})


def test_subscribers_get_it_and_others_jobs_stay_out_of_a_non_staff_report(smtp, make_job, owner, outsider, staff,
                                                                           teammate):
    make_job(name="elena v1", current_step=5, total_steps=50)
    make_job(name="oscar secret", created_by=outsider, current_step=7, total_steps=70)
    subscribe(owner, outsider, staff, teammate)
    NotificationSettings.objects.create(user=_someone_else(), daily_report=False)

    report = reports.build_and_send_daily_report(NOW)
    mail = {m["To"]: m for m in smtp.messages()}
    assert sorted(mail) == sorted([owner.email, outsider.email, staff.email, teammate.email])
    for address in (staff.email, teammate.email):  # staff and operators: the report of every job
        body = mail[address].get_body(("plain",)).get_content()
        assert "elena v1" in body and "oscar secret" in body and "**Jobs:** All jobs" in body
        assert mail[address]["Subject"] == "Daily training report, 2025-11-12: 2 active; all systems healthy"
    olivia = mail[owner.email].get_body(("plain",)).get_content()
    assert "elena v1" in olivia and "oscar secret" not in olivia and "**Jobs:** Jobs of olivia" in olivia
    assert "oscar secret" not in mail[owner.email].get_body(("html",)).get_content()
    oscar = mail[outsider.email].get_body(("plain",)).get_content()
    assert "oscar secret" in oscar and "elena v1" not in oscar
    assert mail[owner.email]["Subject"] == "Daily training report, 2025-11-12: 1 active; all systems healthy"

    rows = Notification.objects.filter(kind="daily_report")
    assert rows.count() == 4 and set(rows.values_list("status", flat=True)) == {"sent"}
    assert {r.payload["report_id"] for r in rows if r.recipient in (staff, teammate)} == {report.pk}
    assert DailyReport.objects.count() == 3  # every job's, olivia's, oscar's

    # Sending the same report again sends nothing more.
    assert reports.send_daily_report(report, now=NOW) == []
    assert len(smtp.messages()) == 4 and DailyReport.objects.count() == 3


def test_the_command_sends(smtp, make_job, owner):
    make_job(name="elena v1")
    subscribe(owner)
    out = io.StringIO()
    call_command("daily_report", "--send", stdout=out)
    [message] = smtp.messages()
    assert message["To"] == owner.email and "elena v1" in message.get_body(("plain",)).get_content()
    assert f"{owner.email}: sent" in out.getvalue()


def _someone_else():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("nadia", "nadia@example.com", "pw-nadia-123")
