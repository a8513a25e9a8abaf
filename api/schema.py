"""The OpenAPI schema documents every status code the API can answer, errors included.

drf-spectacular documents only the success response of an operation. A client generated from
that schema cannot know that a bad query is a 400 or another user's job a 404, and schemathesis
(run by the test suite) calls every undocumented status a schema violation. This schema class
adds, to every operation, the errors that the project's own layers produce:

- 400: a bad query parameter, path value (a NUL byte anywhere) or body, keyed by field;
- 401/403: not authenticated / not allowed (the API is token- or session-authenticated);
- 404: an object that does not exist *or belongs to someone else* (we never say which), or a
  page past the end of a list;
- 405: a method the endpoint does not offer;
- 413/415: operations with a body, when it is too large or not a media type the endpoint parses.

Each error body is the one shape the exception handler writes: a JSON object with `detail`, or
with field names mapping to lists of messages.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "An error: `detail` says what went wrong; validation errors instead map each field "
        "(or `non_field_errors`) to a list of messages."
    ),
    "properties": {
        "detail": {"type": "string"},
        "error_id": {"type": "string", "description": "Only on 500: quote it when reporting."},
    },
    "additionalProperties": True,
}

ERROR_DESCRIPTIONS = {
    "400": "Bad request: a parameter or body field is invalid; the body names it.",
    "401": "Authentication credentials were not provided or are invalid.",
    "403": "Authenticated, but not allowed to do this.",
    "404": "Not found, or not visible to you.",
    "405": "Method not allowed on this resource.",
    "413": "The request body is larger than this endpoint accepts.",
    "415": "The request's Content-Type is not one this endpoint parses.",
}

BODY_METHODS = {"POST", "PUT", "PATCH"}


class DocumentedErrorsSchema(AutoSchema):
    """AutoSchema plus the error responses every operation can give (see the module docstring)."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        # A view declares an error of its own as `responses={409: None}`: give it the error body.
        for code, response in responses.items():
            if code.startswith("4") and "content" not in response:
                response["content"] = {"application/json": {"schema": ERROR_SCHEMA}}
        for code in self.error_status_codes():
            responses.setdefault(
                code,
                {
                    "description": ERROR_DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                },
            )
        return responses

    def error_status_codes(self) -> list[str]:
        codes = ["400", "405"]
        if self.get_auth():
            codes += ["401", "403"]
        # Another user's object is a 404, and so is a page past the end of a paginated list.
        paginated = self._is_list_view() and getattr(self.view, "pagination_class", None)
        if "{" in self.path or paginated:
            codes.append("404")
        if self.method in BODY_METHODS:
            codes += ["413", "415"]
        return sorted(codes)
