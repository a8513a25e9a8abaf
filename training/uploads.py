"""Bounded dataset uploads: every multipart file is streamed to a temporary file on disk (never
held in memory) and the upload stops as soon as it passes DATASET_MAX_UPLOAD_BYTES.

`LimitedTemporaryFileUploadHandler` is the project's only upload handler (FILE_UPLOAD_HANDLERS;
datasets are the only multipart uploads). It marks the request instead of failing it, so the
REST upload (`TrainingFileViewSet.create`) and the admin's upload form answer 413 with a
message naming the limit. A body that declares (Content-Length) it is too large has none of
its files read; the fields before the file (the admin's CSRF token) still are.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler

# Room for the multipart framing and the small fields (name, description) beside the file.
MULTIPART_OVERHEAD_BYTES = 1 << 20
TOO_LARGE_ATTRIBUTE = "dataset_upload_too_large"


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """TemporaryFileUploadHandler that stops reading a file once it passes the limit."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.DATASET_MAX_UPLOAD_BYTES

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.limit + MULTIPART_OVERHEAD_BYTES:
            self._refuse()
        return super().handle_raw_input(input_data, META, content_length, boundary, encoding)

    def receive_data_chunk(self, raw_data, start):
        if upload_too_large(self.request) or start + len(raw_data) > self.limit:
            self._refuse()
            # Stop reading: the rest of the body is not worth receiving.
            raise StopUpload(connection_reset=True)
        return super().receive_data_chunk(raw_data, start)

    def _refuse(self) -> None:
        if self.request is not None:
            setattr(self.request, TOO_LARGE_ATTRIBUTE, True)


def upload_too_large(request) -> bool:
    """Whether the upload handler stopped this request's upload at the limit."""
    return bool(getattr(request, TOO_LARGE_ATTRIBUTE, False))


def declared_too_large(request) -> bool:
    """Whether the request says (Content-Length) that its body is over the limit."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > settings.DATASET_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
