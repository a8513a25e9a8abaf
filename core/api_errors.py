"""One exception handler for the API: every error is JSON, none carries a stack trace.

- StateConflict (an action the object's state refuses, e.g. training's IllegalTransition) -> 409 {"detail": its sentence}
- django ValidationError raised by services -> 400, keyed by field like DRF's own errors
- ProtectedError (deleting something still in use) -> 409
- a body over DATA_UPLOAD_MAX_MEMORY_SIZE (RequestDataTooBig) -> 413; any other request Django
  calls suspicious (SuspiciousOperation) -> 400
- anything unexpected -> 500 with a generic sentence and an error id; the traceback goes to
  the log under that id, never to the client.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from .errors import StateConflict

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def validation_error_detail(exc: DjangoValidationError) -> dict | list:
    """Django's ValidationError as DRF's field-keyed error body."""
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}


def exception_handler(exc, context):
    if isinstance(exc, StateConflict):
        exc = Conflict(str(exc))
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_error_detail(exc))
    elif isinstance(exc, ProtectedError):
        exc = Conflict("It is still in use and cannot be deleted.")
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(f"The request body is limited to {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(str(exc) or "The request was refused.")

    response = drf_exception_handler(exc, context)
    if response is not None:
        return response

    error_id = uuid.uuid4().hex[:12]
    view = context.get("view")
    logger.error("Unexpected API error %s in %s", error_id, type(view).__name__ if view else "?", exc_info=exc)
    set_rollback()
    return Response(
        {
            "detail": f"Something went wrong on our side. Quote error id {error_id} if you report it.",
            "error_id": error_id,
        },
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
