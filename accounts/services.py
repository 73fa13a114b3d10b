"""Writes of the accounts app: the admin bootstrap, the login / change-password flows with their
lockout, bearer sessions, retention.

Refusals are the project's domain errors (etcdmonitor_site.errors): a wrong password is
AuthenticationRefused, a throttle RateLimited (the lock itself AuthenticationRefused, as the
reference answers 401), no free hashing slot Unavailable, a policy violation InvalidInput."""

import hashlib
import logging
import math
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import (
    check_password,
    get_hasher,
    identify_hasher,
    make_password,
)
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts import selectors
from accounts.models import AccountProfile, LoginThrottle, UserSession
from accounts.selectors import presented_token, stored_session, token_hash
from accounts.validators import ANY_CLUSTER, validate_kv_scopes, validate_roles
from audit.services import Actor, audit_record, audited
from etcdmonitor_site.errors import (
    AuthenticationRefused,
    Conflict,
    DomainError,
    Forbidden,
    InternalFailure,
    InvalidInput,
    RateLimited,
    Unavailable,
)

logger = logging.getLogger(__name__)


# --- passwords and bootstrap ---------------------------------------------------------------------

INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name
# Digits 2-9, A-Z without I/O, a-z without l/o: no 0/O/o/1/l/I to misread (56 symbols).
PASSWORD_ALPHABET = "23456789" + "ABCDEFGHJKLMNPQRSTUVWXYZ" + "abcdefghijkmnpqrstuvwxyz"
INITIAL_PASSWORD_LENGTH = 16
BOOTSTRAP_USERNAME = "admin"

WRONG_CREDENTIALS = "wrong username or password"
WRONG_OLD_CREDENTIALS = "wrong username or old password"
PASSWORD_CHANGED = "password changed, please log in with the new password"  # noqa: S105


def initial_password_path() -> Path:
    return Path(settings.DATA_DIR) / INITIAL_PASSWORD_FILE


def password_generate(length: int = INITIAL_PASSWORD_LENGTH) -> str:
    """A random password from the unambiguous alphabet (secrets.choice samples uniformly)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def _write_private_file(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an existing file keeps its old mode otherwise
        handle.write(content)


def _initial_password(user) -> str:
    """A generated password that passes the policy: at least 16 characters and never shorter
    than MIN_PASSWORD_LENGTH (a random draw failing a validator is drawn again)."""
    length = max(INITIAL_PASSWORD_LENGTH, settings.MIN_PASSWORD_LENGTH)
    while True:
        password = password_generate(length)
        if password_policy_error(new_password=password, user=user) is None:
            return password


def admin_bootstrap(*, using: str = "default") -> Path | None:
    """Create `admin` with a random password when there are no users at all.

    The plaintext goes only to DATA_DIR/initial-admin-password (0600); the user must change it at
    first login, to a password that passes the policy. The user is admin on every cluster. If
    the file cannot be written the user is rolled back. Returns the file's path
    when a user was created, else None (idempotent; safe to run from several processes).
    """
    user_model = get_user_model()
    if user_model.objects.using(using).exists():
        return None
    user = user_model(username=BOOTSTRAP_USERNAME, is_staff=True, is_superuser=True)
    password = _initial_password(user)
    path = initial_password_path()
    try:
        with transaction.atomic(using=using):
            user.set_password(password)
            user.save(using=using)
            AccountProfile.objects.using(using).create(
                user=user, must_change_password=True, roles={ANY_CLUSTER: "admin"}
            )
            _write_private_file(path, password + "\n")
    except IntegrityError:  # another process bootstrapped at the same moment
        return None
    logger.warning("created user %r; its initial password is in %s", BOOTSTRAP_USERNAME, path)
    return path


def password_policy_error(
    *, new_password: str, user=None, old_password: str | None = None
) -> str | None:
    """The policy's refusal of a new password (every failed validator's message, in one
    sentence list), or None when it is acceptable.

    The validators are settings.AUTH_PASSWORD_VALIDATORS: length (MIN_PASSWORD_LENGTH, in
    characters), similarity to `user`'s username, common passwords, all digits. `user` may be
    unsaved (a user being created).
    """
    if old_password is not None and new_password == old_password:
        return "new password must differ from the old one"
    try:
        validate_password(new_password, user=user)
    except ValidationError as refusal:
        return " ".join(refusal.messages)
    return None


def password_policy_check(*, new_password: str, user=None, old_password: str | None = None):
    """Raise InvalidInput with the policy's refusal of a new password (see
    password_policy_error)."""
    refusal = password_policy_error(new_password=new_password, user=user, old_password=old_password)
    if refusal:
        raise InvalidInput(refusal)


# --- lockout and sign-in throttles --------------------------------------------------------------


def profile_for(user) -> AccountProfile:
    """The user's profile, created with defaults on first use."""
    try:
        return user.account_profile
    except AccountProfile.DoesNotExist:
        profile, _ = AccountProfile.objects.get_or_create(user=user)
        user.account_profile = profile
        return profile


