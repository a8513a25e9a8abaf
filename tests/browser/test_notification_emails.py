"""In a real browser: the completed and failed emails, as build_message renders them for seeded
jobs, show their headings and figures formatted for people, at a desktop mail client's width and
a phone's, with nothing wider than the window. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import pytest

from notifications.kinds import Kind
from notifications.messages import build_message
from tests.notifications.conftest import make_job  # noqa: F401 - the fixture, for the seeded jobs
from tests.notifications.test_messages import completed_job, failed_job, notify

from .conftest import SCREENSHOTS

# Transactional like the other browser tests, so it runs with them at the end of the suite, after
# every test that does not start Chromium.
pytestmark = pytest.mark.django_db(transaction=True)

WIDTHS = {"desktop": 800, "phone": 390}


@pytest.fixture
def show(browser, request):
    """Open HTML in a fresh page `width` px wide; return the page and a screenshot taker."""
    contexts = []

    def open_email(html: str, width: int):
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_content(html, wait_until="load")
        return page

    yield open_email
    for context in contexts:
        context.close()


def screenshot(page, request, step: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-{step}.png"), full_page=True)


def shown(page, text: str) -> bool:
    # Any visible occurrence: the hidden preview line (the preheader) repeats the intro.
    return any(found.is_visible() for found in page.get_by_text(text, exact=False).all())


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("device", WIDTHS)
def test_the_completed_email_shows_every_section_and_figure(show, request, make_job, device):  # noqa: F811
    html = build_message(notify(completed_job(make_job), Kind.COMPLETED)).html
    page = show(html, WIDTHS[device])
    screenshot(page, request, "email")
    for heading in ("Overview", "Training Configuration", "Dataset", "Performance Metrics", "Resource Usage",
                    "Cost", "Suggestions"):
        assert page.get_by_role("heading", name=heading, exact=True).is_visible(), heading
    for figure in ("17.94 → 12.08", "-32.7%", "84 / 100", "16m 30s", "2.00e-04", "48 / 48", "32,811", "1.235",
                   "38.4 GB", "$2.81", "+12.4%", "NVIDIA H100 PCIe 80GB"):
        assert shown(page, figure), figure
    assert page.get_by_role("link", name="Open the dashboard").is_visible()
    assert fits(page)


@pytest.mark.parametrize("device", WIDTHS)
def test_the_failed_email_shows_the_error_fix_and_events(show, request, make_job, device):  # noqa: F811
    html = build_message(notify(failed_job(make_job), Kind.FAILED)).html
    page = show(html, WIDTHS[device])
    screenshot(page, request, "email")
    for heading in ("Where It Stopped", "Overview", "Recent Events"):
        assert page.get_by_role("heading", name=heading, exact=True).is_visible(), heading
    for text in ("Out of memory", "Tried to allocate 2.00 GiB", "Halve per_device_batch_size", "12 / 48",
                 "step 10", "training → failed", "$0.42"):
        assert shown(page, text), text
    assert page.get_by_role("link", name="Retry from the dashboard").is_visible()
    assert fits(page)
