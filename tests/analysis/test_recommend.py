"""recommend(): continue, stop early, or use an earlier checkpoint, with the reason in words."""

from __future__ import annotations

import dataclasses
import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.points import Point
from monitoring.recommendation import ERROR_CHARS, Outcome, final_verdict, recommend
from monitoring.trends import best_step

from .curves import clean_curve, curves, overfitting_curve, shuffled_with_duplicates, with_value

FAST = settings(max_examples=60, deadline=None)


def test_a_clean_curve_continues():
    advice = recommend(clean_curve())
    assert advice.action == "continue" and advice.checkpoint_step is None
    assert "still improving" in advice.reason


def test_an_overfitting_curve_goes_back_to_the_best_step():
    advice = recommend(overfitting_curve(best=60))
    assert advice.action == "use_checkpoint" and advice.checkpoint_step == 60
    assert "overfitting" in advice.reason and "step 60" in advice.reason


def test_no_improvement_for_patience_evaluations_names_the_checkpoint():
    evals = {100: 1.5, 200: 1.3, 300: 1.234, 400: 1.30, 500: 1.31, 600: 1.30, 700: 1.31, 800: 1.30, 900: 1.31}
    points = [Point(s, 1.0, evals.get(s)) for s in range(50, 901, 50)]
    advice = recommend(points, patience=5)
    assert advice.action == "use_checkpoint" and advice.checkpoint_step == 300
    assert advice.reason == ("Held-out loss has not improved for 6 evaluations since step 300 "
                             "(best 1.234); use the checkpoint at step 300.")


def test_fewer_stale_evaluations_than_patience_waits():
    evals = {100: 1.5, 200: 1.3, 300: 1.234, 400: 1.30, 500: 1.31}
    points = [Point(s, 1.0, evals.get(s)) for s in range(50, 501, 50)]
    advice = recommend(points, patience=5)
    assert advice.action == "continue" and "2 evaluations ago" in advice.reason


def test_marginal_improvements_below_min_delta_stop_at_the_latest_best():
    points = [Point(s * 100, 1.0, 1.0 - s * 0.001) for s in range(1, 9)]
    advice = recommend(points, patience=5, min_delta=0.01)
    assert advice.action == "stop_early" and advice.checkpoint_step is None
    assert "by more than 0.01" in advice.reason


def test_divergence_after_evaluations_uses_the_best_checkpoint_before_it():
    points = with_value(clean_curve(), 95, train_loss=math.nan)
    advice = recommend(points)
    assert advice.action == "use_checkpoint" and advice.checkpoint_step == 90
    assert advice.reason.startswith("Training diverged: training loss became nan at step 95")


def test_divergence_without_any_evaluation_stops_early():
    points = [Point(s, 2.0 - s / 100) for s in range(1, 20)] + [Point(20, math.inf)]
    advice = recommend(points)
    assert advice.action == "stop_early" and advice.checkpoint_step is None


def test_no_evaluation_yet_continues():
    assert recommend([Point(s, 2.0 - s / 100) for s in range(1, 20)]).action == "continue"
    assert recommend([]).action == "continue"


@FAST
@given(st.data())
def test_the_advice_is_consistent_and_order_free(data):
    points = data.draw(curves())
    advice = recommend(points)
    assert recommend(data.draw(shuffled_with_duplicates(points))) == advice
    assert advice.action in ("continue", "stop_early", "use_checkpoint")
    assert (advice.checkpoint_step is not None) == (advice.action == "use_checkpoint")
    assert advice.reason
    if advice.checkpoint_step is not None:
        evaluated = {p.step for p in points if p.eval_loss is not None and math.isfinite(p.eval_loss)}
        assert advice.checkpoint_step in evaluated


@FAST
@given(curves(allow_nonfinite=False))
def test_without_divergence_the_checkpoint_is_the_best_step(points):
    advice = recommend(points)
    if advice.checkpoint_step is not None and "diverged" not in advice.reason:
        assert advice.checkpoint_step == best_step(points)[0]


# --- final_verdict: a finished job is judged, never told to continue ----------------------------

DEMO = Outcome("completed", stage="validation", step=12, total_steps=12, perplexity_base=20.05,
               perplexity_trained=17.44, eval_loss=math.log(17.59), eval_step=12, heldout_samples=40)


def test_a_completed_run_that_improved_says_so_with_loss_and_perplexity():
    verdict = final_verdict(DEMO)
    assert verdict.kind == "improved" and verdict.headline == "finished"
    assert verdict.reason == ("Finished: held-out loss improved from 2.998 to 2.859; "
                              "perplexity 20.05 → 17.44 (13.0% lower).")


def test_a_completed_run_that_got_worse_says_so():
    verdict = final_verdict(dataclasses.replace(DEMO, perplexity_base=17.44, perplexity_trained=20.05))
    assert verdict.kind == "worse"
    assert verdict.reason.startswith("Finished, but the adapter made held-out loss worse: 2.859 → 2.998; "
                                     "perplexity 17.44 → 20.05 (15.0% higher).")


