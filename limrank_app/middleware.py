"""The request guard: the outer part of the studio's input hardening (the JSON parser is the inner part).
Refuses before any view runs what no view could serve: a body larger than the limits (413, from Content-Length,
before a byte is read) and query-string values that are not storable text (400). It also turns two failures
raised inside views into clear answers: an upload that passes the limit while streaming (413) and an unreachable
Celery broker (503: the job row is saved and the sweeper or a Resume queues it)."""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape
from kombu.exceptions import OperationalError

from limrank_app.text import text_problem

log = logging.getLogger(__name__)

BROKER_DOWN_MESSAGE = (
    "The job queue (Celery broker) is unreachable, so the job was saved but not started. "
    "It starts by itself once the broker is back (the workers' sweeper re-queues it), or use Resume."
)


class UploadTooLarge(RequestDataTooBig):
    pass


def _is_broker_error(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError)


def _answer(request, status: int, message: str, *, field: str | None = None) -> HttpResponse:
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        # Keyed by the field as DRF's validation errors are, so a client finds which parameter to fix.
        body = {"detail": message} if field is None else {field: [message], "detail": message}
        return JsonResponse(body, status=status)
    return HttpResponse(
        f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{escape(message)}</p>",
        status=status, content_type="text/html; charset=utf-8",
    )


def body_limit(request) -> int:
    """Uploads (multipart) may be up to LIMRANK_MAX_UPLOAD_BYTES; every other body up to DATA_UPLOAD_MAX_MEMORY_SIZE."""
    if request.content_type == "multipart/form-data":
        return settings.LIMRANK_MAX_UPLOAD_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


_ID_MAX = 2**63 - 1
# Form bodies are checked here too (the CSRF middleware reads them anyway); DRF reuses the parsed form.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def params_problem(params, *, where: str, ids: bool = True) -> tuple[str, str] | None:
    """What is wrong with a query string or form, as (parameter, message), or None: text that cannot be stored, or (query strings
    only: a form's fields are its own form's to validate) an id parameter (LIMRANK_ID_QUERY_PARAMS) that is not a
    whole number from 1 to 2^63-1. An empty id means 'any'."""
    for key, values in params.lists():
        for value in (key, *values):
            problem = text_problem(value)
            if problem:
                return key[:40], f"{where} {key[:40]!r} {problem}"
        if ids and key in settings.LIMRANK_ID_QUERY_PARAMS:
            for value in values:
                value = value.strip()
                if value and not (value.isdigit() and len(value) <= 19 and 1 <= int(value) <= _ID_MAX):
                    return key, f"{where} {key!r} must be an id (a whole number from 1 to {_ID_MAX}), got {value[:40]!r}"
    return None


class RequestGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _answer(request, 400, "Content-Length is not a number")
        limit = body_limit(request)
        if length > limit:
            return _answer(request, 413, f"the request body is {length:,} bytes; at most {limit:,} are accepted")
        problem = params_problem(request.GET, where="query parameter")
        if problem is None and request.method == "POST" and request.content_type in _FORM_TYPES:
            try:
                problem = params_problem(request.POST, where="form field", ids=False)
            except UploadTooLarge as exc:
                return _answer(request, 413, str(exc))
        if problem:
            field, message = problem
            return _answer(request, 400, message, field=field)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, UploadTooLarge):
            return _answer(request, 413, str(exception))
        if _is_broker_error(exception):
            log.error("broker unreachable: %s", exception)
            return _answer(request, 503, BROKER_DOWN_MESSAGE)
        return None


class BoundedUploadHandler(FileUploadHandler):
    """First upload handler: counts the bytes of every file as they stream in and stops the request past
    LIMRANK_MAX_UPLOAD_BYTES (a chunked body has no Content-Length to check beforehand)."""

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.LIMRANK_MAX_UPLOAD_BYTES:
            raise UploadTooLarge(f"the upload is larger than {settings.LIMRANK_MAX_UPLOAD_BYTES:,} bytes")
        return raw_data

    def file_complete(self, file_size):
        return None
