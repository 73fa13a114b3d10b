"""Project exceptions for everything that can go wrong talking to etcd.

Each carries the HTTP status the API answers with; `etcdmonitor_site.exceptions` is the one place
that turns them into responses. Nothing here ever includes credentials in a message.
"""

import grpc
import httpx
from pyetcd import exceptions as pyetcd_exceptions


class EtcdError(Exception):
    """An etcd call failed in a way that is not the caller's fault."""

    status_code = 502
    code = "etcd_error"
    default_message = "etcd request failed"

    def __init__(self, message: str | None = None, *, endpoint: str = ""):
        self.endpoint = endpoint
        self.message = message or self.default_message
        super().__init__(self.message)


class EtcdUnavailable(EtcdError):
    status_code = 503
    code = "etcd_unavailable"
    default_message = "etcd unavailable"

    def __init__(self, message: str | None = None, *, endpoint: str = ""):
        detail = message or "no endpoint answered"
        super().__init__(
            detail if detail.startswith("etcd unavailable") else f"etcd unavailable: {detail}",
            endpoint=endpoint,
        )


class EtcdTimeout(EtcdError):
    status_code = 504
    code = "etcd_timeout"
    default_message = "etcd request timed out"


class EtcdPermissionDenied(EtcdError):
    status_code = 403
    code = "etcd_permission_denied"
    default_message = "etcd permission denied"


class EtcdAuthFailed(EtcdPermissionDenied):
    code = "etcd_auth_failed"
    default_message = "etcd authentication failed (check ETCD_USERNAME / ETCD_PASSWORD)"


class EtcdNotFound(EtcdError):
    status_code = 404
    code = "etcd_not_found"
    default_message = "not found in etcd"


class EtcdInvalidRequest(EtcdError):
    status_code = 400
    code = "etcd_invalid_request"
    default_message = "etcd rejected the request"


class EtcdPreconditionFailed(EtcdError):
    status_code = 409
    code = "etcd_precondition_failed"
    default_message = "etcd precondition failed"


class EtcdSpaceExceeded(EtcdError):
    status_code = 507
    code = "etcd_space_exceeded"
    default_message = "etcd database space exceeded (NOSPACE alarm)"


_BY_GRPC_CODE: dict[grpc.StatusCode, type[EtcdError]] = {
    grpc.StatusCode.UNAVAILABLE: EtcdUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: EtcdTimeout,
    grpc.StatusCode.PERMISSION_DENIED: EtcdPermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: EtcdAuthFailed,
    grpc.StatusCode.NOT_FOUND: EtcdNotFound,
    grpc.StatusCode.INVALID_ARGUMENT: EtcdInvalidRequest,
    grpc.StatusCode.OUT_OF_RANGE: EtcdInvalidRequest,
    grpc.StatusCode.FAILED_PRECONDITION: EtcdPreconditionFailed,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EtcdSpaceExceeded,
}

_BY_PYETCD_CLASS: dict[type[Exception], type[EtcdError]] = {
    pyetcd_exceptions.ConnectionFailedError: EtcdUnavailable,
    pyetcd_exceptions.NoServerAvailableError: EtcdUnavailable,
    pyetcd_exceptions.ConnectionTimeoutError: EtcdTimeout,
    pyetcd_exceptions.PreconditionFailedError: EtcdPreconditionFailed,
    pyetcd_exceptions.RevisionCompactedError: EtcdInvalidRequest,
}

INVALID_TOKEN_MARKERS = ("invalid auth token", "auth: revision in header is old")


def is_invalid_token(exc: BaseException) -> bool:
    """True when etcd rejected an expired simple-token (the client should re-authenticate)."""
    return isinstance(exc, grpc.RpcError) and any(
        marker in (exc.details() or "") for marker in INVALID_TOKEN_MARKERS
    )


def translate(exc: BaseException, *, endpoint: str = "") -> EtcdError:
    """Map a gRPC, pyetcd or httpx failure to the matching project exception."""
    if isinstance(exc, EtcdError):
        return exc
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        details = exc.details() or ""
        if "authentication failed" in details or "user name is empty" in details:
            return EtcdAuthFailed(endpoint=endpoint)
        error_class = _BY_GRPC_CODE.get(exc.code(), EtcdError)
        if error_class is EtcdUnavailable:
            return EtcdUnavailable(
                f"{endpoint or 'etcd'}: {details or 'connection failed'}", endpoint=endpoint
            )
        message = f"{error_class.default_message}: {details}" if details else None
        return error_class(message, endpoint=endpoint)
    for source, error_class in _BY_PYETCD_CLASS.items():
        if isinstance(exc, source):
            if error_class is EtcdUnavailable:
                return EtcdUnavailable(
                    f"{endpoint or 'etcd'}: connection failed", endpoint=endpoint
                )
            return error_class(endpoint=endpoint)
    if isinstance(exc, httpx.TimeoutException):
        return EtcdTimeout(endpoint=endpoint)
    if isinstance(exc, httpx.TransportError):
        return EtcdUnavailable(f"{endpoint or 'etcd'}: {type(exc).__name__}", endpoint=endpoint)
    return EtcdError(f"etcd request failed: {type(exc).__name__}", endpoint=endpoint)