def test_a_completed_run_names_the_better_checkpoint_the_analyser_found():
    advice = recommend(overfitting_curve(best=60))
    verdict = final_verdict(dataclasses.replace(DEMO, advice=advice))
    assert "use the checkpoint at step 60" in verdict.reason and verdict.reason.startswith("Finished:")


def test_a_completed_run_without_validation_falls_back_to_the_trainer_loss():
    verdict = final_verdict(dataclasses.replace(DEMO, perplexity_base=None, perplexity_trained=None))
    assert verdict.kind == "finished"
    assert verdict.reason.startswith("Finished: held-out loss 2.867 at step 12 (the Trainer's evaluation")
    bare = final_verdict(Outcome("completed"))
    assert "no held-out evaluation was reported" in bare.reason


def test_a_cancelled_run_says_where_and_whether_a_checkpoint_was_saved():
    saved = final_verdict(Outcome("cancelled", stage="training", step=40, total_steps=200, checkpoint_step=30))
    assert saved.reason == "Cancelled at step 40 of 200; the checkpoint at step 30 was saved."
    unsaved = final_verdict(Outcome("cancelled", stage="training", step=1200, total_steps=2400))
    assert unsaved.reason == "Cancelled at step 1,200 of 2,400; no checkpoint was saved."
    early = final_verdict(Outcome("cancelled"))
    assert early.reason == "Cancelled before training started; no checkpoint was saved."


def test_a_failed_run_gives_the_stage_the_error_and_the_fix():
    verdict = final_verdict(Outcome("failed", stage="training", error="CUDA out of memory.",
                                    error_type="out_of_memory", suggested_fix="Lower per_device_batch_size to 2."))
    assert verdict.kind == "failed"
    assert verdict.reason == ("Failed during training: CUDA out of memory (out_of_memory). "
                              "Suggested fix: Lower per_device_batch_size to 2.")
    long = final_verdict(Outcome("failed", error="x" * 5000))
    assert len(long.reason) < ERROR_CHARS + 40 and long.reason.startswith("Failed: xxx")


PERPLEXITY = st.none() | st.floats(min_value=1.0001, max_value=1e6)


@FAST
@given(st.sampled_from(["completed", "failed", "cancelled"]), PERPLEXITY, PERPLEXITY,
       st.none() | st.integers(min_value=0, max_value=10 ** 6), st.none() | st.floats(allow_nan=True))
def test_a_verdict_never_says_continue_and_shows_no_raw_floats(ending, base, trained, step, eval_loss):
    verdict = final_verdict(Outcome(ending, step=step, perplexity_base=base, perplexity_trained=trained,
                                    eval_loss=eval_loss, eval_step=step, error="boom"))
    assert "continue" not in verdict.reason.lower() and verdict.reason
    # core.humanize's 4 significant digits (0.06062, 17.44, 2.000), never a raw float's 15-17.
    for number in re.findall(r"\d[\d,]*\.\d+", verdict.reason):
        assert len(number.replace(",", "").replace(".", "").lstrip("0")) <= 4, verdict.reason
    if ending == "completed" and base is not None and trained is not None and verdict.kind != "unchanged":
        assert (verdict.kind == "improved") == (trained < base)


def test_a_cancelled_job_got_at_least_as_far_as_its_checkpoint():
    # Step 2 completed and was checkpointed as the worker stopped; its metrics came after the
    # cancel and were refused, so the job's last reported step is 1.
    verdict = final_verdict(Outcome("cancelled", stage="training", step=1, total_steps=5000, checkpoint_step=2))
    assert verdict.reason == "Cancelled at step 2 of 5,000; the checkpoint at step 2 was saved."


def test_a_cancelled_run_whose_worker_is_still_stopping_claims_no_missing_checkpoint():
    # Between the cancel and the worker's `interrupted` report the job knows no checkpoint yet:
    # saying "no checkpoint was saved" then would be taken back seconds later.
    stopping = final_verdict(Outcome("cancelled", stage="training", step=4, total_steps=12, worker_stopping=True))
    assert stopping.kind == "cancelled"
    assert stopping.reason == ("Cancelled at step 4 of 12; the worker is stopping and saving a checkpoint "
                               "of its last completed step…")
    assert "no checkpoint" not in stopping.reason
    earlier = final_verdict(Outcome("cancelled", stage="training", step=7, total_steps=12, checkpoint_step=5,
                                    worker_stopping=True))
    assert earlier.reason == ("Cancelled at step 7 of 12; the worker is stopping and saving a checkpoint "
                              "of its last completed step (the latest saved so far is at step 5)…")
    # Before training it has no step to save.
    loading = final_verdict(Outcome("cancelled", stage="model loading", worker_stopping=True))
    assert loading.reason == "Cancelled during model loading; the worker is stopping…"
    # Once it has reported, the verdict is what was saved.
    done = final_verdict(Outcome("cancelled", stage="training", step=4, total_steps=12, checkpoint_step=4))
    assert done.reason == "Cancelled at step 4 of 12; the checkpoint at step 4 was saved."
