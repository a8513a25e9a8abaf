"""In a real browser: a QA member selects two completed jobs on the job list, chooses "Reject
model", is asked for one reason, gives it, and both models are rejected with it; then approves a
third from the review queue (which opens on the models awaiting review). The job list's review
filter then shows each where it belongs."""

from __future__ import annotations

import hashlib

import pytest
from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group
from django.urls import reverse

from artifacts.models import ModelArtifact
from training.lifecycle import Status
from training.models import BaseModel, HyperparameterPreset, TrainingFile, TrainingJob
from validation.models import ModelReview, ReviewDecision
from validation.review import ensure_qa_group, request_review

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def jobs(catalogue, django_user_model, settings):
    owner = django_user_model.objects.create_user("olivia", "olivia@example.com", "pw-olivia-123")
    qa = django_user_model.objects.create_user("quinn", "quinn@example.com", "pw-quinn-123", is_staff=True)
    # The permissions and the QA group as migrate leaves them (post_migrate): a transactional test
    # before this one may have flushed the tables without running post_migrate again.
    for config in apps.get_app_configs():
        create_permissions(config, verbosity=0)
    ensure_qa_group()
    qa.groups.add(Group.objects.get(name=settings.VALIDATION_QA_GROUP))
    dataset = TrainingFile.objects.create(name="elena.jsonl", file="datasets/elena.jsonl",
                                          sha256=hashlib.sha256(b"elena").hexdigest(), validation_status="valid",
                                          created_by=owner)
    made = []
    for name in ("elena v1", "elena v2", "elena v3"):
        job = TrainingJob.objects.create(
            name=name, training_file=dataset, base_model=BaseModel.objects.get(slug="smollm2-135m-instruct"),
            preset=HyperparameterPreset.objects.get(slug="balanced"), created_by=owner,
            configuration={"hyperparameters": {}}, gpu_type="CPU_LOCAL")
        TrainingJob.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
        job.refresh_from_db()
        ModelArtifact.objects.create(job=job, adapter_path="", adapter_config_path="")
        request_review(job)
        made.append(job)
    return qa, made


def test_qa_rejects_two_models_with_one_reason_and_approves_one_from_the_queue(live_server, page, screenshot, jobs):
    qa, (first, second, third) = jobs
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", "quinn")
    page.fill("#id_password", "pw-quinn-123")
    page.click("input[type=submit]")

    page.goto(f"{live_server.url}{reverse('admin:training_trainingjob_changelist')}")
    for job in (first, second):
        page.check(f"input[name=_selected_action][value='{job.pk}']")
    page.select_option("select[name=action]", "reject_models")
    page.click("button[name=index]")
    page.wait_for_selector("#decision-form")
    assert page.locator("#review-jobs tbody tr").count() == 2
    screenshot("reject-confirmation")
    page.click("#confirm-decision")  # no reason yet: the browser refuses to send it, nothing is decided
    assert page.locator("#id_reason").evaluate("field => field.validity.valueMissing")
    assert not ReviewDecision.objects.exists()
    page.fill("#id_reason", "Retention fell below 95 %: it forgot tax basics.")
    page.click("#confirm-decision")
    page.wait_for_selector(".messagelist .success")
    assert "2 models rejected: elena v1, elena v2." in page.locator(".messagelist").inner_text()
    for job in (first, second):
        review = ModelReview.objects.get(job=job)
        assert (review.state, review.reason, review.decided_by_id) == (
            "rejected", "Retention fell below 95 %: it forgot tax basics.", qa.pk)
    assert ReviewDecision.objects.filter(state="rejected").count() == 2

    page.goto(f"{live_server.url}{reverse('admin:validation_modelreview_changelist')}")
    page.wait_for_selector("#result_list")
    assert "state__exact=awaiting_review" in page.url
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "elena v3" in rows.first.inner_text()
    page.check("input[name=_selected_action]")
    page.select_option("select[name=action]", "approve_models")
    page.click("button[name=index]")
    page.wait_for_selector("#decision-form")
    page.click("#confirm-decision")  # approving needs no reason
    page.wait_for_selector(".messagelist .success")
    screenshot("approved")
    assert ModelReview.objects.get(job=third).state == "approved"
    assert ModelArtifact.objects.get(job=third).review_state == "approved"

    page.goto(f"{live_server.url}{reverse('admin:training_trainingjob_changelist')}?review=rejected")
    names = page.locator("#result_list tbody th").all_inner_texts()
    assert sorted(names) == ["elena v1", "elena v2"]
