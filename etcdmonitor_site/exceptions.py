"""The one place API errors become responses: `{"error": "<message>"}` with the right status.

Domain errors (etcd unavailable → 503, permission denied → 403, not found → 404, timeout → 504),
DRF's own errors (validation → 400, auth → 401, too large → 413), a database that cannot be
reached (503, e.g. during a PostgreSQL restart) and anything unexpected (500, logged with its
traceback server-side, never shown to the client).
"""

import logging
from dataclasses import dataclass, field

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from etcdgateway import EtcdError
from etcdmonitor_site import errors

logger = logging.getLogger("etcdmonitor.api")

# The status of each kind of domain error (most specific class first through the MRO).
STATUS_BY_KIND: dict[type[errors.DomainError], int] = {
    errors.InvalidInput: 400,
    errors.AuthenticationRefused: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.RateLimited: 429,
    errors.InternalFailure: 500,
    errors.Unavailable: 503,
}

# DRF's own refusals of a client's credentials keep the project-wide body on every route.
AUTH_REFUSALS = (
    drf_exceptions.NotAuthenticated,
    drf_exceptions.AuthenticationFailed,
    drf_exceptions.PermissionDenied,
)


@dataclass(frozen=True)
class ErrorDialect:
    """How one family of routes words its error bodies (the reference product's routes differ).

    A view opts in with an `error_dialect` attribute; everything else uses `DEFAULT_DIALECT`.
    `etcd_overrides` maps a gateway error class to the (message or None, code) a route family
    shows instead of the gateway's own.
    """

    validation_code: str = ""
    parse_message: str = "invalid JSON"
    echo_message: bool = False  # the body repeats its text as "message" (KV routes)
    drf_codes: bool = False  # DRF's other refusals carry their default_code
    internal_code: str = ""  # a 5xx body without a code gets this one
    forbidden_code: str = ""  # the code of a role refusal (etcdmonitor_site.policy)
    etcd_overrides: tuple[tuple[type[EtcdError], str | None, str], ...] = field(default=())


DEFAULT_DIALECT = ErrorDialect()


def domain_status(exc: errors.DomainError) -> int:
    """The HTTP status of a domain error: its kind's, or for a failed operation its etcd
    error's."""
    if isinstance(exc, errors.OperationFailed):
        return exc.cause.status_code
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 400


def first_message(detail) -> str:
    """The first human message inside a DRF error detail (dict, list or string)."""
    if isinstance(detail, dict):
        for name, value in detail.items():
            inner = first_message(value)
            return inner if name in ("non_field_errors", "detail") else f"{name}: {inner}"
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


def _etcd_error(exc: EtcdError, dialect: ErrorDialect) -> tuple[int, str, str]:
    for error_class, message, code in dialect.etcd_overrides:
        if isinstance(exc, error_class):
            return exc.status_code, message or exc.message, code
    return exc.status_code, exc.message, exc.code


def _drf_error(exc: drf_exceptions.APIException, dialect: ErrorDialect) -> tuple[str, str]:
    if isinstance(exc, drf_exceptions.ParseError):
        return dialect.parse_message, dialect.validation_code
    if isinstance(exc, drf_exceptions.ValidationError):
        return first_message(exc.detail), dialect.validation_code
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return "not authenticated", ""
    if isinstance(exc, AUTH_REFUSALS) or not dialect.drf_codes:
        return first_message(exc.detail), ""
    return first_message(exc.detail), exc.default_code


def _respond(
    status: int, text: str, code: str, dialect: ErrorDialect, extra=None, *, echo: bool = True
) -> Response:
    """The body in the dialect's words; `echo=False` for the project-wide refusals (no route,
    body too large, database down, a bug) whose body is the same on every route."""
    if status >= 500 and not code:
        code = dialect.internal_code
    fields = dict(extra or {})
    if dialect.echo_message and echo:
        fields["message"] = text
    return Response(error_body(text, code, **fields), status=status)


def api_exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every failure of an API view ends here, and only here."""
    dialect = getattr(context.get("view"), "error_dialect", DEFAULT_DIALECT)
    if isinstance(exc, errors.DomainError):
        status = domain_status(exc)
        logger.info("request refused on %s: %s %s", _path(context), status, exc.message)
        return _respond(status, exc.message, exc.code, dialect, exc.extra)
    if isinstance(exc, EtcdError):
        logger.warning("etcd error on %s: %s", _path(context), exc.message)
        return _respond(*_etcd_error(exc, dialect), dialect)
    if isinstance(exc, Http404):
        return _respond(404, "not found", "", dialect, echo=False)
    if isinstance(exc, RequestDataTooBig):
        # Over DATA_UPLOAD_MAX_MEMORY_SIZE: Django refuses to read the body; so do we, clearly.
        return _respond(413, "request body too large", "body_too_large", dialect, echo=False)
    if isinstance(exc, OperationalError | InterfaceError):
        # Connection-level failures only (integrity or SQL errors stay 500s with a traceback).
        logger.warning("database unavailable on %s: %s", _path(context), type(exc).__name__)
        return _respond(503, "database unavailable", "database_unavailable", dialect, echo=False)
    response = drf_exception_handler(exc, context)
    if response is not None:
        text, code = _drf_error(exc, dialect)
        if isinstance(exc, AUTH_REFUSALS):
            # A refusal may name a stable code (e.g. password_change_required) for clients.
            response.data = error_body(text, getattr(exc, "body_code", ""))
            return response
        body = _respond(response.status_code, text, code, dialect)
        response.data = body.data
        return response
    logger.exception("unhandled error on %s", _path(context))
    return _respond(500, "internal server error", "", dialect, echo=False)


def _path(context) -> str:
    request = context.get("request")
    return getattr(request, "path", "?")


def json_not_found(request, exception=None):
    """handler404 for /api/ paths: JSON instead of an HTML page."""
    return JsonResponse(error_body("not found"), status=404)


def json_server_error(request):
    """handler500: no traceback and no HTML page ever reaches an API client."""
    return JsonResponse(error_body("internal server error"), status=500)
