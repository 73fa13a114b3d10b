"""Project exceptions for everything that can go wrong talking to etcd.

Each carries the HTTP status the API answers with; `etcdmonitor_site.exceptions` is the one place
that turns them into responses. Nothing here ever includes credentials in a message.
"""

import grpc
import httpx
from pyetcd import exceptions as pyetcd_exceptions

from etcdgateway.kv import KeyValue


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


class EtcdServerTimeout(EtcdTimeout):
    """etcd itself answered "request timed out" (no quorum in time, e.g. during an election, or
    a leader transfer that did not finish): the member that said so is reachable."""


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


class EtcdRevisionCompacted(EtcdInvalidRequest):
    """A read at a revision etcd has compacted away (its history below is gone)."""

    code = "etcd_revision_compacted"
    default_message = "the requested revision has been compacted"


class EtcdFutureRevision(EtcdInvalidRequest):
    """A read at a revision the store has not reached yet."""

    code = "etcd_future_revision"
    default_message = "the requested revision is newer than the store's"


class EtcdPreconditionFailed(EtcdError):
    status_code = 409
    code = "etcd_precondition_failed"
    default_message = "etcd precondition failed"


class EtcdRevisionConflict(EtcdPreconditionFailed):
    """A compare-and-swap put found the key elsewhere than expected: at another mod_revision,
    deleted meanwhile (`current` None), or present when the put was create-only (expected 0).
    `current` is the key as the same transaction read it."""

    code = "revision_conflict"
    default_message = "the key changed since it was read"

    def __init__(self, *, expected: int, current: KeyValue | None, endpoint: str = ""):
        self.expected, self.current = expected, current
        if current is None:
            message = f"the key was deleted after it was read (expected mod_revision {expected})"
        elif expected == 0:
            message = (
                f"the key already exists (mod_revision {current.mod_revision}); "
                "a create-only put (expected_mod_revision 0) does not overwrite it"
            )
        else:
            message = (
                f"the key changed after it was read: expected mod_revision {expected}, "
                f"now {current.mod_revision}"
            )
        super().__init__(message, endpoint=endpoint)


class EtcdWatchCompacted(EtcdError):
    """A watch asked for revisions etcd has compacted away: nothing below `compact_revision`
    can be replayed (the watcher has a gap to record and resync from there)."""

    status_code = 410
    code = "etcd_watch_compacted"
    default_message = "the requested revision has been compacted"

    def __init__(self, compact_revision: int, *, endpoint: str = ""):
        self.compact_revision = compact_revision
        super().__init__(
            f"{self.default_message} (the oldest revision kept is {compact_revision})",
            endpoint=endpoint,
        )


class EtcdSpaceExceeded(EtcdError):
    """The cluster's NOSPACE alarm: the backend reached --quota-backend-bytes."""

    status_code = 507
    code = "etcd_space_exceeded"
    default_message = "etcd database space exceeded (NOSPACE alarm)"


class EtcdRequestTooLarge(EtcdError):
    """etcd refused the request for its size (not for space: the cluster may be nearly empty)."""

    status_code = 413
    code = "etcd_request_too_large"
    default_message = (
        "request exceeds etcd's request size limit (--max-request-bytes, 1.5 MiB by default)"
    )


class EtcdResponseTooLarge(EtcdError):
    """A reply over our own gRPC receive limit (a range of many big values)."""

    code = "etcd_response_too_large"
    default_message = "etcd's reply exceeds the client's receive limit"


def _resource_exhausted_class(details: str) -> type[EtcdError]:
    """RESOURCE_EXHAUSTED means NOSPACE, or a message over a size limit: tell them apart.

    grpc-go on the etcd side says "grpc: received message larger than max" for a request over
    --max-request-bytes + 512 KiB; grpc C-core in this process says "Sent message larger than
    max" (our send limit) or "Received message larger than max" (a reply over our limit).
    """
    if "database space exceeded" in details:
        return EtcdSpaceExceeded
    if "Received message larger than max" in details:
        return EtcdResponseTooLarge
    if "larger than max" in details or "too large" in details:
        return EtcdRequestTooLarge
    return EtcdError  # e.g. too many requests: not the cluster's space, not our size


_BY_GRPC_CODE: dict[grpc.StatusCode, type[EtcdError]] = {
    grpc.StatusCode.UNAVAILABLE: EtcdUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: EtcdTimeout,
    grpc.StatusCode.PERMISSION_DENIED: EtcdPermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: EtcdAuthFailed,
    grpc.StatusCode.NOT_FOUND: EtcdNotFound,
    grpc.StatusCode.INVALID_ARGUMENT: EtcdInvalidRequest,
    grpc.StatusCode.OUT_OF_RANGE: EtcdInvalidRequest,
    grpc.StatusCode.FAILED_PRECONDITION: EtcdPreconditionFailed,
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


def cut_at_deadline(exc: BaseException, *, elapsed: float, deadline: float) -> bool:
    """True when etcd ended a unary call because its deadline (the one we sent) passed.

    etcd's grpc-go closes an expired stream with RST_STREAM CANCEL; when that frame beats this
    process's own timer, the call fails CANCELLED ("Stream removed") instead of DEADLINE_EXCEEDED.
    We never cancel a unary call ourselves, so a CANCELLED at the deadline is a timeout.
    """
    return (
        isinstance(exc, grpc.RpcError)
        and hasattr(exc, "code")
        and exc.code() == grpc.StatusCode.CANCELLED
        and elapsed >= deadline * 0.9
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
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            error_class = _resource_exhausted_class(details)
        elif "etcdserver: request is too large" in details:  # INVALID_ARGUMENT over the limit
            error_class = EtcdRequestTooLarge
        elif "required revision has been compacted" in details:  # OUT_OF_RANGE
            error_class = EtcdRevisionCompacted
        elif "required revision is a future revision" in details:  # OUT_OF_RANGE
            error_class = EtcdFutureRevision
        elif "etcdserver: request timed out" in details:  # UNKNOWN, e.g. a leader transfer
            error_class = EtcdServerTimeout
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
