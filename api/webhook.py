"""The worker's webhook: POST /api/training/webhook (docs/worker-contract.md).

No session or token authentication and no CSRF check: the Standard Webhooks signature made with
the job's secret is the authentication, verified in training.services.ingest. A body over
WEBHOOK_MAX_BODY_BYTES is a JSON 413, refused before it is read.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from training.services.ingest import ingest_event


def _too_large(limit: int) -> JsonResponse:
    return JsonResponse({"detail": f"the request body is limited to {limit} bytes"}, status=413)


@csrf_exempt
@require_POST
def receive_event(request: HttpRequest) -> JsonResponse:
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        length = int(request.headers.get("content-length") or 0)
    except ValueError:
        length = 0  # the read below bounds it anyway
    if length > limit:
        return _too_large(limit)
    # Not request.body: that is bounded by DATA_UPLOAD_MAX_MEMORY_SIZE instead (an HTML 400), and
    # a body that understated its length must still stop at the limit.
    body = request.read(limit + 1)
    if len(body) > limit:
        return _too_large(limit)
    result = ingest_event(request.headers, body)
    return JsonResponse(result.body, status=result.status)
