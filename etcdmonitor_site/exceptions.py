"""The one place API errors become responses: `{"error": "<message>"}` with the right status.

Domain errors (etcd unavailable → 503, permission denied → 403, not found → 404, timeout → 504),
DRF's own errors (validation → 400, auth → 401, too large → 413), a database that cannot be
reached (503, e.g. during a PostgreSQL restart) and anything unexpected (500, logged with its
traceback server-side, never shown to the client).
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from etcdgateway import EtcdError

logger = logging.getLogger("etcdmonitor.api")


class ApiError(drf_exceptions.APIException):
    """A client-facing error with a status and an optional machine-readable code and extras."""

    def __init__(self, text: str, *, status_code: int = 400, code: str = "", **extra):
        super().__init__(text)
        self.status_code = status_code
        self.message = text
        self.error_code = code
        self.extra = extra


def first_message(detail) -> str:
    """The first human message inside a DRF error detail (dict, list or string)."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = first_message(value)
            return inner if field in ("non_field_errors", "detail") else f"{field}: {inner}"
        return "invalid request"
    if isinstance(detail, list):
        return first_message(detail[0]) if detail else "invalid request"
    return str(detail)


def error_body(text: str, code: str = "", **extra) -> dict:
    """The contract's error shape; `extra` may add fields such as KV's "message"."""
    body = {"error": text}
    if code:
        body["code"] = code
    body.update(extra)
    return body


def api_exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every failure of an API view ends here."""
    if isinstance(exc, ApiError):
        return Response(
            error_body(exc.message, exc.error_code, **exc.extra), status=exc.status_code
        )
    if isinstance(exc, EtcdError):
        logger.warning("etcd error on %s: %s", _path(context), exc.message)
        return Response(error_body(exc.message, exc.code), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body("not found"), status=404)
    if isinstance(exc, RequestDataTooBig):
        # Over DATA_UPLOAD_MAX_MEMORY_SIZE: Django refuses to read the body; so do we, clearly.
        return Response(error_body("request body too large", "body_too_large"), status=413)
    if isinstance(exc, OperationalError | InterfaceError):
        # Connection-level failures only (integrity or SQL errors stay 500s with a traceback).
        logger.warning("database unavailable on %s: %s", _path(context), type(exc).__name__)
        return Response(error_body("database unavailable", "database_unavailable"), status=503)
    response = drf_exception_handler(exc, context)
    if response is not None:
        if isinstance(exc, drf_exceptions.ParseError):
            message = "invalid JSON"
        elif isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
            message = "not authenticated"
        else:
            message = first_message(exc.detail)
        response.data = error_body(message)
        return response
    logger.exception("unhandled error on %s", _path(context))
    return Response(error_body("internal server error"), status=500)


def _path(context) -> str:
    request = context.get("request")
    return getattr(request, "path", "?")


def json_not_found(request, exception=None):
    """handler404 for /api/ paths: JSON instead of an HTML page."""
    return JsonResponse(error_body("not found"), status=404)


def json_server_error(request):
    """handler500: no traceback and no HTML page ever reaches an API client."""
    return JsonResponse(error_body("internal server error"), status=500)
