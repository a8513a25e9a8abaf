"""The job dashboard: the page, its JSON feed, its SVG charts and its actions, each in a fixed
number of queries however long the job's history."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard import charts
from dashboard import views as dashboard
from tests.webhooks.conftest import FakeWorker, make_job
from training.lifecycle import Status
from training.models import JobEvent, MetricPoint, TrainingJob

from .conftest import add_history

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}svg"


def url(job, suffix: str = "") -> str:
    return reverse("admin:training_trainingjob_dashboard", args=[job.pk]) + suffix


@pytest.fixture(autouse=True)
def no_delivery(monkeypatch):
    import training.tasks as tasks

    monkeypatch.setattr(tasks.stop_job_execution, "delay", lambda *a, **k: None)
    monkeypatch.setattr(tasks.launch_job, "delay", lambda *a, **k: None)


def test_it_shows_the_status_card_stages_charts_and_metrics(staff_client, job):
    add_history(job, 200)
    html = staff_client.get(url(job)).content.decode()
    for text in ("Status:", "Progress", "ETA", "Interruptions", "Cost tracker", "Preprocessing", "Model loading",
                 "Finalization", "Validation", "chart/loss.svg?v=", "chart/gpu.svg", "Event log", "Quality score"):
        assert text in html, text
    assert html.count('<tr><td>') >= 20  # the metrics table's latest 20 rows


@pytest.mark.parametrize("count", [10, 5000])
def test_the_page_needs_a_fixed_number_of_queries(staff_client, job, count, django_assert_max_num_queries):
    add_history(job, count)
    # The same for 10 points and 5,000. The card's live ETA (services.progress.job_progress, the
    # API's figure) reads the latest heartbeat and when the stage began: a query or two, once;
    # the validation table one more (none here; its sets with it when there is one).
    with django_assert_max_num_queries(14):
        assert staff_client.get(url(job)).status_code == 200


def test_the_data_feed_needs_a_fixed_number_of_queries(staff_client, job, django_assert_max_num_queries):
    add_history(job, 5000)
    with django_assert_max_num_queries(10):  # 8, and the live ETA's heartbeat and stage start
        assert staff_client.get(url(job, "data/")).status_code == 200


def test_the_data_feed_has_the_card_fields_and_a_chart_version(staff_client, job):
    add_history(job, 100)
    data = staff_client.get(url(job, "data/")).json()
    assert data["text"]["progress"] == "50.0%"
    assert data["text"]["step"] == "100 / 200"
    assert data["status"] == "training" and data["can_cancel"] and not data["can_retry"]
    assert len(data["metrics"]) == 20 and data["metrics"][0]["step"] == "100"
    before = data["chart_version"]
    TrainingJob.objects.filter(pk=job.pk).update(current_step=101)
    after_step = staff_client.get(url(job, "data/")).json()["chart_version"]
    assert after_step != before
    # The step's metrics come in a later batch than the heartbeat that moved the step: the charts
    # are redrawn when they arrive too, with no new step.
    MetricPoint.objects.create(job=job, step=101, train_loss=0.8, reported_at=timezone.now())
    after_metrics = staff_client.get(url(job, "data/")).json()["chart_version"]
    assert after_metrics != after_step
    MetricPoint.objects.filter(job=job, step=101).update(eval_loss=0.9)
    assert staff_client.get(url(job, "data/")).json()["chart_version"] != after_metrics


@pytest.mark.parametrize("name", dashboard.CHART_NAMES)
def test_each_chart_is_valid_svg(staff_client, job, name, django_assert_max_num_queries):
    add_history(job, 5000)
    JobEvent.objects.create(job=job, event_type="anomaly", severity="warning",
                            payload={"kind": "spike", "step": 1200, "message": "spike", "suggested_action": ""})
    TrainingJob.objects.filter(pk=job.pk).update(trend_state={"best_step": 4000, "best_eval_loss": 1.1})
    with django_assert_max_num_queries(8):
        response = staff_client.get(url(job, f"chart/{name}.svg"))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert ET.fromstring(response.content).tag == SVG


def test_a_chart_with_no_data_says_so(staff_client, job):
    response = staff_client.get(url(job, "chart/loss.svg"))
    assert ET.fromstring(response.content).tag == SVG
    assert b"No data yet" in response.content


def test_charts_are_downsampled_to_a_bounded_number_of_buckets(job):
    add_history(job, 5000)
    buckets = dashboard.metric_buckets(job.pk)
    assert len(buckets.rows) <= dashboard.CHART_POINTS
    assert buckets.total_points == 5000
    assert max(r["train_hi"] for r in buckets.rows) == pytest.approx(2.0 * 2.718281828 ** (-1 / 5000) + 0.3)


def test_unknown_charts_and_jobs_are_404(staff_client, job):
    assert staff_client.get(url(job, "chart/nope.svg")).status_code == 404
    missing = reverse("admin:training_trainingjob_dashboard", args=["00000000-0000-0000-0000-000000000000"])
    assert staff_client.get(missing).status_code == 404


def test_it_is_for_staff_only(client, owner, job):
    client.force_login(owner)
    response = client.get(url(job))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_stage_indicators_show_time_spent_from_status_changes(job):
    t0 = timezone.now() - timedelta(minutes=30)
    for minutes, to in ((0, "preprocessing"), (3, "model_loading"), (15, "training")):
        JobEvent.objects.create(job=job, event_type="status_changed", source="worker",
                                payload={"from": "", "to": to}, received_at=t0 + timedelta(minutes=minutes))
    job.refresh_from_db()
    stages = {s["stage"]: s for s in dashboard.stage_times(job, now=t0 + timedelta(minutes=30))}
    assert stages["preprocessing"]["seconds"] == 180 and stages["preprocessing"]["state"] == "done"
    assert stages["model_loading"]["spent"] == "12m 00s"
    assert stages["training"]["state"] == "current" and stages["training"]["seconds"] == 900
    assert stages["validating"]["state"] == "upcoming"


def test_the_feed_carries_the_stage_strip_as_the_worker_moves_through_it(staff_client, db):
    # The page loaded while the job was provisioning redraws its strip from the feed alone.
    job = make_job(status=Status.PROVISIONING)
    TrainingJob.objects.filter(pk=job.pk).update(estimate={"stages": {"preprocessing": 2, "training": 15.5}})
    worker = FakeWorker(staff_client, job)
    before = staff_client.get(url(job, "data/")).json()["stages"]
    assert [s["label"] for s in before] == ["Preprocessing", "Model loading", "Training", "Finalization", "Validation"]
    assert {s["state"] for s in before} == {"upcoming"} and {s["spent"] for s in before} == {"—"}
    assert before[0]["estimate"] == "2m 00s" and before[2]["estimate"] == "15m 30s" and before[3]["estimate"] == ""
    for stage in ("preprocessing", "model_loading", "training"):
        assert worker.send("stage_changed", {"stage": stage}).status == 200
    # Back-date the moves: 3 minutes preprocessing, 12 loading, training since 5 minutes ago.
    now = timezone.now()
    for minutes_ago, to in ((20, "preprocessing"), (17, "model_loading"), (5, "training")):
        JobEvent.objects.filter(job=job, event_type="status_changed", payload__to=to).update(
            received_at=now - timedelta(minutes=minutes_ago))
    stages = {s["stage"]: s for s in staff_client.get(url(job, "data/")).json()["stages"]}
    assert [k for k, s in stages.items() if s["state"] == "current"] == ["training"]
    assert stages["preprocessing"]["state"] == stages["model_loading"]["state"] == "done"
    assert stages["preprocessing"]["spent"] == "3m 00s" and stages["model_loading"]["spent"] == "12m 00s"
    assert stages["training"]["spent"].startswith("5m ") and stages["training"]["estimate"] == "15m 30s"
    assert stages["finalizing"]["state"] == stages["validating"]["state"] == "upcoming"
    assert stages["validating"]["spent"] == "—"


def test_the_cost_tracker_warns_past_twenty_percent_over_the_estimate(job):
    TrainingJob.objects.filter(pk=job.pk).update(cost_estimate=Decimal("10.00"), actual_cost=Decimal("12.50"))
    job.refresh_from_db()
    assert "25% over" in dashboard.cost_figures(job)["warning"]
    TrainingJob.objects.filter(pk=job.pk).update(actual_cost=Decimal("11.90"))
    job.refresh_from_db()
    assert dashboard.cost_figures(job)["warning"] == ""


def test_cancel_moves_the_job_to_cancelled(staff_client, job):
    response = staff_client.post(url(job, "cancel/"))
    assert response.status_code == 302 and response["Location"] == url(job)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert staff_client.get(url(job, "data/")).json()["can_retry"] is True


def test_cancel_needs_post_and_a_refusal_is_a_warning(staff_client, job):
    assert staff_client.get(url(job, "cancel/")).status_code == 405
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    response = staff_client.post(url(job, "cancel/"), follow=True)
    assert any("cannot be cancelled" in str(m) or "completed" in str(m) for m in response.context["messages"])


def test_a_completed_job_links_its_adapters(staff_client, job):
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.COMPLETED, quality={"score": 88, "grade": "B",
                                                                                    "components": {}, "suggestions": []})
    data = staff_client.get(url(job, "data/")).json()
    # The admin's download (a file through a signed link), not the API's JSON answer.
    assert data["download_url"] == f"/admin/training/trainingjob/{job.pk}/download/adapters/"
    assert data["text"]["quality"] == "88/100 (grade B)"


def test_the_event_log_filters_by_type(staff_client, job):
    JobEvent.objects.create(job=job, event_type="anomaly", payload={"kind": "spike", "message": "a spike here"})
    JobEvent.objects.create(job=job, event_type="heartbeat", payload={"message": "beat beat"})
    html = staff_client.get(url(job), {"event_type": "anomaly"}).content.decode()
    assert "a spike here" in html and "beat beat" not in html


def test_the_change_page_and_the_list_link_to_the_dashboard(staff_client, job):
    change = staff_client.get(reverse("admin:training_trainingjob_change", args=[job.pk])).content.decode()
    listing = staff_client.get(reverse("admin:training_trainingjob_changelist")).content.decode()
    assert url(job) in change and url(job) in listing


def test_the_dashboard_links_the_error_report_which_staff_can_download(staff_client, job):
    html = staff_client.get(url(job)).content.decode()
    link = f"/api/training/jobs/{job.pk}/error-report"
    assert f'href="{link}" id="error-report-link"' in html
    response = staff_client.get(link)  # the admin session is enough
    assert response.status_code == 200 and response.json()["job"]["id"] == str(job.pk)


def tick_labels(ys: list[float]) -> tuple[list[str], str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(range(len(ys)), ys)
    charts._format_ticks(ax, log_y=False)
    figure.canvas.draw()
    return [t.get_text() for t in ax.get_yticklabels()], ax.yaxis.get_offset_text().get_text()


def test_chart_ticks_are_for_people():
    labels, offset = tick_labels([2.1e-4, 2.0e-4, 1.9e-4])  # a learning rate decaying
    assert labels and not any("0.000" in label for label in labels), labels
    assert offset in ("1e−4", "1e-4"), offset  # one shared power of ten, in plain text (not mathtext)
    labels, _ = tick_labels([30_000, 80_000])  # GPU memory in MB
    assert "80,000" in labels, labels


def test_charts_can_be_drawn_by_concurrent_requests():
    # The page asks for its four charts at once; the live server draws them in threads.
    from concurrent.futures import ThreadPoolExecutor

    chart = charts.Chart("Learning rate", "learning rate", [charts.Series("lr", list(range(1, 200)),
                                                                          [2e-4 * (1 - s / 200) for s in range(1, 200)])])
    with ThreadPoolExecutor(8) as pool:
        svgs = list(pool.map(lambda _: charts.render_svg(chart), range(32)))
    assert all(ET.fromstring(svg).tag == SVG for svg in svgs)


def x_tick_labels(svg: bytes) -> list[str]:
    """The step axis's tick labels as the SVG draws them (each glyph group carries its text)."""
    text = svg.decode()
    return [re.search(r"<!-- (.*?) -->", chunk)[1] for chunk in text.split('<g id="xtick_')[1:]]


@pytest.mark.parametrize("steps", [[1], [1, 2], [1, 2, 3], [1, 2, 3, 4, 5], list(range(1, 13))])
def test_a_short_run_gets_whole_steps_on_the_x_axis(steps):
    # A 3-step run drew 1.00, 1.25, ... 3.00: steps are whole numbers.
    chart = charts.Chart("Loss", "loss", [charts.Series("training", steps, [2.0 - s / 100 for s in steps])],
                         best=(steps[-1], 2.0 - steps[-1] / 100))
    labels = x_tick_labels(charts.render_svg(chart))
    assert labels and all(re.fullmatch(r"-?\d+", label.replace("−", "-")) for label in labels), labels


def test_stages_before_the_current_one_are_done_even_without_their_events(job):
    # A job moved straight to training (no status_changed recorded for the stages before it).
    TrainingJob.objects.filter(pk=job.pk).update(current_stage=Status.TRAINING)
    job.refresh_from_db()
    states = [s["state"] for s in dashboard.stage_times(job)]
    assert states == ["done", "done", "current", "upcoming", "upcoming"]
