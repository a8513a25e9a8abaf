"""QA's review of a model: opened when the job completes, decided only by QA (a permission
matrix), never by the owner on their own model unless allowed, a reason for rejections, every
decision audited with the report version seen, mirrored on the artifact, told to the owner with
a next step; a retrained model gets a review of its own; the queue; the admin's bulk actions."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from artifacts.models import ModelArtifact
from notifications.kinds import Kind
from notifications.messages import build_message
from notifications.models import Notification
from tests.validation.results import report, suite_of, worker_results
from training.events import record_event
from training.lifecycle import Status
from training.models import JobEvent, TrainingJob
from validation.models import ModelReview, ReviewDecision, ValidationReport
from validation.review import request_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def qa(django_user_model, settings):
    user = django_user_model.objects.create_user("quinn", "quinn@example.com", "pw-quinn-123", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=settings.VALIDATION_QA_GROUP)[0])
    return user


@pytest.fixture
def clerk(django_user_model):
    return django_user_model.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)


def complete(job, django_capture_on_commit_callbacks) -> TrainingJob:
    """The job completes as ingestion completes it: its status, then the status_changed event."""
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    with django_capture_on_commit_callbacks(execute=True):
        record_event(job.pk, JobEvent.Type.STATUS_CHANGED, source="worker", old_status=Status.TRAINING,
                     new_status=Status.COMPLETED)
    job.refresh_from_db()
    return job


@pytest.fixture
def done(job, django_capture_on_commit_callbacks):
    """A validated, completed job with its artifact and report version 1."""
    report(job, worker_results(suite_of(job), forgotten=10), django_capture_on_commit_callbacks)
    ModelArtifact.objects.create(job=job, adapter_path="", adapter_config_path="")
    return complete(job, django_capture_on_commit_callbacks)


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_a_completed_job_waits_for_review(done):
    review = ModelReview.objects.get(job=done)
    assert review.state == "awaiting_review"
    assert ModelArtifact.objects.get(job=done).review_state == "awaiting_review"
    assert done.results["review_state"] == "awaiting_review"
    event = JobEvent.objects.get(job=done, event_type=JobEvent.Type.REVIEW)
    assert event.new_status == "awaiting_review" and event.payload["verdict"] == "short of a threshold"
    assert request_review(done).pk == review.pk  # once
    assert JobEvent.objects.filter(job=done, event_type=JobEvent.Type.REVIEW).count() == 1


WHO = ["qa", "clerk", "owner", "teammate", "outsider", "anonymous"]


@pytest.mark.parametrize("decision,reason", [("approve", ""), ("reject", "Retention fell to 80 %.")])
@pytest.mark.parametrize("who,expected", zip(WHO, [200, 403, 403, 403, 404, 401], strict=True))
def test_who_may_decide(done, request, who, expected, decision, reason):
    user = None if who == "anonymous" else request.getfixturevalue(who)
    response = api(user).post(f"/api/training/jobs/{done.pk}/review", {"decision": decision, "reason": reason},
                              format="json")
    assert response.status_code == expected, response.content
    state = ModelReview.objects.get(job=done).state
    if expected == 200:
        assert state == {"approve": "approved", "reject": "rejected"}[decision]
        assert ModelArtifact.objects.get(job=done).review_state == state
    else:
        assert state == "awaiting_review" and not ReviewDecision.objects.exists()
    if expected == 403 and who != "anonymous":
        assert response.json()["detail"] == "Only QA can approve or reject models."


def test_an_owner_in_qa_may_not_approve_their_own_model_unless_allowed(done, owner, settings):
    owner.groups.add(Group.objects.get_or_create(name=settings.VALIDATION_QA_GROUP)[0])
    response = api(owner).post(f"/api/training/jobs/{done.pk}/review", {"decision": "approve"}, format="json")
    assert response.status_code == 403 and "You cannot approve your own model" in response.json()["detail"]
    settings.VALIDATION_QA_SELF_APPROVAL = True
    assert api(owner).post(f"/api/training/jobs/{done.pk}/review", {"decision": "approve"},
                           format="json").status_code == 200


@pytest.mark.parametrize("decision", ["reject", "request_changes"])
def test_rejecting_or_asking_for_changes_needs_a_reason(done, qa, decision):
    response = api(qa).post(f"/api/training/jobs/{done.pk}/review", {"decision": decision, "reason": "  "},
                            format="json")
    assert response.status_code == 400
    assert response.json() == {"reason": ["Give a reason: the owner needs to know what to change."]}
    assert ModelReview.objects.get(job=done).state == "awaiting_review"


def test_only_a_completed_jobs_model_is_reviewed(job, qa):
    response = api(qa).post(f"/api/training/jobs/{job.pk}/review", {"decision": "approve"}, format="json")
    assert response.status_code == 403 and "Only a completed job's model can be reviewed" in response.json()["detail"]
    assert api(qa).get(f"/api/training/jobs/{job.pk}/review").status_code == 404


def test_every_decision_is_audited_with_the_report_version_seen(done, qa, django_capture_on_commit_callbacks):
    api(qa).post(f"/api/training/jobs/{done.pk}/review", {"decision": "request_changes",
                                                          "reason": "Fewer epochs, please."}, format="json")
    ValidationReport.objects.create(job=done, version=2, key="k", sha256="0" * 64, reason="requested")
    api(qa).post(f"/api/training/jobs/{done.pk}/review", {"decision": "approve", "reason": "Fixed in v2."},
                 format="json")
    body = api(qa).get(f"/api/training/jobs/{done.pk}/review").json()
    assert body["state"] == "approved" and body["decided_by"] == "quinn" and body["report_version"] == 2
    assert [(d["state"], d["by"], d["reason"], d["report_version"], d["via"]) for d in body["decisions"]] == [
        ("changes_requested", "quinn", "Fewer epochs, please.", 1, "api"),
        ("approved", "quinn", "Fixed in v2.", 2, "api")]


def test_a_rejection_tells_the_owner_a_next_step(done, qa, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        api(qa).post(f"/api/training/jobs/{done.pk}/review",
                     {"decision": "reject", "reason": "It forgot tax basics."}, format="json")
    note = Notification.objects.get(kind=Kind.REJECTED, recipient=owner)
    assert note.channel == "email"  # the owner's default, with no settings chosen
    message = build_message(note)
    assert message.subject == "Model rejected: elena v1 — It forgot tax basics."
    assert "quinn rejected the model after reading validation report version 1." in message.text
    assert "Retry with the Conservative preset" in message.text  # retention fell short
    assert "#retry-form" in message.text


def test_a_retrained_model_gets_a_review_of_its_own(done, qa, django_capture_on_commit_callbacks):
    api(qa).post(f"/api/training/jobs/{done.pk}/review", {"decision": "reject", "reason": "Forgets."}, format="json")
    retry = TrainingJob.objects.create(
        training_file=done.training_file, base_model=done.base_model, name="elena v2", executor="local",
        configuration=done.configuration, gpu_type="CPU_LOCAL", gpu_pricing_tier="spot", secret="s2",
        created_by=done.created_by, parent=done, status=Status.TRAINING)
    complete(retry, django_capture_on_commit_callbacks)
    assert ModelReview.objects.get(job=retry).state == "awaiting_review"
    assert ModelReview.objects.get(job=done).state == "rejected"
    queue = api(qa).get("/api/validation/reviews").json()
    assert [r["job_name"] for r in queue] == ["elena v2"]
    assert [r["job_name"] for r in api(qa).get("/api/validation/reviews?state=rejected").json()] == ["elena v1"]
    assert api(qa).get("/api/validation/reviews?state=maybe").status_code == 400


def test_the_queue_shows_only_jobs_one_may_see(done, outsider):
    assert api(outsider).get("/api/validation/reviews").json() == []


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_job_lists_bulk_reject_asks_one_reason_then_decides_each(
        done, qa, owner, django_capture_on_commit_callbacks):
    running = TrainingJob.objects.create(
        training_file=done.training_file, base_model=done.base_model, name="still running", executor="local",
        configuration=done.configuration, gpu_type="CPU_LOCAL", gpu_pricing_tier="spot", secret="s3",
        created_by=owner, status=Status.TRAINING)
    changelist = reverse("admin:training_trainingjob_changelist")
    client = admin_client(qa)
    selected = {"action": "reject_models", "_selected_action": [str(done.pk), str(running.pk)]}
    page = client.post(changelist, selected)
    text = page.content.decode()
    assert page.status_code == 200 and "Reject model" in text and "still running" in text
    assert "Only a completed job&#x27;s model can be reviewed" in text
    missing = client.post(changelist, {**selected, "confirm": "yes", "reason": ""})
    assert "Give a reason: the owner needs to know what to change." in missing.content.decode()
    assert ModelReview.objects.get(job=done).state == "awaiting_review"
    decided = client.post(changelist, {**selected, "confirm": "yes", "reason": "Forgets too much."}, follow=True)
    text = decided.content.decode()
    assert "1 model rejected: elena v1." in text and "Still running: Only a completed job" in text
    assert ModelReview.objects.get(job=done).reason == "Forgets too much."
    assert ReviewDecision.objects.get().via == "admin"
    filtered = client.get(changelist + "?review=rejected")
    assert "elena v1" in filtered.content.decode() and "still running" not in filtered.content.decode()


def test_the_job_page_decides_one_model_and_the_queue_opens_on_awaiting(done, qa, clerk):
    client = admin_client(qa)
    queue = client.get(reverse("admin:validation_modelreview_changelist"))
    assert queue.status_code == 302 and queue["Location"].endswith("?state__exact=awaiting_review")
    assert "elena v1" in client.get(queue["Location"]).content.decode()
    url = reverse("admin:validation_modelreview_decide", args=[done.pk, "approve"])
    job_page = client.get(reverse("admin:training_trainingjob_change", args=[done.pk])).content.decode()
    assert f'href="{url}"' in job_page and 'id="review-reject"' in job_page
    assert "Approve" in client.get(url).content.decode()
    back = client.post(url, {"confirm": "yes", "reason": ""})
    assert back.status_code == 302 and back["Location"] == reverse("admin:training_trainingjob_change", args=[done.pk])
    assert ModelReview.objects.get(job=done).state == "approved"
    # Staff who may not see jobs in the admin: as if the job did not exist.
    assert admin_client(clerk).get(url).status_code == 404
    # Staff who see jobs but are not QA get the page, and the decision is refused with the reason.
    from django.contrib.auth.models import Permission
    clerk.user_permissions.add(Permission.objects.get(codename="view_trainingjob"))
    response = admin_client(clerk).post(reverse("admin:validation_modelreview_decide", args=[done.pk, "reject"]),
                                        {"confirm": "yes", "reason": "No."}, follow=True)
    assert "Only QA can approve or reject models." in response.content.decode()
    assert ModelReview.objects.get(job=done).state == "approved"
    assert admin_client(qa).get(reverse("admin:validation_modelreview_decide",
                                        args=[uuid.uuid4(), "approve"])).status_code == 404
