"""In a real browser: the job list fits a 1366 px wide window (a common laptop) and a 1920 px one,
every column and each row's Dashboard link visible with no horizontal scrolling, neither of the
page nor of the results table (Django's `.results` box scrolls on its own when its table is too
wide, which hid the Dashboard column before)."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from django.urls import reverse

from training.lifecycle import Status
from training.models import BaseModel, HyperparameterPreset, Tag, TrainingFile, TrainingJob

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "pw-ada-123"


@pytest.fixture
def jobs(catalogue, django_user_model) -> list[TrainingJob]:
    """Jobs as the admin's users make them: default names (dataset · preset · date), long models,
    tags, costs with ranges, every kind of status."""
    user = django_user_model.objects.create_superuser("ada-lovelace-operator", "ada@example.com", PASSWORD)
    dataset = TrainingFile.objects.create(
        name="elena_morales_customer_support_chat_history.jsonl", file="datasets/elena.jsonl",
        sha256=hashlib.sha256(b"elena").hexdigest(), validation_status="valid", created_by=user)
    tags = [Tag.objects.create(name=name) for name in ("elena", "first-run", "customer-support")]
    made = []
    for n, (status, base, preset) in enumerate([
        (Status.TRAINING, "llama-3-70b-instruct", "balanced"),
        (Status.COMPLETED, "llama-3-70b-instruct", "aggressive"),
        (Status.CANCELLED, "llama-3-70b-instruct", "conservative"),
        (Status.FAILED, "llama-3-70b-instruct", "balanced"),
        (Status.PENDING, "llama-3-70b-instruct", "balanced"),
    ]):
        job = TrainingJob.objects.create(
            name=f"{dataset.name} · {preset.capitalize()} · 2026-11-23 20:{n:02d}", training_file=dataset,
            base_model=BaseModel.objects.get(slug=base), preset=HyperparameterPreset.objects.get(slug=preset),
            created_by=user, client="Acme Corporation International", project="Customer support assistant",
            configuration={"hyperparameters": {"num_epochs": 3}}, gpu_type="H100_PCIE_80GB",
            progress_percentage=Decimal("42.5"), cost_estimate=Decimal("1234.56"),
            cost_estimate_low=Decimal("987.65"), cost_estimate_high=Decimal("1666.66"),
            actual_cost=Decimal("1299.99"), estimated_duration_minutes=1234,
        )
        TrainingJob.objects.filter(pk=job.pk).update(status=status)
        job.tags.set(tags)
        made.append(job)
    return made


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (1920, 1080)])
def test_the_job_list_fits_the_window_with_every_dashboard_link(live_server, page, screenshot, jobs, width, height):
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", "ada-lovelace-operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}{reverse('admin:training_trainingjob_changelist')}")
    screenshot(f"{width}x{height}")

    # Inside the window and inside the results box (whose own scrolling would clip it).
    results = page.locator("#changelist .results").bounding_box()
    right = min(width, results["x"] + results["width"])
    links = page.locator("#result_list a", has_text="Dashboard")
    assert links.count() == len(jobs)
    for i in range(links.count()):
        box = links.nth(i).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= right, (i, box, right)
    # Every header cell too: no column is cut off on the right.
    for header in page.locator("#result_list thead th").all():
        box = header.bounding_box()
        assert box is not None and box["x"] + box["width"] <= right, (header.inner_text(), box, right)
    overflow = page.evaluate("""() => {
        const doc = document.scrollingElement, results = document.querySelector("#changelist .results");
        return {page: doc.scrollWidth - doc.clientWidth, results: results.scrollWidth - results.clientWidth};
    }""")
    assert overflow == {"page": 0, "results": 0}