HASH_WAIT_SECONDS = 10.0  # a sign-in that cannot get a hashing slot this long is answered 503
BUSY = "server busy, try again in a moment"


HASH_NICENESS = 10  # hashing threads yield the CPU to every other request (CFS weight ~1/10)


def _hash_thread_init() -> None:
    """Lower this hashing thread's CPU priority (Linux: per thread; Argon2's lane threads,
    started from it, inherit it), so a burst of sign-ins cannot starve /healthz and the API."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)
    except (AttributeError, OSError):  # not Linux: the bound on concurrency still holds
        logger.info("could not lower the priority of the password hashing thread")


class _HashPool:
    """PASSWORD_HASH_CONCURRENCY hashing threads per process, and as many sign-ins again
    admitted to wait for one (`admission`, never waits): any further sign-in is refused at
    once, before any database work, rather than hold one of the server's threads."""

    def __init__(self, size: int):
        self.size = size
        self._executor = ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="password-hash", initializer=_hash_thread_init
        )
        self._admitted = 0
        self._guard = threading.Lock()

    @contextmanager
    def admission(self):
        with self._guard:
            if self._admitted >= 2 * self.size:
                raise Unavailable(BUSY)
            self._admitted += 1
        try:
            yield
        finally:
            with self._guard:
                self._admitted -= 1

    def run(self, function, *args):
        future = self._executor.submit(function, *args)
        try:
            return future.result(timeout=HASH_WAIT_SECONDS)
        except FutureTimeout:
            future.cancel()
            raise Unavailable(BUSY) from None


_hash_pool: _HashPool | None = None
_hash_pool_guard = threading.Lock()


def _pool() -> _HashPool:
    global _hash_pool
    size = max(1, settings.PASSWORD_HASH_CONCURRENCY)
    with _hash_pool_guard:
        if _hash_pool is None or _hash_pool.size != size:
            _hash_pool = _HashPool(size)
        return _hash_pool


def hashed(function, *args):
    """Run a password hash function (check_password, make_password) on one of the process's
    PASSWORD_HASH_CONCURRENCY low-priority hashing threads and return its result.

    Each Argon2 computation takes ~100 MiB and both cores: unbounded, a burst of logins took a
    worker from 243 to 1,029 MiB and starved every other request. Works the same under the
    threaded WSGI worker and for sync views in ASGI's threads. Raises Unavailable when no
    hashing thread frees up within HASH_WAIT_SECONDS.
    """
    return _pool().run(function, *args)


def sign_in_admission():
    """Admit one sign-in (context manager) or raise Unavailable at once when twice
    PASSWORD_HASH_CONCURRENCY are already in progress in this process."""
    return _pool().admission()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return make_password(secrets.token_urlsafe(16))


def _burn_hash_time(password: str) -> None:
    """Verify against a dummy hash so an unknown user costs what a wrong password costs."""
    hashed(check_password, password, _dummy_hash())


def _password_matches(user, password: str) -> bool:
    """user.check_password, hashed on the hashing threads (which never touch the database);
    a hash made with outdated parameters is upgraded here, as Django's own check would."""
    encoded = user.password
    if not hashed(check_password, password, encoded):
        return False
    preferred = get_hasher("default")
    try:
        current = identify_hasher(encoded)
    except ValueError:
        current = None
    if (
        current is None
        or current.algorithm != preferred.algorithm
        or preferred.must_update(encoded)
    ):
        user.password = hashed(make_password, password)
        user.save(update_fields=["password"])
    return True


def _password_set(user, password: str) -> None:
    user.password = hashed(make_password, password)


