"""Reads of the accounts app: session lookup, roles (the policy the enforcement asks), users,
lock state, etcd's auth state."""

import functools
import hashlib
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import AccountProfile, LoginThrottle, Role, UserSession
from accounts.validators import ANY_CLUSTER
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
        f"{rawsql.select_list(user_model, 'u', user_fields)}, "
        f"p.{rawsql.column(AccountProfile, 'must_change_password')} "
        f"FROM {rawsql.table(UserSession)} s JOIN {rawsql.table(user_model)} u "
        f"ON u.{rawsql.column(user_model, user_model._meta.pk.name)} = "
        f"s.{rawsql.column(UserSession, 'user')} "
        f"LEFT JOIN {rawsql.table(AccountProfile)} p "
        f"ON p.{rawsql.column(AccountProfile, 'user')} = "
        f"u.{rawsql.column(user_model, user_model._meta.pk.name)} "
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
    session.user = rawsql.instance(user_model, user_fields, row[count : count + len(user_fields)])
    # The forced change is checked on every request (accounts.authentication): read with the row.
    session.must_change_password = bool(row[count + len(user_fields)])
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


def live_session_ids(*, ids) -> set[int]:
    """Which of the session `ids` are still live: not logged out or revoked, not expired, of an
    active user (what long-lived streams check to end with their session)."""
    live = UserSession.objects.filter(id__in=list(ids), user__is_active=True).exclude(
        expires_at__lte=timezone.now()
    )
    return set(live.values_list("id", flat=True))


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
    return LoginThrottle.objects.filter(
        scope="user_addr", username=username, blocked_until__gt=timezone.now()
    ).count()


def login_failures(*, username: str) -> int:
    """Failed sign-ins of `username` from every address in the current window (admin list)."""
    row = LoginThrottle.objects.filter(scope="user", username=username).first()
    return row.failures if row else 0


def locked_usernames(*, usernames) -> set[str]:
    """Which of `usernames` are locked out from at least one address right now (one query)."""
    return set(
        LoginThrottle.objects.filter(
            scope="user_addr", username__in=list(usernames), blocked_until__gt=timezone.now()
        )
        .values_list("username", flat=True)
        .distinct()
    )


# --- roles: the one policy the enforcement asks --------------------------------------------------

_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def _stored_roles(user) -> dict:
    """The user's role map as stored (no write: a user without a profile has none)."""
    try:
        roles = user.account_profile.roles
    except (AccountProfile.DoesNotExist, AttributeError):
        return {}
    return roles if isinstance(roles, dict) else {}


def role_for(*, user, cluster_id: str) -> str:
    """The user's role on cluster `cluster_id`: "viewer", "operator" or "admin".

    A superuser (the bootstrap admin) is admin everywhere. Otherwise the role stored for the
    cluster, else the one stored for "*", else viewer; a stored value that is no role counts as
    viewer (least power). `cluster_id="*"` asks for the role on clusters not named. Nobody
    signed in, or an inactive user, is a viewer (authentication refuses them before this).
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Role.VIEWER.value
    if user.is_superuser:
        return Role.ADMIN.value
    roles = _stored_roles(user)
    role = roles.get(str(cluster_id)) or roles.get(ANY_CLUSTER) or Role.VIEWER.value
    return role if isinstance(role, str) and role in _RANK else Role.VIEWER.value


def role_allows(*, user, cluster_id: str, role: str) -> bool:
    """Whether the user's role on the cluster includes `role` (admin ⊃ operator ⊃ viewer)."""
    return _RANK[Role(role_for(user=user, cluster_id=cluster_id))] >= _RANK[Role(role)]


def users_admin(user) -> bool:
    """Whether the user may manage users: a superuser or staff user (the Django admin's own
    notion) or one whose role on every cluster ("*") is admin."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return bool(
        user.is_superuser or user.is_staff or _stored_roles(user).get(ANY_CLUSTER) == Role.ADMIN
    )


def effective_roles(user) -> dict:
    """The role map the API shows: the stored one with "*" filled in (viewer when absent); a
    superuser shows {"*": "admin"}, which is what every cluster gives them."""
    if user.is_superuser:
        return {ANY_CLUSTER: Role.ADMIN.value}
    roles = {
        key: value
        for key, value in _stored_roles(user).items()
        if isinstance(value, str) and value in _RANK
    }
    roles.setdefault(ANY_CLUSTER, Role.VIEWER.value)
    return roles


def kv_scope_entry(*, user, cluster_id: str) -> dict | None:
    """The user's KV scope on the cluster as stored (`{"read": [...], "write": [...]}`): the
    cluster's entry, else the one for "*", else None (every key). A superuser is never scoped;
    kvmanager.scopes is the one reader that enforces it."""
    if user is None or not getattr(user, "is_authenticated", False) or user.is_superuser:
        return None
    scopes = _stored_kv_scopes(user)
    entry = scopes.get(str(cluster_id), scopes.get(ANY_CLUSTER))
    return entry if isinstance(entry, dict) else None


def _stored_kv_scopes(user) -> dict:
    try:
        scopes = user.account_profile.kv_scopes
    except (AccountProfile.DoesNotExist, AttributeError):
        return {}
    return scopes if isinstance(scopes, dict) else {}


# --- users (the admin's list) --------------------------------------------------------------------


def user_shape(user, *, locked: bool) -> dict:
    """One user as the API returns it; never the password or its hash."""
    try:
        must_change = user.account_profile.must_change_password
    except AccountProfile.DoesNotExist:
        must_change = False
    return {
        "id": user.pk,
        "username": user.get_username(),
        "is_active": user.is_active,
        "roles": effective_roles(user),
        "kv_scopes": {} if user.is_superuser else _stored_kv_scopes(user),
        "must_change_password": must_change,
        "locked": locked,
    }


def users_list() -> list[dict]:
    """Every user, by username, in the API's shape (two queries whatever the count)."""
    users = list(get_user_model().objects.select_related("account_profile").order_by("username"))
    locked = locked_usernames(usernames=[user.get_username() for user in users])
    return [user_shape(user, locked=user.get_username() in locked) for user in users]


def user_get(*, user_id) -> dict | None:
    """One user in the API's shape, or None when there is no such user."""
    user = user_by_id(user_id=user_id)
    if user is None:
        return None
    return user_shape(user, locked=bool(locked_usernames(usernames=[user.get_username()])))


def user_by_id(*, user_id):
    """The user (with profile) of an id from a URL, or None (also for an id that is no number)."""
    try:
        pk = int(user_id)
    except (TypeError, ValueError):
        return None
    return get_user_model().objects.select_related("account_profile").filter(pk=pk).first()


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
