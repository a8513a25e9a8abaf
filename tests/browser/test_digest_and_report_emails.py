"""In a real browser: the daily training report and a digest, as reports.build_daily_report and
digests.build_digest_message render them for a seeded day and a held-back hour of updates, show
their headings and figures in the email card, at a desktop mail client's width and a phone's,
with nothing wider than the window and no emoji (headless Chromium has no emoji font: they come
out as empty boxes). Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine

from notifications import digests, messages, reports
from notifications.models import Notification
from tests.notifications.conftest import make_job  # noqa: F401 - the fixture, for the seeded jobs
from tests.notifications.test_daily_report import NOW, seeded_day  # noqa: F401 - seeded_day is a fixture
from tests.notifications.test_digests import T0, hourly, milestone, new_best, three_updates  # noqa: F401

from .test_notification_emails import WIDTHS, fits, screenshot, show, shown  # noqa: F401 - show is a fixture

# Transactional like the other browser tests, so it runs with them at the end of the suite.
pytestmark = pytest.mark.django_db(transaction=True)

# Pictographs and the emoji variation selector: what the plain text may use and the HTML may not.
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]")
REPORT_HEADINGS = ("Training status", "Finished in the period", "Anomaly detection", "Cost", "Storage",
                   "Health summary", "Recommendations")


def heading(page, name: str) -> bool:
    return page.get_by_role("heading", name=name, exact=True).is_visible()


@pytest.mark.parametrize("device", WIDTHS)
def test_the_daily_report_shows_its_summary_and_every_section(show, request, seeded_day, device):  # noqa: F811
    html = reports.build_daily_report(NOW).html
    page = show(html, WIDTHS[device])
    screenshot(page, request, "report")
    assert heading(page, "Daily training report")
    for name in REPORT_HEADINGS:
        assert heading(page, name), name
    for text in ("2025-11-11 08:00 UTC to 2025-11-12 08:00 UTC", "All jobs",
                 "Active jobs", "Completed", "Failed", "Spent", "$55.00",
                 "step 120 / 480 (25.0%), loss 0.7489", "perplexity 17.44 → 9.120 (-47.7%)",
                 "OutOfMemory during training: CUDA out of memory", "$48.00", "$4.00",
                 "Divergence", "2 in elena v1", "New best checkpoints", "3 in support bot",
                 "Training divergence in elena v1 at step 100", "No heartbeat from stuck run for 2h 00m",
                 "Urgent: review the divergence at step 100", "Lower per_device_batch_size to 2.",
                 "Check its worker: no heartbeat for 2h 00m"):
        assert shown(page, text), text
    # The health summary's badges are words in coloured pills, not emoji.
    assert page.get_by_text("Critical", exact=True).first.is_visible()
    assert page.get_by_text("Warning", exact=True).first.is_visible()
    assert not EMOJI.search(html)
    assert not shown(page, "None")
    assert "nothing suggests stopping" not in html  # both active jobs have something urgent
    assert page.get_by_role("link", name="elena v1").first.is_visible()
    assert fits(page)


@pytest.mark.parametrize("device", WIDTHS)
def test_an_empty_day_report_says_so_and_shows_a_healthy_badge(show, request, make_job, device):  # noqa: F811
    html = reports.build_daily_report(NOW).html
    page = show(html, WIDTHS[device])
    screenshot(page, request, "report")
    assert heading(page, "Daily training report")
    assert shown(page, "No training activity in the last 24 hours")
    assert heading(page, "Storage") and shown(page, "Nothing stored") and not shown(page, "0 bytes")
    assert heading(page, "Health summary")
    assert not heading(page, "Training status") and not heading(page, "Cost")
    assert page.get_by_text("Healthy", exact=True).is_visible() and shown(page, "All systems healthy")
    assert not EMOJI.search(html)
    assert fits(page)


@pytest.mark.parametrize("device", WIDTHS)
def test_a_digest_shows_one_block_per_job_with_its_updates(show, request, make_job, owner, hourly, device):  # noqa: F811
    first, second = make_job(), make_job(name="support bot with a rather long name for a phone")
    three_updates(first)
    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        new_best(second, 8)
    with time_machine.travel(T0 + timedelta(minutes=40), tick=False):
        milestone(second, 25, 12)
    pk = digests.claim_digest(owner.pk, T0 + timedelta(hours=1))
    html = digests.build_digest_message(Notification.objects.get(pk=pk)).html
    page = show(html, WIDTHS[device])
    screenshot(page, request, "digest")
    assert heading(page, "Your hourly digest")
    assert shown(page, "5 updates on 2 jobs")
    for name in ("elena v1", "support bot with a rather long name for a phone"):
        assert page.get_by_role("link", name=name, exact=True).is_visible(), name
    for text in ("When", "Step", "What happened", "2025-11-12 09:10", "25% done: step 12 of 48.",
                 "New best eval loss at step 20.", "New best eval loss at step 8."):
        assert shown(page, text), text
    assert html.count(f'href="{messages.job_url(first)}"') >= 1
    assert not EMOJI.search(html)
    assert fits(page)