def throttle_message(remaining_seconds: float) -> str:
    """The one refusal of a locked or throttled sign-in, the same for known and unknown
    usernames (it names neither an account nor its state)."""
    minutes = max(1, math.ceil(remaining_seconds / 60))
    return (
        f"too many failed sign-in attempts, try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}"
    )


@dataclass(frozen=True)
class _Scope:
    name: str
    limit: int
    window: float | None  # seconds a count lasts from its first failure (None: until success)
    block: float  # seconds an attempt at or over the limit blocks further ones
    refusal: type[DomainError]  # what a blocked attempt is told


def _scopes() -> list[_Scope]:
    duration = max(1, settings.LOCKOUT_DURATION_SECONDS)
    return [
        # The lock: per username x address, consecutive failures (the reference's 401).
        _Scope(
            "user_addr", max(1, settings.LOCKOUT_THRESHOLD), None, duration, AuthenticationRefused
        ),
        _Scope(
            "addr", max(1, settings.LOGIN_ADDRESS_FAILURE_LIMIT), duration, duration, RateLimited
        ),
        # The slow-down: past the limit, one attempt per interval for that username.
        _Scope(
            "user",
            max(1, settings.LOGIN_USER_FAILURE_LIMIT),
            duration,
            max(1, settings.LOGIN_USER_SLOWDOWN_SECONDS),
            RateLimited,
        ),
        _Scope("global", max(1, settings.LOGIN_GLOBAL_FAILURES_PER_MINUTE), 60, 60, RateLimited),
    ]


def _throttle_key(scope: str, username: str, client_ip: str | None) -> str:
    parts = {
        "user_addr": (username, client_ip or ""),
        "addr": ("", client_ip or ""),
        "user": (username, ""),
        "global": ("", ""),
        "known": (username, client_ip or ""),  # a successful sign-in (window_started_at: when)
    }[scope]
    return hashlib.sha256("\0".join((scope, *parts)).encode("utf-8", "surrogateescape")).hexdigest()


# Blocks that a distributed attack can impose on everyone; an address the username has signed in
# from before is exempt from them (the per address and per username x address ones still hold).
EXEMPTIBLE = ("user", "global")


def _signed_in_before(username: str, client_ip: str | None) -> bool:
    """Has `username` signed in successfully from `client_ip` within AUDIT_RETENTION_DAYS?

    Only the owner's addresses answer yes; for an attacker's address (or an unknown username)
    the answer is always no, so the exemption tells an attacker nothing. One unique-key lookup.
    """
    if not client_ip:
        return False
    return LoginThrottle.objects.filter(
        key=_throttle_key("known", username, client_ip),
        window_started_at__gte=timezone.now() - timedelta(days=settings.AUDIT_RETENTION_DAYS),
    ).exists()


@dataclass
class _Reservation:
    keys: dict  # scope name -> row key
    reached: list  # scopes this attempt brought to their limit (audited if it fails)


def _attempt_reserve(*, username: str, client_ip: str | None) -> _Reservation:
    """Count this attempt in every scope before any password is checked, or refuse it.

    All four rows are locked (in key order, so concurrent attempts cannot deadlock) in one
    transaction: of N concurrent attempts exactly `limit` get through, where counting after the
    check let all of them hash. A refused attempt counts nowhere (hammering a lock cannot
    extend it or feed the other scopes). Raises the blocking scope's refusal with the throttle
    message.
    """
    username = username[:150]
    scopes = {scope.name: scope for scope in _scopes()}
    keys = {name: _throttle_key(name, username, client_ip) for name in scopes}
    now = timezone.now()
    with transaction.atomic():
        LoginThrottle.objects.bulk_create(
            [
                LoginThrottle(
                    key=key,
                    scope=name,
                    username=username if name in ("user_addr", "user") else "",
                    client_ip=client_ip if name in ("user_addr", "addr") else None,
                    window_started_at=now,
                )
                for name, key in keys.items()
            ],
            ignore_conflicts=True,
        )
        rows = {
            row.scope: row
            for row in LoginThrottle.objects.select_for_update()
            .filter(key__in=keys.values())
            .order_by("key")
        }
        refusal = None
        for name, row in rows.items():
            scope = scopes[name]
            remaining = row.block_remaining_seconds(now)
            if remaining and name in EXEMPTIBLE and _signed_in_before(username, client_ip):
                remaining = 0.0  # the owner's own address: the crowd cannot slow it down
            if remaining and (refusal is None or remaining > refusal[0]):
                refusal = (remaining, scope.refusal)
                continue
            expired_block = row.blocked_until is not None and scope.window is None
            expired_window = (
                scope.window is not None
                and (now - row.window_started_at).total_seconds() >= scope.window
            )
            if expired_block or expired_window:  # a lock that ran out starts the count afresh
                row.failures, row.window_started_at, row.blocked_until = 0, now, None
        if refusal is not None:
            remaining, refused = refusal
            raise refused(throttle_message(remaining))
        reached = []
        for name, row in rows.items():
            scope = scopes[name]
            row.failures += 1
            if row.failures >= scope.limit:
                if row.failures == scope.limit:
                    reached.append(name)
                row.blocked_until = now + timedelta(seconds=scope.block)
                if name == "global":  # the per-minute window ends the global block
                    window_end = row.window_started_at + timedelta(seconds=60)
                    row.blocked_until = max(now + timedelta(seconds=1), window_end)
        LoginThrottle.objects.bulk_update(
            rows.values(), ["failures", "window_started_at", "blocked_until"]
        )
    return _Reservation(keys=keys, reached=reached)


