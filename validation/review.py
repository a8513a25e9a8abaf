"""QA's review of a completed job's model: awaiting review → approved, rejected or changes
requested (a reason required for the last two).

Who decides: QA (the `validation.decide_reviews` permission, or VALIDATION_QA_GROUP), among
those who can see the job; an owner may not approve their own model unless
VALIDATION_QA_SELF_APPROVAL is on. Every decision is audited (ReviewDecision: who, when, what,
why, and the report version they saw), mirrored on ModelArtifact.review_state (approval
releases the deployment package) and told as a `review` job event whose new_status is the
state, which notifications map to review requested, approved and rejected (a rejection tells
the owner a next step). A retrained model is a new job and gets a review of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from artifacts.models import ModelArtifact
from training.events import record_event
from training.lifecycle import Status
from training.models import JobEvent, TrainingJob

from . import sets
from .models import JobValidation, ModelReview, ReviewDecision, ValidationReport, can_decide

APPROVE, REJECT, REQUEST_CHANGES = "approve", "reject", "request_changes"
DECISIONS = {APPROVE: ModelReview.State.APPROVED, REJECT: ModelReview.State.REJECTED,
             REQUEST_CHANGES: ModelReview.State.CHANGES_REQUESTED}
NEEDS_REASON = frozenset({REJECT, REQUEST_CHANGES})
MAX_REASON = 2000


class ReviewRefused(Exception):
    """A decision that may not be made; the message says why, for a person."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        # `field`: the input at fault (bad input, a 400); none: the user may not (a 403).
        self.message, self.field = message, field


def request_review(job: TrainingJob) -> ModelReview | None:
    """The review a completed job's model waits in (made once; None for any other status)."""
    if job.status != Status.COMPLETED:
        return None
    with transaction.atomic():
        review, created = ModelReview.objects.get_or_create(job=job)
        if not created:
            return review
        _mirror(job.pk, review.state)
        record_event(job.pk, JobEvent.Type.REVIEW, source="validation", new_status=review.state,
                     payload={"message": "The model is waiting for QA's review.",
                              "verdict": verdict_words(JobValidation.objects.filter(job=job).first())})
    return review


def refusal(user, job: TrainingJob, decision: str) -> str | None:
    """Why `user` may not make `decision` on `job`'s model, or None if they may."""
    if not can_decide(user):
        return "Only QA can approve or reject models."
    if job.status != Status.COMPLETED:
        return f"Only a completed job's model can be reviewed; this job is {job.get_status_display().lower()}."
    if decision == APPROVE and job.created_by_id == user.pk and not settings.VALIDATION_QA_SELF_APPROVAL:
        return "You cannot approve your own model: another QA member must (VALIDATION_QA_SELF_APPROVAL is off)."
    return None


def decide(job: TrainingJob, user, decision: str, reason: str = "", *, via: str = "admin") -> ModelReview:
    """Record `decision` (approve, reject, request_changes) on `job`'s model; ReviewRefused when
    the user may not or the reason is missing (nothing is written then)."""
    if decision not in DECISIONS:
        raise ReviewRefused(f"decision must be one of {', '.join(DECISIONS)}", field="decision")
    reason = (reason or "").strip()
    if decision in NEEDS_REASON and not reason:
        raise ReviewRefused("Give a reason: the owner needs to know what to change.", field="reason")
    if len(reason) > MAX_REASON:
        raise ReviewRefused(f"The reason is at most {MAX_REASON} characters.", field="reason")
    if problem := refusal(user, job, decision):
        raise ReviewRefused(problem)
    state = DECISIONS[decision]
    with transaction.atomic():
        review, _ = ModelReview.objects.select_for_update().get_or_create(job=job)
        seen = ValidationReport.objects.filter(job=job).order_by("-version").values_list("version", flat=True).first()
        now = timezone.now()
        review.state, review.reason, review.decided_by, review.decided_at, review.report_version = (
            state, reason, user, now, seen)
        review.save(update_fields=["state", "reason", "decided_by", "decided_at", "report_version"])
        ReviewDecision.objects.create(review=review, state=state, reason=reason, by=user, at=now,
                                      report_version=seen, via=via)
        _mirror(job.pk, state)
        validation = JobValidation.objects.filter(job=job).first()
        record_event(job.pk, JobEvent.Type.REVIEW, source="validation", new_status=state, payload={
            "message": reason, "decided_by": user.get_username(), "report_version": seen,
            "suggestion": suggest_next_step(validation, state), "verdict": verdict_words(validation)})
    return review


def decide_many(jobs: Iterable[TrainingJob], user, decision: str, reason: str = "", *,
                via: str = "admin") -> tuple[list[TrainingJob], list[tuple[TrainingJob, str]]]:
    """The admin's bulk action: (decided, [(refused job, why)]); one refusal stops no other."""
    done, refused = [], []
    for job in jobs:
        try:
            decide(job, user, decision, reason, via=via)
            done.append(job)
        except ReviewRefused as exc:
            refused.append((job, exc.message))
    return done, refused


def _mirror(job_id: Any, state: str) -> None:
    """The state on the artifact (if registered) and on the job, for an artifact registered later."""
    TrainingJob.objects.merge_results(job_id, review_state=state)
    ModelArtifact.objects.filter(job_id=job_id).update(review_state=state)


def verdict_words(validation: JobValidation | None) -> str:
    """The validation's verdict as a reviewer reads it in a list."""
    if validation is None:
        return "not validated"
    passed = (validation.summary or {}).get("passed")
    return "passed every threshold" if passed else "short of a threshold" if passed is False else "not fully measured"


def suggest_next_step(validation: JobValidation | None, state: str) -> str:
    """What the owner could do after a rejection or a request for changes, from which benchmark
    fell short; "" after an approval."""
    if state not in (ModelReview.State.REJECTED, ModelReview.State.CHANGES_REQUESTED):
        return ""
    benchmarks = ((validation.summary or {}).get("benchmarks") or {}) if validation else {}
    short = {key for key, entry in benchmarks.items() if entry.get("passed") is False}
    if sets.KNOWLEDGE_RETENTION in short:
        return ("Retry with the Conservative preset: a lower learning rate and fewer epochs make the model "
                "forget less of what it knew.")
    if short & {"perplexity", sets.EMOTIONAL_INTELLIGENCE}:
        return ("Retry with more or better examples of the replies you want, or the Aggressive preset if the "
                "loss was still falling when training stopped.")
    if sets.BRAND_VOICE in short:
        return "Add examples written in the brand voice (the flagged replies show what is missing), then retry."
    return "Read the reviewer's reason, change the dataset or the preset, and retry the job."


# What the QA group (VALIDATION_QA_GROUP) may do in the admin: see jobs, their validation and
# the review queue, score replies and decide reviews.
QA_PERMISSIONS = (
    ("training", "view_trainingjob"), ("artifacts", "view_modelartifact"),
    ("validation", "view_jobvalidation"), ("validation", "view_validationreply"),
    ("validation", "view_modelreview"), ("validation", "score_replies"), ("validation", "decide_reviews"),
)


def ensure_qa_group(**_: Any) -> None:
    """Create the QA group if it is missing and give it QA_PERMISSIONS (post_migrate); what an
    operator added to it is kept."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=settings.VALIDATION_QA_GROUP)
    for app_label, codename in QA_PERMISSIONS:
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            group.permissions.add(permission)
