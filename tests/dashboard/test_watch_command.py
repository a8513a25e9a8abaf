"""`manage.py watch`: plain words before any metrics, a progress line while training, the final
verdict (never "continue"), the result and the quality score when the job ends, no time left
once it has, a clear error for unknown ids."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from training.lifecycle import Status
from training.models import TrainingJob

from .conftest import add_history

pytestmark = pytest.mark.django_db


def watch(*args: str) -> str:
    out = io.StringIO()
    call_command("watch", *args, stdout=out)
    return out.getvalue()


def test_it_says_plainly_that_there_are_no_metrics_yet(job):
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.QUEUED)
    assert "No metrics yet — the job is queued" in watch(str(job.pk), "--once")


def test_it_shows_progress_losses_and_cost_while_training(job):
    add_history(job, 100)
    TrainingJob.objects.filter(pk=job.pk).update(latest_eval_loss=0.95, latest_learning_rate=1e-4,
                                                 estimated_time_remaining_minutes=12)
    output = watch(str(job.pk), "--once")
    assert "50.0%" in output and "step 100/200" in output
    assert "loss 0.9000" in output and "eval 0.9500" in output and "lr 1.00e-04" in output
    assert "3,000 tok/s" in output and "ETA 12m 00s" in output and "$0.00" in output
    assert "\r" not in output  # not a terminal: plain lines


def test_it_follows_the_job_until_it_ends_and_gives_advice_and_quality(job, monkeypatch):
    add_history(job, 100)
    polls = []

    def complete_on_second_poll(seconds):
        polls.append(seconds)
        TrainingJob.objects.filter(pk=job.pk).update(status=Status.COMPLETED, current_step=200,
                                                     progress_percentage=100)

    monkeypatch.setattr("dashboard.management.commands.watch.time.sleep", complete_on_second_poll)
    output = watch(str(job.pk), "--interval", "0.5")
    assert polls == [0.5]
    assert "step 100/200" in output and "step 200/200" in output
    assert "is completed." in output
    assert "Verdict: Finished" in output and "continue" not in output.lower()
    assert "Quality score:" in output and "/100 (grade " in output


def test_a_failed_job_ends_with_its_error_and_the_advice(job):
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.FAILED, error_type="OutOfMemoryError",
                                                 error_message="CUDA out of memory", error_suggested_fix="batch 2")
    output = watch(str(job.pk))
    assert "is failed." in output
    assert "Verdict: Failed: CUDA out of memory (OutOfMemoryError). Suggested fix: batch 2" in output
    assert "continue" not in output.lower() and "Quality score" not in output


@pytest.mark.parametrize("job_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_an_unknown_job_is_a_clear_error(db, job_id):
    with pytest.raises(CommandError, match="No training job with id"):
        watch(job_id)


def test_a_completed_job_ends_with_its_result_and_no_time_left(job):
    add_history(job, 12)
    evaluators = {"perplexity": {"base": 20.05, "trained": 17.44, "samples": 40, "tokens": 5123}}
    TrainingJob.objects.filter(pk=job.pk).update(
        status=Status.COMPLETED, current_stage=Status.VALIDATING, current_step=12, total_steps=12,
        progress_percentage=100, estimated_time_remaining_minutes=85, results={"validation": {"evaluators": evaluators}})
    output = watch(str(job.pk))
    assert "Result: perplexity 20.05 → 17.44 (13.0% lower); held-out loss 2.998 → 2.859 " \
           "(validation step, 40 held-out samples)" in output
    assert "Verdict: Finished: held-out loss improved from 2.998 to 2.859" in output
    assert "ETA" not in output and "Validating" not in output and "continue" not in output.lower()
    assert "Cost: $0.00 (estimated —)" in output


def test_a_cancelled_job_says_where_it_stopped_and_whether_a_checkpoint_was_saved(job):
    add_history(job, 40)
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.CANCELLED, current_stage=Status.TRAINING,
                                                 last_checkpoint_step=None, estimated_time_remaining_minutes=85)
    output = watch(str(job.pk))
    assert "is cancelled." in output and "ETA" not in output
    assert "Verdict: Cancelled at step 40 of 80; no checkpoint was saved." in output