def _attempt_failed(
    *, reservation: _Reservation, username: str, client_ip: str | None, operation: str
) -> None:
    """The reserved attempt was wrong: audit the lock or throttle it engaged, if any."""
    for name in reservation.reached:
        if name == "user_addr":
            audit_record(
                operation="login_lockout",
                username=username,
                target=client_ip or "",
                params=f"failed_attempts={settings.LOCKOUT_THRESHOLD}, via={operation}",
                result=(
                    f"locked for {settings.LOCKOUT_DURATION_SECONDS} s from this address "
                    "(other addresses unaffected)"
                ),
                success=False,
                client_ip=client_ip,
            )
        else:
            audit_record(
                operation="login_throttle",
                username=username if name == "user" else "",
                target=client_ip or "",
                params=f"scope={name}",
                result={
                    "addr": "this address is throttled",
                    "user": "this username is slowed down from every address",
                    "global": "every sign-in is throttled",
                }[name],
                success=False,
                client_ip=client_ip,
            )


def _attempt_succeeded(*, reservation: _Reservation, username: str, client_ip: str | None) -> None:
    """The reserved attempt was right: its address is no longer locked for this username (and
    is remembered as the owner's, see EXEMPTIBLE), and the attempt no longer counts against the
    address, the username or everyone."""
    LoginThrottle.objects.filter(key=reservation.keys["user_addr"]).delete()
    if client_ip:
        LoginThrottle.objects.update_or_create(
            key=_throttle_key("known", username[:150], client_ip),
            defaults={
                "scope": "known",
                "username": username[:150],
                "client_ip": client_ip,
                "window_started_at": timezone.now(),
            },
        )
    LoginThrottle.objects.filter(
        key__in=[reservation.keys[name] for name in ("addr", "user", "global")], failures__gt=0
    ).update(failures=F("failures") - 1)


def _attempt_undo(*, reservation: _Reservation) -> None:
    """The reserved attempt checked no password (server busy): it counts nowhere, and a block
    it engaged is lifted."""
    LoginThrottle.objects.filter(key__in=reservation.keys.values(), failures__gt=0).update(
        failures=F("failures") - 1
    )
    reached = [reservation.keys[name] for name in reservation.reached]
    LoginThrottle.objects.filter(key__in=reached).update(blocked_until=None)


def _counters_reset(*, username: str) -> int:
    """Clear every lock and the slow-down of `username` (unlock, password change or reset);
    returns how many addresses were locked."""
    locked = LoginThrottle.objects.filter(
        scope="user_addr", username=username, blocked_until__gt=timezone.now()
    ).count()
    LoginThrottle.objects.filter(scope__in=("user_addr", "user"), username=username).delete()
    return locked


def account_unlock(
    *, user, actor: str = "", source: str = "cli", client_ip: str | None = None
) -> int:
    """Clear the user's locks (every address) and slow-down (CLI `unlock`, admin action);
    audited. Returns from how many addresses the user was locked out."""
    locked = _counters_reset(username=user.get_username())
    audit_record(
        operation="cli_unlock" if source == "cli" else "admin_unlock",
        username=actor or user.get_username(),
        target=_local_target() if source == "cli" else user.get_username(),
        params=f"username={user.get_username()}",
        result=f"ok (was locked from {locked} address(es))" if locked else "ok (was not locked)",
        client_ip=client_ip,
    )
    return locked


