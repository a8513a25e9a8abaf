"""`manage.py watch`: plain words before any metrics, a progress line while training, the
analyser's advice and the quality score when the job ends, a clear error for unknown ids."""

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
    assert "3000 tok/s" in output and "ETA 12m00s" in output and "$0" in output
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
    assert "Recommendation: continue" in output or "Recommendation: stop early" in output \
        or "Recommendation: use checkpoint" in output
    assert "Quality score:" in output and "/100 (grade " in output


def test_a_failed_job_ends_with_its_error_and_the_advice(job):
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.FAILED, error_type="OutOfMemoryError",
                                                 error_message="CUDA out of memory", error_suggested_fix="batch 2")
    output = watch(str(job.pk))
    assert "is failed." in output and "CUDA out of memory" in output and "Suggested fix: batch 2" in output
    assert "Recommendation: continue — No held-out evaluation yet" in output
    assert "Quality score" not in output


@pytest.mark.parametrize("job_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_an_unknown_job_is_a_clear_error(db, job_id):
    with pytest.raises(CommandError, match="No training job with id"):
        watch(job_id)
