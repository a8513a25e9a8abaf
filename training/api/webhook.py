"""The worker's webhook: POST /api/training/webhook (docs/worker-contract.md).

No session or token authentication and no CSRF check: the Standard Webhooks signature made with
the job's secret is the authentication, verified in training.services.ingest.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..services.ingest import ingest_event


@csrf_exempt
@require_POST
def receive_event(request: HttpRequest) -> JsonResponse:
    result = ingest_event(request.headers, request.body)
    return JsonResponse(result.body, status=result.status)