def _local_target() -> str:
    return f"local@{socket.gethostname()}"


def credentials_check(*, username: str, password: str, operation: str, wrong: str, client_ip):
    """Shared first half of login, change-password and the admin login: throttles, user,
    password.

    Returns the user or raises the refusal (after auditing it). The attempt is counted before
    anything about the username is looked at, so known and unknown usernames take the same path
    and time: refused without any hash while locked or throttled, else one hash (a dummy one
    for unknown users), within the process's hashing slots.
    """
    actor = Actor(username=username, client_ip=client_ip)
    with audited(operation, actor=actor, target=client_ip or "", failures=(DomainError,)) as action:
        with sign_in_admission():
            user = _credentials_verify(
                username=username,
                password=password,
                operation=operation,
                wrong=wrong,
                client_ip=client_ip,
            )
        action.discard()  # a success is audited by the caller, with the flow's outcome
    return user


def _credentials_verify(*, username: str, password: str, operation: str, wrong: str, client_ip):
    """credentials_check's work once admitted: reserve, look up, hash (a refusal raises)."""
    reservation = _attempt_reserve(username=username, client_ip=client_ip)
    user = (
        get_user_model().objects.select_related("account_profile").filter(username=username).first()
    )
    try:
        if user is None or not user.is_active:
            _burn_hash_time(password)
            matches = False
        else:
            matches = _password_matches(user, password)
    except Unavailable:  # no password was checked: the attempt does not count
        _attempt_undo(reservation=reservation)
        raise
    if not matches:
        _attempt_failed(
            reservation=reservation, username=username, client_ip=client_ip, operation=operation
        )
        raise AuthenticationRefused(wrong)
    _attempt_succeeded(reservation=reservation, username=username, client_ip=client_ip)
    return user


# --- sessions ------------------------------------------------------------------------------------


def session_timeout_seconds() -> int:
    timeout = settings.SESSION_TIMEOUT
    if timeout < 0:
        logger.warning("SESSION_TIMEOUT=%s is negative; using 3600", timeout)
        return 3600
    return timeout


def session_create(*, user, client_ip: str | None = None) -> tuple[str, UserSession]:
    """A new bearer session: returns the token (shown once) and the stored row (hash only)."""
    token = secrets.token_hex(32)  # 32 random bytes, 64 hex characters (the reference's shape)
    timeout = session_timeout_seconds()
    session = UserSession.objects.create(
        user=user,
        token_hash=token_hash(token),
        expires_at=timezone.now() + timedelta(seconds=timeout) if timeout else None,
        client_ip=client_ip or None,
    )
    return token, session


def session_authenticate(*, token: str | None) -> UserSession | None:
    """The live session of a presented token, or None (no token, unknown, expired or an inactive
    user). An expired session is deleted as it is found; the hourly purge catches the rest."""
    session = stored_session(token) if token else None
    if session is not None and session.is_expired():
        session.delete()
        return None
    return session


def session_for_request(*, request) -> UserSession | None:
    """The live session a request presents (header first, then cookie), without raising."""
    return session_authenticate(token=presented_token(request))


def sessions_revoke(*, user) -> int:
    """End every session of `user`: bearer sessions and Django admin sessions (password change,
    forced change, reset_password); returns how many."""
    deleted, _ = UserSession.objects.filter(user=user).delete()
    return deleted + admin_sessions_end(user=user)


def admin_sessions_end(*, user) -> int:
    """Delete the user's Django admin sessions (database session engine).

    Django already refuses a session whose password hash no longer matches, but a forced change
    keeps the password. Sessions store the user id only inside their encoded data, so the live
    ones are decoded; they are few (only the admin creates them: the dashboard uses bearer
    sessions).
    """
    from django.contrib.auth import SESSION_KEY
    from django.contrib.sessions.models import Session

    user_id = str(user.pk)
    ended = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(session.get_decoded().get(SESSION_KEY)) == user_id
    ]
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


