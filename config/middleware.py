"""Project middleware: what no view should have to remember.

`ApiErrorsMiddleware` (first in MIDDLEWARE, so it wraps everything, Django's own refusals too):

- A NUL byte in a query parameter or a path value is refused with a 400 naming the parameter
  ({"detail", "errors": {name: message}}), on every page: PostgreSQL cannot hold NUL in text, so
  the lookup would otherwise fail as a 500. (NUL in JSON bodies: api.parsers.)
- Under /api/ (the REST API, the worker's webhook and storage API) every error is JSON, never an
  HTML page: an error response that is not JSON (Django's 404 for an unknown route, 405 from
  require_http_methods, the 400 of a disallowed host, any 500 page, DEBUG's technical pages) is
  replaced by {"detail": ...} with the same status and headers; a body over
  DATA_UPLOAD_MAX_MEMORY_SIZE is a 413.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
NUL = "\x00"
NUL_MESSAGE = "must not contain NUL bytes"
# Headers of the original error worth keeping on its JSON replacement.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def json_error(status: int, detail: str, errors: Mapping[str, str] | None = None) -> JsonResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = dict(errors)
    return JsonResponse(body, status=status)


def nul_refusal(names_and_values: Mapping[str, Any] | list[tuple[str, str]]) -> JsonResponse | None:
    """A 400 naming every parameter whose name or value holds a NUL byte, or None."""
    items = names_and_values.items() if isinstance(names_and_values, Mapping) else names_and_values
    bad = {name.replace(NUL, "\\x00"): NUL_MESSAGE for name, value in items
           if NUL in name or (isinstance(value, str) and NUL in value)}
    if not bad:
        return None
    return json_error(400, f"{', '.join(bad)}: {NUL_MESSAGE}", bad)


def request_too_big(limit: int) -> JsonResponse:
    return json_error(413, f"the request body is limited to {limit} bytes")


class ApiErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = nul_refusal(_query_items(request))
        if refusal is not None:
            return refusal
        response = self.get_response(request)
        if is_api(request) and response.status_code >= 400 and not _is_json(response):
            return self._as_json(request, response)
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        # A path value is named by its URL parameter (slug, pk): checked once the route is known.
        # A path that matches no route is a 404 anyway.
        refusal = nul_refusal({name: str(value) for name, value in view_kwargs.items()})
        if refusal is None and any(NUL in str(value) for value in view_args):
            refusal = nul_refusal({"path": request.path_info})
        return refusal

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_api(request) and isinstance(exception, RequestDataTooBig):
            return request_too_big(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return None

    def _as_json(self, request: HttpRequest, response: HttpResponse) -> JsonResponse:
        status = response.status_code
        if status >= 500:
            error_id = uuid.uuid4().hex[:12]
            logger.error("error page %s for %s %s replaced by JSON (error id %s)", status, request.method,
                         request.path, error_id)
            replacement = json_error(status, f"Something went wrong on our side. Quote error id {error_id} "
                                             "if you report it.")
        else:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            replacement = json_error(status, phrase)
        for header in KEPT_HEADERS:
            if header in response:
                replacement[header] = response[header]
        return replacement


def _query_items(request: HttpRequest) -> list[tuple[str, str]]:
    return [(name, value) for name, values in request.GET.lists() for value in values]


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip().endswith("json")
