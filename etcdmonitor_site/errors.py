"""The project's domain errors: what services raise when they refuse or fail.

A service names the kind of failure (bad input, not found, conflict, …), a message for people and
optionally a stable machine-readable `code` and extra body fields; it never names an HTTP status.
`etcdmonitor_site.exceptions.api_exception_handler` is the one place that maps each kind (and the
gateway's `EtcdError`s) to a status and the contract's error body.
"""


class DomainError(Exception):
    """A refusal or failure the client is told about, with its message and optional code."""

    code = ""

    def __init__(self, message: str, /, *, code: str | None = None, **extra):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(DomainError):
    """The request itself is wrong: a missing or malformed field, an unknown option."""


class AuthenticationRefused(DomainError):
    """Credentials were missing or wrong (a sign-in or password change refused)."""


class Forbidden(DomainError):
    """The caller is known but may not do this."""


class NotFound(DomainError):
    """The thing the request names does not exist (or is not the caller's to see)."""


class Conflict(DomainError):
    """The request is valid but the current state refuses it (e.g. the member is down)."""


class TooLarge(DomainError):
    """A value or body over a configured size limit."""


class RateLimited(DomainError):
    """Too many attempts from this client or for this account; later ones may succeed."""


class Unavailable(DomainError):
    """A dependency or capacity of ours is unavailable right now; retrying later may work."""


class InternalFailure(DomainError):
    """Our own failure (e.g. stored credentials that cannot be decrypted); logged server-side."""


class OperationFailed(DomainError):
    """etcd failed an operation it was asked to do: the message names the operation, `cause` is
    the gateway's `EtcdError`, whose status the client gets (e.g. 504 for a defragment timeout)."""

    def __init__(self, message: str, /, *, cause: Exception, code: str | None = None, **extra):
        super().__init__(message, code=code, **extra)
        self.cause = cause