def login_throttles_purge(*, now: datetime | None = None) -> int:
    """Delete failure counters whose window is over and that block nothing (a counter of the
    lock has no window, but one untouched for a lockout duration counts nothing worth keeping
    against the flood of random usernames it would otherwise keep)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=max(60, settings.LOCKOUT_DURATION_SECONDS))
    deleted, _ = (
        LoginThrottle.objects.filter(window_started_at__lt=stale)
        .exclude(scope="known")
        .exclude(blocked_until__gt=now)
        .delete()
    )
    forgotten, _ = LoginThrottle.objects.filter(
        scope="known", window_started_at__lt=now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    ).delete()
    return deleted + forgotten


def sessions_purge_expired() -> int:
    """Delete expired sessions, bearer and Django's (they are refused on lookup anyway; this
    keeps the tables small)."""
    from django.contrib.sessions.models import Session

    deleted, _ = UserSession.objects.filter(expires_at__lte=timezone.now()).delete()
    Session.objects.filter(expire_date__lte=timezone.now()).delete()
    return deleted


# --- the auth flows ------------------------------------------------------------------------------


@dataclass
class LoginResult:
    user: object
    must_change_password: bool
    token: str = ""
    session: UserSession | None = None


def login_attempt(*, username: str, password: str, client_ip: str | None = None) -> LoginResult:
    """The login endpoint's logic (§1.1). Raises a domain error on refusal.

    A correct password clears the lock counter of this username from this address; for a user
    who must change it, it issues no session, else it records last_login and creates a session.
    """
    started = time.monotonic()
    user = credentials_check(
        username=username,
        password=password,
        operation="login",
        wrong=WRONG_CREDENTIALS,
        client_ip=client_ip,
    )
    profile = profile_for(user)
    actor = Actor(username=username, client_ip=client_ip)
    with audited(
        "login", actor=actor, target=client_ip or "", failures=(DomainError,), started=started
    ) as action:
        if profile.must_change_password:
            action.result = "must_change_password"
            return LoginResult(user=user, must_change_password=True)
        try:
            with transaction.atomic():
                user.last_login = timezone.now()
                user.save(update_fields=["last_login"])
                token, session = session_create(user=user, client_ip=client_ip)
        except DatabaseError:
            logger.exception("session creation failed for %s", username)
            action.result = "session creation failed"
            raise InternalFailure("login failed") from None
    return LoginResult(user=user, must_change_password=False, token=token, session=session)


def password_change(
    *, username: str, old_password: str, new_password: str, client_ip: str | None = None
) -> None:
    """The zero-token change-password endpoint (§1.1). Raises a domain error on refusal.

    Success also ends every session of the user, and after a forced change deletes the initial
    password file (audited as `initial_password_file_deleted`).
    """
    started = time.monotonic()
    user = credentials_check(
        username=username,
        password=old_password,
        operation="change_password",
        wrong=WRONG_OLD_CREDENTIALS,
        client_ip=client_ip,
    )
    # A refusal is not counted and not audited: the old password was right.
    password_policy_check(new_password=new_password, user=user, old_password=old_password)
    profile = profile_for(user)
    was_forced = profile.must_change_password
    actor = Actor(username=username, client_ip=client_ip)
    # Only a completed change is audited (failures=()): an error here is the server's, and 500s.
    with audited(
        "change_password", actor=actor, target=client_ip or "", failures=(), started=started
    ) as action:
        revoked = _password_replace(
            user=user, profile=profile, new_password=new_password, must_change=False
        )
        if was_forced:
            initial_password_file_delete()
        action.result = f"ok, {revoked} session(s) revoked"


def _password_replace(
    *, user, profile: AccountProfile, new_password: str, must_change: bool
) -> int:
    """Store a new password, set whether it must be changed at next login, clear the user's
    locks and end their sessions (one transaction); returns how many sessions ended."""
    _password_set(user, new_password)  # hashed before the transaction: no row waits on Argon2
    with transaction.atomic():
        user.save(update_fields=["password"])
        profile.must_change_password = must_change
        profile.save(update_fields=["must_change_password"])
        _counters_reset(username=user.get_username())
        return sessions_revoke(user=user)


def initial_password_file_delete() -> bool:
    """Remove DATA_DIR/initial-admin-password (missing is fine); audited as `system`."""
    path = initial_password_path()
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        audit_record(
            operation="initial_password_file_deleted",
            username="system",
            target="system",
            result=str(exc),
            success=False,
        )
        return False
    audit_record(
        operation="initial_password_file_deleted", username="system", target="system", result="ok"
    )
    return True


PASSWORD_CHANGE_REQUIRED = (
    "password change required: set a new password (POST /api/auth/change-password) first"  # noqa: S105
)


def password_change_pending_denied(*, username: str, target: str, client_ip: str | None) -> None:
    """Audit a request refused because its user must change their password first."""
    audit_record(
        operation="password_change_required",
        username=username,
        target=target,
        result="permission denied: password change required",
        success=False,
        client_ip=client_ip,
    )


def logout(*, session: UserSession, client_ip: str | None = None) -> None:
    """End the presented session; audited `logout`."""
    deleted, _ = UserSession.objects.filter(pk=session.pk).delete()
    if deleted:
        audit_record(
            operation="logout",
            username=session.user.get_username(),
            target=client_ip or "",
            result="ok",
            client_ip=client_ip,
        )


def password_reset(*, user, new_password: str, actor: str = "") -> int:
    """CLI `reset_password`: set a password the user must change, clear the lock, end sessions.

    Returns the number of revoked sessions. Raises InvalidInput on a policy violation.
    """
    password_policy_check(new_password=new_password, user=user)
    profile = profile_for(user)
    revoked = _password_replace(
        user=user, profile=profile, new_password=new_password, must_change=True
    )
    audit_record(
        operation="cli_reset_password",
        username=actor or user.get_username(),
        target=_local_target(),
        params=f"username={user.get_username()}",
        result=f"ok, {revoked} session(s) revoked",
    )
    return revoked


def password_change_force(*, user, actor: str = "", client_ip: str | None = None) -> None:
    """Admin action: the user must change the password at next login; their sessions end."""
    profile = profile_for(user)
    profile.must_change_password = True
    profile.save(update_fields=["must_change_password"])
    revoked = sessions_revoke(user=user)
    audit_record(
        operation="admin_force_password_change",
        username=actor,
        target=user.get_username(),
        result=f"ok, {revoked} session(s) revoked",
        client_ip=client_ip,
    )


# --- users (the admin's API: /api/users) ---------------------------------------------------------

PERMISSION_DENIED_USERS = "permission denied: managing users needs the admin role"


def users_admin_require(*, actor: Actor, operation: str, target: str = "") -> None:
    """Refuse (Forbidden, audited under `operation`) an actor who may not manage users."""
    if selectors.users_admin(actor.user):
        return
    audit_record(
        operation=operation,
        username=actor.username,
        target=target,
        result=PERMISSION_DENIED_USERS,
        success=False,
        client_ip=actor.client_ip,
    )
    raise Forbidden(PERMISSION_DENIED_USERS)


def _roles_checked(roles) -> dict:
    try:
        validate_roles(roles)
    except ValidationError as refusal:
        raise InvalidInput(" ".join(refusal.messages)) from None
    return dict(roles)


def _kv_scopes_checked(kv_scopes) -> dict:
    try:
        validate_kv_scopes(kv_scopes)
    except ValidationError as refusal:
        raise InvalidInput(" ".join(refusal.messages)) from None
    return dict(kv_scopes)


def _username_checked(username: str) -> str:
    validator = UnicodeUsernameValidator()
    if not username or len(username) > 150:
        raise InvalidInput("username: 1 to 150 characters")
    try:
        validator(username)
    except ValidationError:
        raise InvalidInput("username: letters, digits and @/./+/-/_ only") from None
    return username


def user_create(
    *,
    actor: Actor,
    username: str,
    password: str,
    roles: dict | None = None,
    kv_scopes: dict | None = None,
):
    """Create a user who must change the given password at first sign-in (admin only).

    The password passes the policy (its similarity to the new username included); `roles` is
    the role map ({"<cluster_id>" | "*": role}, "*" absent = viewer), `kv_scopes` the KV prefix
    scopes ({"<cluster_id>" | "*": {"read": [...], "write": [...]}}, none = every key).
    Audited `user_create` (the password never reaches the log). Raises Forbidden,
    InvalidInput, Conflict (taken).
    """
    users_admin_require(actor=actor, operation="user_create", target=username[:150])
    with audited(
        "user_create",
        actor=actor,
        target=username[:150],
        params={"username": username[:150], "roles": roles or {}, "kv_scopes": kv_scopes or {}},
        failures=(DomainError,),
    ):
        _username_checked(username)
        clean_roles = _roles_checked(roles or {})
        clean_scopes = _kv_scopes_checked(kv_scopes or {})
        user_model = get_user_model()
        user = user_model(username=username)
        password_policy_check(new_password=password, user=user)
        if user_model.objects.filter(username=username).exists():
            raise Conflict("a user with that username already exists")
        _password_set(user, password)  # hashed before the transaction, as every password
        try:
            with transaction.atomic():
                user.save()
                user.account_profile = AccountProfile.objects.create(
                    user=user, must_change_password=True, roles=clean_roles, kv_scopes=clean_scopes
                )
        except IntegrityError:  # created concurrently under the same name
            raise Conflict("a user with that username already exists") from None
    return user


def _target_checked(*, actor: Actor, user, operation: str) -> None:
    """Only a superuser may change or delete a superuser (it is admin everywhere, and the
    bootstrap admin is one); refusals are audited."""
    if user.is_superuser and not getattr(actor.user, "is_superuser", False):
        audit_record(
            operation=operation,
            username=actor.username,
            target=user.get_username(),
            result="permission denied: only a superuser may change a superuser",
            success=False,
            client_ip=actor.client_ip,
        )
        raise Forbidden("permission denied: only a superuser may change a superuser")


def user_update(
    *,
    actor: Actor,
    user,
    roles: dict | None = None,
    kv_scopes: dict | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    unlock: bool = False,
):
    """Change a user (admin only): replace the role map or the KV scopes, (de)activate, reset
    the password (the user must change it at next sign-in; their lock clears, their sessions
    end) or unlock.

    Deactivation ends the user's sessions. Nobody deactivates themselves (Conflict). One audit
    row `user_update` names the changed fields (the password as ***).
    """
    params: dict = {"username": user.get_username()}
    if roles is not None:
        params["roles"] = roles
    if kv_scopes is not None:
        params["kv_scopes"] = kv_scopes
    if is_active is not None:
        params["is_active"] = is_active
    if password is not None:
        params["reset"] = True  # the password itself never reaches the log
    if unlock:
        params["unlock"] = True
    users_admin_require(actor=actor, operation="user_update", target=user.get_username())
    _target_checked(actor=actor, user=user, operation="user_update")
    with audited(
        "user_update",
        actor=actor,
        target=user.get_username(),
        params=params,
        failures=(DomainError,),
    ) as action:
        if is_active is False and user.pk == getattr(actor.user, "pk", None):
            raise Conflict("you cannot deactivate your own account")
        clean_roles = _roles_checked(roles) if roles is not None else None
        clean_scopes = _kv_scopes_checked(kv_scopes) if kv_scopes is not None else None
        if password is not None:
            password_policy_check(new_password=password, user=user)
        profile = profile_for(user)
        outcome = []
        if password is not None:
            revoked = _password_replace(
                user=user, profile=profile, new_password=password, must_change=True
            )
            outcome.append(f"password reset, {revoked} session(s) revoked")
        with transaction.atomic():
            if clean_roles is not None:
                profile.roles = clean_roles
                profile.save(update_fields=["roles"])
            if clean_scopes is not None:
                profile.kv_scopes = clean_scopes
                profile.save(update_fields=["kv_scopes"])
            if is_active is not None and is_active != user.is_active:
                user.is_active = is_active
                user.save(update_fields=["is_active"])
                if not is_active:
                    outcome.append(f"deactivated, {sessions_revoke(user=user)} session(s) revoked")
            if unlock:
                locked = _counters_reset(username=user.get_username())
                outcome.append(f"unlocked ({locked} address(es))")
        action.result = "ok" + (", " + "; ".join(outcome) if outcome else "")
    return user


def user_delete(*, actor: Actor, user) -> None:
    """Delete a user, their sessions and profile (admin only; never oneself: Conflict).
    Audited `user_delete`."""
    users_admin_require(actor=actor, operation="user_delete", target=user.get_username())
    _target_checked(actor=actor, user=user, operation="user_delete")
    with audited(
        "user_delete",
        actor=actor,
        target=user.get_username(),
        params={"username": user.get_username()},
        failures=(DomainError,),
    ):
        if user.pk == getattr(actor.user, "pk", None):
            raise Conflict("you cannot delete your own account")
        with transaction.atomic():
            admin_sessions_end(user=user)
            _counters_reset(username=user.get_username())
            user.delete()
