"""A finished job's dashboard shows how it ended: the result first (perplexity and held-out loss
before → after, each figure named for what it is), a verdict instead of advice, no time left,
numbers for people, and an event log without its heartbeats unless asked for.

The completed job is driven through the signed webhook as the demo's run reports it (12 steps,
periodic evaluation, validation, completion), so the figures come from where they really do."""

from __future__ import annotations

import math
import re
from html import unescape

import pytest
from django.urls import reverse

from core import humanize
from training.lifecycle import Status
from training.models import JobEvent, TrainingJob

from .conftest import point

pytestmark = pytest.mark.django_db

BASE, TRAINED = 20.05, 17.44  # the validation step's perplexities (token-weighted, held-out)
TRAINER_EVAL = math.log(17.59)  # the Trainer's last periodic eval_loss: the table shows exp() of it


def raw_floats(text: str) -> list[str]:
    """Decimals with more than five significant digits: 0.3076923076923077, 2.9872450828552246."""
    return [n for n in re.findall(r"\d+\.\d+", text) if len(n.replace(".", "").lstrip("0")) > 5]


@pytest.fixture(autouse=True)
def no_delivery(monkeypatch):
    import training.tasks as tasks

    monkeypatch.setattr(tasks.stop_job_execution, "delay", lambda *a, **k: None)
    monkeypatch.setattr(tasks.launch_job, "delay", lambda *a, **k: None)


def url(job, suffix: str = "") -> str:
    return reverse("admin:training_trainingjob_dashboard", args=[job.pk]) + suffix


def run_the_demo(worker, job, heartbeats: int = 12) -> None:
    """The demo's run as its worker reports it, with a stale ETA left over from training."""
    points = [point(s, total_steps=12, epoch=s / 13 * 4, train_loss=3.2 - s * 0.03,
                    eval_loss=(TRAINER_EVAL + 0.1 if s == 6 else TRAINER_EVAL) if s in (6, 12) else None,
                    learning_rate=2e-4 * (1 - s / 12), grad_norm=2.3909203547906803, tokens_per_second=1234.5678,
                    eta_seconds=(12 - s) * 80.0) for s in range(1, 13)]
    assert worker.send("metrics", {"points": points}).status == 200
    for i in range(heartbeats):
        assert worker.send("heartbeat", {"stage": "training", "step": min(12, i + 1), "total_steps": 12}).status == 200
    TrainingJob.objects.filter(pk=job.pk).update(estimated_time_remaining_minutes=85)
    for stage in ("finalizing", "validating"):
        assert worker.send("stage_changed", {"stage": stage}).status == 200
    evaluators = {"perplexity": {"base": BASE, "trained": TRAINED, "improvement_pct": (BASE - TRAINED) / BASE * 100,
                                 "samples": 40, "tokens": 5123}}
    assert worker.send("validation_results", {"evaluators": evaluators}).status == 200
    assert worker.send("completed", {"final_train_loss": 2.9872450828552246, "final_eval_loss": TRAINER_EVAL,
                                     "steps": 12, "adapter_key": "adapter", "summary": {"steps": 12}}).status == 200
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.current_stage == Status.VALIDATING


def visible_text(html: str) -> str:
    """The page's text as a person reads it: no script, no tags, no hidden blocks' markup."""
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_a_completed_job_leads_with_its_result(staff_client, worker, job):
    run_the_demo(worker, job)
    html = staff_client.get(url(job)).content.decode()
    text = visible_text(html)
    # The result block comes before the status card, open.
    assert 0 <= html.index('id="result-block"') < html.index('id="status-card"')
    assert re.search(r'<section id="result-block" class="improved"\s*>', html)
    assert "Perplexity 20.05 → 17.44" in text
    assert "13.0% lower (better), -2.610 absolute" in text
    assert "Held-out loss 2.998 → 2.859 ( -0.1395 absolute" in text
    assert "40 held-out samples, 5,123 assistant tokens" in text
    assert "Finished: held-out loss improved from 2.998 to 2.859; perplexity 20.05 → 17.44 (13.0% lower)." in text
    # The other perplexity is named and explained, not left to contradict the headline.
    assert "exp(eval loss), 17.59 at step 12, is the Trainer's periodic evaluation" in text
    assert "Perplexity (validation) 17.44" in text and "exp(eval loss) 17.59" in text


def test_a_completed_job_shows_no_stale_stage_advice_or_time_left(staff_client, worker, job):
    run_the_demo(worker, job)
    html = staff_client.get(url(job)).content.decode()
    text = visible_text(html)
    data = staff_client.get(url(job, "data/")).json()
    assert data["text"]["stage"] == "Finished (all stages done)"
    assert data["text"]["advice_label"] == "Verdict" and data["text"]["advice_action"] == "finished"
    assert data["text"]["eta"] == "—" and data["is_terminal"] and data["has_result"]
    assert "Validating" not in text and "continue" not in text.lower() and "still improving" not in text
    assert re.search(r'<div class="row" id="eta-row"\s+hidden>', html)
    assert 'data-stage="validating"' in html and "stage done" in html and "stage current" not in html


def test_no_raw_floats_anywhere_on_the_page_or_in_the_feed(staff_client, worker, job):
    run_the_demo(worker, job)
    html = staff_client.get(url(job), {"heartbeats": "show"}).content.decode()
    assert not raw_floats(visible_text(html))
    feed = staff_client.get(url(job, "data/")).content.decode()
    assert not raw_floats(feed)
    rows = staff_client.get(url(job, "data/")).json()["metrics"]
    assert rows[0] == {**rows[0], "step": "12", "epoch": "3.69", "train_loss": "2.840", "eval_loss": "2.867",
                       "learning_rate": "0", "perplexity": "17.59", "grad_norm": "2.39",
                       "tokens_per_second": "1,235"}
    # The stored payload keeps its precision; only the page rounds it.
    assert JobEvent.objects.filter(job=job, event_type="completed").get().payload["final_train_loss"] == 2.9872450828552246


