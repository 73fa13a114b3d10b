"""Writes of the audit log: who acts (`Actor`), the audited-action helper (`audited`), the single
writer (`audit_record`) and retention. Every app audits through here."""

import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditLog
from etcdmonitor_site.clientip import client_ip

logger = logging.getLogger(__name__)

TARGET_MAX = 1024
SECRET_MASK = "***"  # noqa: S105 - what replaces a secret, not one

# --- who acts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who performs an audited action: the name and address the audit log records, the user
    object when the action needs it (ownership checks), and the cluster it acts on."""

    username: str
    client_ip: str | None = None
    user: Any = None
    cluster_id: str = "default"  # the default cluster (monitoring's DEFAULT_CLUSTER)

    @classmethod
    def from_request(cls, request, *, cluster_id: str = "default") -> "Actor":
        """The request's user (username "anonymous" when not signed in) and trusted client IP."""
        user = getattr(request, "user", None)
        username = user.get_username() if user is not None and user.is_authenticated else ""
        return cls(
            username=username or "anonymous",
            client_ip=client_ip(request),
            user=user,
            cluster_id=cluster_id,
        )


# --- never a secret -------------------------------------------------------------------------------

_SECRET_WORDS = ("pass", "token", "secret", "credential", "bearer", "authorization", "apikey")
# `name=value` and `"name": "value"` pairs inside params given as text.
_TEXT_PAIRS = (
    re.compile(r"(?P<name>[A-Za-z_][\w.-]*)=(?P<value>[^\s,;&]+)"),
    re.compile(r'"(?P<name>[^"\\]+)"\s*:\s*"(?P<value>(?:[^"\\]|\\.)+)"'),
)


def is_secret_name(name: str) -> bool:
    """Does a parameter name look like password, token, secret, passphrase or key material?

    A bare `key` is an etcd key name, not a secret; `api_key`, `client_key`, `key_pem`... are.
    """
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    if any(marker in word for word in words for marker in _SECRET_WORDS):
        return True
    return any(word in ("key", "kek", "privatekey") for word in words) and words != ["key"]


def _masked_value(value):
    # An empty value says "none given", which is no secret (tabs record `password=` so).
    return value if value in (None, "", False) else SECRET_MASK


def _masked_mapping(params: Mapping) -> dict:
    masked = {}
    for name, value in params.items():
        if is_secret_name(str(name)):
            masked[name] = _masked_value(value)
        elif isinstance(value, Mapping):
            masked[name] = _masked_mapping(value)
        elif isinstance(value, list | tuple):
            masked[name] = [_masked_mapping(v) if isinstance(v, Mapping) else v for v in value]
        else:
            masked[name] = value
    return masked


def _masked_pair(match: re.Match) -> str:
    value = match.group("value")
    already_safe = value.startswith("(") or set(value) <= {"*"}  # "(cleared)", "***"
    if not is_secret_name(match.group("name")) or already_safe:
        return match.group(0)
    start, end = match.span("value")
    text = match.group(0)
    offset = match.start()
    return text[: start - offset] + SECRET_MASK + text[end - offset :]


def params_masked(params: str | Mapping) -> str:
    """The params text to store: a mapping as JSON, with every secret-looking value masked;
    text with its secret-looking `name=value` / `"name": "value"` pairs masked."""
    if isinstance(params, Mapping):
        return json.dumps(_masked_mapping(params))
    for pattern in _TEXT_PAIRS:
        params = pattern.sub(_masked_pair, params)
    return params


# --- the writer -----------------------------------------------------------------------------------


def audit_record(
    *,
    operation: str,
    username: str = "",
    target: str = "",
    params: str | Mapping = "",
    result: str = "",
    duration_ms: int = 0,
    success: bool = True,
    client_ip: str | None = None,
) -> AuditLog | None:
    """Write one audit entry; params that look like secrets are masked (see `params_masked`).

    An audit failure (e.g. the database is down) is logged and never breaks the audited action.
    """
    # Inside a caller's transaction a failed INSERT would abort it: keep that to a savepoint.
    guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
    try:
        with guard:
            return AuditLog.objects.create(
                timestamp=timezone.now(),
                username=username[:150],
                operation=operation[:64],
                target=target[:TARGET_MAX],
                params=params_masked(params),
                result=result,
                duration_ms=max(0, int(duration_ms)),
                success=success,
                client_ip=client_ip or None,
            )
    except Exception:  # auditing must not take the audited action down with it
        logger.exception("could not write audit entry for %s", operation)
        return None


@dataclass
class AuditedAction:
    """What an `audited` block records; the block may change any field before it ends.

    `result` unset records "ok" on success and the exception's message on failure; a result the
    block sets wins in both cases. `success` is False whenever the block raises.
    """

    target: str = ""
    params: str | Mapping = ""
    result: str | None = None
    success: bool = True
    duration_ms: int = 0  # set when the block ends
    discarded: bool = False

    def discard(self) -> None:
        """Record nothing for this outcome (e.g. a success the caller audits itself)."""
        self.discarded = True


@contextmanager
def audited(
    operation: str,
    *,
    actor: Actor,
    target: str = "",
    params: str | Mapping = "",
    failures: tuple[type[BaseException], ...] = (Exception,),
    started: float | None = None,
) -> Iterator[AuditedAction]:
    """Time the block and write one audit entry for it (see `AuditedAction` for the fields).

    A raised exception that is one of `failures` is recorded with `success=False` and its
    message, then re-raised; other exceptions are re-raised unrecorded. `started` (a
    `time.monotonic()` value) times from an earlier moment than the block's start. The write
    never breaks the action (`audit_record`), and params never carry a secret.
    """
    action = AuditedAction(target=target, params=params)
    started = time.monotonic() if started is None else started
    try:
        yield action
    except failures as exc:
        action.success = False
        if action.result is None:
            action.result = str(exc) or type(exc).__name__
        _action_record(operation, actor=actor, action=action, started=started)
        raise
    _action_record(operation, actor=actor, action=action, started=started)


def _action_record(operation: str, *, actor: Actor, action: AuditedAction, started: float) -> None:
    action.duration_ms = int((time.monotonic() - started) * 1000)
    if action.discarded:
        return
    audit_record(
        operation=operation,
        username=actor.username,
        target=action.target,
        params=action.params,
        result="ok" if action.result is None else action.result,
        duration_ms=action.duration_ms,
        success=action.success,
        client_ip=actor.client_ip,
    )


# --- retention ------------------------------------------------------------------------------------


def audit_log_purge(*, now: datetime | None = None) -> int:
    """Delete audit entries older than AUDIT_RETENTION_DAYS, in batches (readers never wait)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    total = 0
    while True:
        batch = list(
            AuditLog.objects.filter(timestamp__lt=cutoff).values_list("pk", flat=True)[:5000]
        )
        if not batch:
            return total
        deleted, _ = AuditLog.objects.filter(pk__in=batch).delete()
        total += deleted
