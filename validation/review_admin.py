"""QA's review in the admin: the actions "Approve model", "Reject model" and "Request changes",
on the review queue (validation's ModelReview admin) and on the job list (dashboard's admin adds
them), in bulk with one reason; and the same decision for one job from its page.

Each action first shows a confirmation page with the models it would decide and a reason field
(required to reject or ask for changes), as Django's own "delete selected" does; a model the
user may not decide (not QA, their own model, not completed) is refused with the reason while
the others go through.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from training.models import TrainingJob

from . import review
from .models import ModelReview


class ReviewStateFilter(admin.SimpleListFilter):
    """The job list's filter by QA's review of the model."""

    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [*ModelReview.State.choices, ("none", "no review (not completed)")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(review__isnull=True)
        if self.value() in ModelReview.State.values:
            return queryset.filter(review__state=self.value())
        return queryset


TITLES = {review.APPROVE: "Approve model", review.REJECT: "Reject model", review.REQUEST_CHANGES: "Request changes"}
DONE = {review.APPROVE: "approved", review.REJECT: "rejected", review.REQUEST_CHANGES: "sent back for changes"}


class DecisionForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 70}), required=False,
                             max_length=review.MAX_REASON)

    def __init__(self, *args: Any, decision: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decision = decision
        needed = decision in review.NEEDS_REASON
        self.fields["reason"].required = needed
        self.fields["reason"].help_text = ("Required: the owner reads it with a suggested next step." if needed
                                           else "Optional: what convinced you.")
        self.fields["reason"].error_messages["required"] = "Give a reason: the owner needs to know what to change."


def _jobs_of(queryset) -> list[TrainingJob]:
    if queryset.model is TrainingJob:
        return list(queryset.select_related("created_by"))
    return [r.job for r in queryset.select_related("job__created_by")]


def _tell(model_admin, request, decision: str, done: list, refused: list) -> None:
    if done:
        names = ", ".join(sorted(j.name for j in done)[:5]) + (f" and {len(done) - 5} more" if len(done) > 5 else "")
        model_admin.message_user(request, f"{len(done)} model{'s' if len(done) != 1 else ''} {DONE[decision]}: {names}.",
                                 messages.SUCCESS)
    for job, why in refused:
        model_admin.message_user(request, f"{job.name}: {why}", messages.ERROR)


def _state_of(job: TrainingJob) -> str:
    found = getattr(job, "review", None)
    return found.get_state_display() if found is not None else "—"


def _confirmation(model_admin, request, decision: str, jobs: list[TrainingJob], form: DecisionForm, *,
                  selected: list[str] | None, action: str | None, back: str):
    context = {
        **model_admin.admin_site.each_context(request), "title": TITLES[decision], "decision": decision,
        "jobs": [(job, review.refusal(request.user, job, decision), _state_of(job),
                  review.verdict_words(getattr(job, "validation", None))) for job in jobs],
        "form": form, "done_word": DONE[decision],
        "selected": selected, "action": action, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": model_admin.model._meta, "back": back,
        "button": {review.APPROVE: "Approve", review.REJECT: "Reject", review.REQUEST_CHANGES: "Request changes"}[decision],
    }
    return TemplateResponse(request, "admin/validation/review/decide.html", context)


def review_action(decision: str):
    """An admin action for a queryset of jobs or of reviews."""

    def action(model_admin, request, queryset):
        jobs = _jobs_of(queryset)
        form = DecisionForm(request.POST if request.POST.get("confirm") else None, decision=decision)
        if form.is_bound and form.is_valid():
            done, refused = review.decide_many(jobs, request.user, decision, form.cleaned_data["reason"])
            _tell(model_admin, request, decision, done, refused)
            return None  # back to the list
        return _confirmation(model_admin, request, decision, jobs, form,
                             selected=request.POST.getlist(helpers.ACTION_CHECKBOX_NAME), action=request.POST["action"],
                             back=request.get_full_path())

    action.__name__ = f"{decision}_models"
    return admin.action(description=TITLES[decision])(action)


approve_models = review_action(review.APPROVE)
reject_models = review_action(review.REJECT)
request_changes = review_action(review.REQUEST_CHANGES)
ACTIONS = (approve_models, reject_models, request_changes)


def decide_one_view(model_admin, request, job_id: str, decision: str):
    """The job page's buttons: the same confirmation for one job, then back to its page."""
    job = TrainingJob.objects.visible_to(request.user).filter(pk=job_id).select_related("created_by").first()
    if job is None or decision not in review.DECISIONS or not request.user.has_perm("training.view_trainingjob"):
        raise Http404("No such training job.")
    page = reverse("admin:training_trainingjob_change", args=[job.pk])
    form = DecisionForm(request.POST if request.method == "POST" else None, decision=decision)
    if form.is_bound and form.is_valid():
        try:
            review.decide(job, request.user, decision, form.cleaned_data["reason"])
            _tell(model_admin, request, decision, [job], [])
        except review.ReviewRefused as exc:
            _tell(model_admin, request, decision, [], [(job, exc.message)])
        return HttpResponseRedirect(page)
    return _confirmation(model_admin, request, decision, [job], form, selected=None, action=None, back=page)
