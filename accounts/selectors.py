"""Reads of the accounts app: session lookup, etcd's auth state."""

import functools
import hashlib
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from accounts.models import LoginThrottle, UserSession
from etcdmonitor_site import rawsql
from etcdmonitor_site.reuse import ReuseWindow

logger = logging.getLogger(__name__)

SESSION_COOKIE = "etcdmonitor_session"


def token_hash(token: str) -> str:
    """What a session stores of its token (SHA-256, hex): the token itself is never stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


_SESSION_FIELDS = ["id", "user", "created_at", "expires_at", "client_ip"]


@functools.cache
def _user_fields() -> list[str]:
    # Never the password hash: no caller of a session lookup needs it (it loads if touched).
    return [f.name for f in get_user_model()._meta.concrete_fields if f.name != "password"]


@functools.cache
def _session_sql(vendor: str) -> str:
    user_model = get_user_model()
    user_fields = _user_fields()
    return (
        f"SELECT {rawsql.select_list(UserSession, 's', _SESSION_FIELDS)}, "  # noqa: S608
        f"{rawsql.select_list(user_model, 'u', user_fields)} "
        f"FROM {rawsql.table(UserSession)} s JOIN {rawsql.table(user_model)} u "
        f"ON u.{rawsql.column(user_model, user_model._meta.pk.name)} = "
        f"s.{rawsql.column(UserSession, 'user')} "
        f"WHERE s.{rawsql.column(UserSession, 'token_hash')} = %s"
    )


# digest → the session+user row, for AUTH_CACHE_SECONDS per process.
_session_rows = ReuseWindow(max_entries=10_000)


def forget_session_rows(**_signal_kwargs) -> None:
    """Drop this process's cached session rows (connected to every session delete and user
    save, so a logout, password change or deactivation takes effect here at once).

    Once now and once more when the surrounding transaction commits: until then other
    connections still read the deleted row, and a lookup in between must not keep it.
    """
    _session_rows.clear()
    if connection.in_atomic_block:
        transaction.on_commit(_session_rows.clear)


def _session_row(digest: str) -> tuple | None:
    """The session+user row of a token digest: one explicit SELECT (see
    etcdmonitor_site.rawsql), reused for AUTH_CACHE_SECONDS.

    The lookup was a third of an authenticated request's cost under load. Only found rows
    are kept, and only as raw values: each request builds its own instances from them, and
    expiry is still checked on every request. Another process's revocation reaches this one
    within AUTH_CACHE_SECONDS.
    """
    row = _session_rows.get(digest, settings.AUTH_CACHE_SECONDS)
    if row is None:
        generation = _session_rows.generation()  # a revocation from here on wins over our read
        with connection.cursor() as cursor:
            cursor.execute(_session_sql(connection.vendor), [digest])
            row = cursor.fetchone()
        if row is not None:
            row = tuple(row)
            _session_rows.put(digest, row, since=generation)
    return row


def _session_with_user(digest: str) -> UserSession | None:
    user_model = get_user_model()
    user_fields = _user_fields()
    row = _session_row(digest)
    if row is None:
        return None
    count = len(_SESSION_FIELDS)
    session = rawsql.instance(UserSession, _SESSION_FIELDS, row[:count])
    session.token_hash = digest
    session.user = rawsql.instance(user_model, user_fields, row[count:])
    return session


def stored_session(token: str) -> UserSession | None:
    """The stored session of a presented token, or None (unknown token, inactive user).

    Expiry is the caller's to check: an expired session is returned as it is, so that
    `services.session_authenticate` can end it (a read never writes).
    """
    if len(token) > 256:
        return None
    session = _session_with_user(token_hash(token))
    if session is None or not session.user.is_active:
        return None
    return session


def bearer_token(request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (exact, case-sensitive scheme)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return None


def presented_token(request) -> str | None:
    """The token a request presents: the bearer header first, then the session cookie."""
    token = bearer_token(request)
    return request.COOKIES.get(SESSION_COOKIE) if token is None else token


# --- sign-in failures ----------------------------------------------------------------------------


def login_locked_addresses(*, username: str) -> int:
    """How many client addresses `username` is currently locked out from (admin, `unlock`)."""
    from django.utils import timezone

    return LoginThrottle.objects.filter(
        scope="user_addr", username=username, blocked_until__gt=timezone.now()
    ).count()


def login_failures(*, username: str) -> int:
    """Failed sign-ins of `username` from every address in the current window (admin list)."""
    row = LoginThrottle.objects.filter(scope="user", username=username).first()
    return row.failures if row else 0


# --- etcd's own auth (informational, shown by /api/auth/status) ----------------------------------

ETCD_AUTH_CACHE_SECONDS = 300.0
ETCD_AUTH_RETRY_SECONDS = 30.0  # after an etcd error the answer is a guess: ask again soon
_etcd_auth = ReuseWindow(max_entries=16)  # (answer, definite) by ETCD_ENDPOINTS


def _probe_etcd_auth() -> tuple[bool, bool]:
    """(auth enabled, definite). etcd 3.4 has no AuthStatus RPC (pyetcd's protos lack it too), so
    an anonymous UserList decides: allowed only while auth is disabled."""
    from etcdgateway import EtcdError, cluster_gateway

    try:
        return cluster_gateway().auth_enabled(), True
    except (EtcdError, ValueError) as exc:
        logger.info("could not tell whether etcd auth is enabled: %s", exc)
        return True, False


def etcd_auth_required(*, refresh: bool = False) -> bool:
    """Whether the monitored etcd has its own auth enabled; cached per process.

    When etcd cannot be asked the answer is True (as the reference), cached only briefly.
    """
    key = tuple(settings.ETCD_ENDPOINTS)
    cached = _etcd_auth.get(
        key, lambda hit: ETCD_AUTH_CACHE_SECONDS if hit[1] else ETCD_AUTH_RETRY_SECONDS
    )
    if cached is not None and not refresh:
        return cached[0]
    value, definite = _probe_etcd_auth()
    _etcd_auth.put(key, (value, definite))
    return value