def test_a_cancelled_job_says_where_it_stopped_and_what_was_saved(staff_client, job):
    TrainingJob.objects.filter(pk=job.pk).update(current_stage=Status.TRAINING, current_step=40, total_steps=200,
                                                 last_checkpoint_step=30, estimated_time_remaining_minutes=85,
                                                 trend_state={})
    assert staff_client.post(url(job, "cancel/")).status_code == 302
    html = staff_client.get(url(job)).content.decode()
    text = visible_text(html)
    data = staff_client.get(url(job, "data/")).json()
    assert data["text"]["stage"] == "Cancelled during training"
    assert data["text"]["verdict"] == "Cancelled at step 40 of 200; the checkpoint at step 30 was saved."
    assert data["text"]["advice_action"] == "cancelled" and data["text"]["eta"] == "—"
    assert "continue" not in text.lower() and "85" not in data["text"]["eta"]
    assert 'class="stage cancelled" data-stage="training"' in html
    assert not data["has_result"] and re.search(r'<div id="result-figures"\s+hidden>', html)
    assert data["text"]["perplexity"] == "— (not measured)"


def test_a_failed_job_gives_its_reason_as_the_verdict(staff_client, worker, job):
    TrainingJob.objects.filter(pk=job.pk).update(current_stage=Status.TRAINING)
    assert worker.send("error", {"error_type": "out_of_memory", "message": "CUDA out of memory at step 12",
                                 "suggested_fix": "Lower per_device_batch_size to 2.", "exit_code": 2}).status == 200
    data = staff_client.get(url(job, "data/")).json()
    assert data["status"] == Status.FAILED and data["verdict_kind"] == "failed"
    assert data["text"]["stage"] == "Failed during training"
    assert data["text"]["verdict"] == ("Failed during training: CUDA out of memory at step 12 (out_of_memory). "
                                       "Suggested fix: Lower per_device_batch_size to 2.")


def test_a_running_job_still_gets_advice_and_an_eta(staff_client, worker, job):
    # No step timed yet: the estimate's remaining time, marked as such, from the start on (and
    # nothing, rather than "0s", for a job without an estimate).
    assert staff_client.get(url(job, "data/")).json()["text"]["eta"] == "—"
    TrainingJob.objects.filter(pk=job.pk).update(estimate={"stages": {"training": 30.0, "validation": 5.0}})
    data = staff_client.get(url(job, "data/")).json()
    assert re.fullmatch(r"\d[\dhms ]* \(estimate\)", data["text"]["eta"]), data["text"]["eta"]
    worker.send("metrics", {"points": [point(s, train_loss=2.0 - s / 100, eval_loss=2.1 - s / 100 if s % 5 == 0 else None)
                                       for s in range(1, 31)]})
    # The stored column is whatever the last report left; the card shows the live figure, the
    # same the API's job detail gives: 70 steps left at 6 s, plus the later stages' estimates.
    TrainingJob.objects.filter(pk=job.pk).update(estimated_time_remaining_minutes=85)
    assert worker.send("heartbeat", {"stage": "training", "step": 30, "total_steps": 100,
                                     "seconds_per_step": 6.0}).status == 200
    data = staff_client.get(url(job, "data/")).json()
    api = staff_client.get(reverse("job-detail", args=[job.pk])).json()["progress"]
    assert api["basis"] == "measured" and api["eta_seconds"] >= 70 * 6 - 5, api
    assert data["text"]["eta"] == humanize.duration(api["eta_seconds"]), (data["text"]["eta"], api)
    assert "85" not in data["text"]["eta"]
    assert data["text"]["advice_label"] == "Advice" and data["text"]["advice_action"] == "continue"
    assert not data["is_terminal"] and data["text"]["verdict"] == ""
    assert data["text"]["perplexity"] == "— (measured after training)"


def test_heartbeats_are_folded_out_of_the_event_log_by_default(staff_client, worker, job):
    run_the_demo(worker, job, heartbeats=12)
    html = staff_client.get(url(job)).content.decode()
    log = html[html.index('id="event-log"'):]
    assert "12 heartbeats hidden" in log and 'href="?heartbeats=show"' in log
    assert 'data-type="heartbeat"' not in log
    for kept in ("metrics", "status_changed", "validation_results", "completed"):
        assert f'data-type="{kept}"' in log, kept
    shown = staff_client.get(url(job), {"heartbeats": "show"}).content.decode()
    assert shown.count('data-type="heartbeat"') == 12 and "heartbeats hidden" not in shown
    only = staff_client.get(url(job), {"event_type": "heartbeat"}).content.decode()
    assert only.count('data-type="heartbeat"') == 12


def test_the_finished_page_still_needs_a_fixed_number_of_queries(staff_client, worker, job,
                                                                  django_assert_max_num_queries):
    run_the_demo(worker, job, heartbeats=30)
    with django_assert_max_num_queries(13):
        assert staff_client.get(url(job)).status_code == 200
    with django_assert_max_num_queries(8):
        assert staff_client.get(url(job, "data/")).status_code == 200


def test_a_metrics_event_reads_as_a_count_of_points_and_their_steps():
    from dashboard.views import event_summary

    assert event_summary({"points": [{"step": 7}]}) == "1 point, step 7"
    assert event_summary({"points": [{"step": 1}, {"step": 2}, {"step": 3}]}) == "3 points, steps 1–3"
