"""Swagger UI at /api/docs/ works with no internet: its JS, CSS and favicon are served from our
own static files (drf-spectacular-sidecar), so a browser that may reach only the server renders
the operations. With the CDN default the page stayed blank (`SwaggerUIBundle is not defined`).
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


def test_swagger_ui_renders_the_operations_with_every_outside_request_blocked(live_server, page, screenshot):
    blocked: list[str] = []
    errors: list[str] = []

    def only_local(route) -> None:
        url = route.request.url
        if urlparse(url).hostname in LOCAL_HOSTS or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", only_local)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{live_server.url}/api/docs/")
    # Rendered operations exist only once the bundle ran and fetched /api/schema/ from this server.
    page.wait_for_selector(".opblock", timeout=30_000)
    screenshot("swagger")

    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any(p.startswith("/api/training/jobs") for p in paths), paths
    assert any(p.startswith("/api/training/files") for p in paths), paths
    assert page.locator(".opblock").count() >= 10
    assert page.inner_text(".info .title").startswith("LoRA fine-tuning control plane API")
    assert blocked == [], f"the docs page asked outside hosts for {blocked}"
    assert errors == []
    # The assets really came from here (a CDN URL would have been blocked above, not served).
    scripts = page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
    assert scripts and all(urlparse(s).hostname in LOCAL_HOSTS for s in scripts), scripts
