"""Browser fixtures: headless Debian Chromium driven by Playwright's sync API against
pytest-django's live_server.

Playwright's own browser download does not work on our machines, so the system Chromium is
launched (CHROMIUM_PATH, default /usr/bin/chromium). Under CI=true a missing Playwright or
Chromium fails the run; on a developer's machine the browser tests are skipped with the reason.
Screenshots of every step go to test-output/screenshots/ (gitignored).
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import IN_CI

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI requires the browser tests to run", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -r requirements-dev.txt)")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        unavailable(f"Chromium was not found at {CHROMIUM} (set CHROMIUM_PATH)")
    # Django refuses synchronous ORM calls from a thread with a running event loop, and
    # Playwright's sync API runs one; the test's own ORM calls are synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Error as exc:
            unavailable(f"Chromium at {CHROMIUM} did not start: {exc}")
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    # After live_server (so closed before it): no request of this page outlives the test database.
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    page.goto("about:blank")
    context.close()


@pytest.fixture
def screenshot(page, request):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(step: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def catalogue(transactional_db):
    """The presets and base models of migration 0002: a transactional test run after another one
    that flushed the database (and did not restore it) would otherwise find none."""
    from django.apps import apps
    from django.contrib.contenttypes.models import ContentType

    importlib.import_module("training.migrations.0002_seed_presets_and_base_models").seed(apps, None)
    # A flush re-creates content types under new ids; the admin's log entries must not use stale ones.
    ContentType.objects.clear_cache()
