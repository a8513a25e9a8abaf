"""The WSGI app benchmarks/ingest.py serves with gunicorn: the project, plus the baseline.

The baseline is what the issue measures ingestion against: a bare Django view on the same server
(same middleware, same database connection settings) that inserts one row per request. The
benchmark creates its table (`bench_bare_insert`) before starting the server.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from django.db import connection  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import clear_url_caches, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from config import urls as project_urls  # noqa: E402


@csrf_exempt
def bare_insert(request: HttpRequest) -> JsonResponse:
    """One INSERT of the request's body and id, answered 200: the floor a webhook cannot beat."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_bare_insert (webhook_id, body) VALUES (%s, %s)",
                       [request.headers.get("webhook-id"), request.body.decode()])
    return JsonResponse({"accepted": True})


project_urls.urlpatterns.insert(0, path("bench/bare-insert", bare_insert))
clear_url_caches()
