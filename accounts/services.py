"""Writes of the accounts app: the audit service every app calls, the admin bootstrap, the
login / change-password flows with their lockout, bearer sessions, panel configs, retention."""

import hashlib
import logging
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from accounts.models import AccountProfile, AuditLog, PanelConfig, UserSession

logger = logging.getLogger(__name__)

TARGET_MAX = 1024


def audit_record(
    *,
    operation: str,
    username: str = "",
    target: str = "",
    params: str = "",
    result: str = "",
    duration_ms: int = 0,
    success: bool = True,
    client_ip: str | None = None,
) -> AuditLog | None:
    """Write one audit entry. Callers pass no secrets (mask passwords before calling).

    An audit failure (e.g. the database is down) is logged and never breaks the audited action.
    """
    try:
        return AuditLog.objects.create(
            timestamp=timezone.now(),
            username=username[:150],
            operation=operation[:64],
            target=target[:TARGET_MAX],
            params=params,
            result=result,
            duration_ms=max(0, int(duration_ms)),
            success=success,
            client_ip=client_ip or None,
        )
    except Exception:  # auditing must not take the audited action down with it
        logger.exception("could not write audit entry for %s", operation)
        return None


# --- passwords and bootstrap ---------------------------------------------------------------------

INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name
# Digits 2-9, A-Z without I/O, a-z without l/o: no 0/O/o/1/l/I to misread (56 symbols).
PASSWORD_ALPHABET = "23456789" + "ABCDEFGHJKLMNPQRSTUVWXYZ" + "abcdefghijkmnpqrstuvwxyz"
INITIAL_PASSWORD_LENGTH = 16
BOOTSTRAP_USERNAME = "admin"

WRONG_CREDENTIALS = "wrong username or password"
WRONG_OLD_CREDENTIALS = "wrong username or old password"
PASSWORD_CHANGED = "password changed, please log in with the new password"  # noqa: S105


class AuthFailure(Exception):
    """A login/change-password attempt that is refused; the view answers `status` + message."""

    def __init__(self, message: str, *, status: int = 401):
        super().__init__(message)
        self.message = message
        self.status = status


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


def admin_bootstrap(*, using: str = "default") -> Path | None:
    """Create `admin` with a random password when there are no users at all.

    The plaintext goes only to DATA_DIR/initial-admin-password (0600); the user must change it at
    first login. If the file cannot be written the user is rolled back. Returns the file's path
    when a user was created, else None (idempotent; safe to run from several processes).
    """
    user_model = get_user_model()
    if user_model.objects.using(using).exists():
        return None
    password = password_generate()
    path = initial_password_path()
    try:
        with transaction.atomic(using=using):
            user = user_model(username=BOOTSTRAP_USERNAME, is_staff=True, is_superuser=True)
            user.set_password(password)
            user.save(using=using)
            AccountProfile.objects.using(using).create(user=user, must_change_password=True)
            _write_private_file(path, password + "\n")
    except IntegrityError:  # another process bootstrapped at the same moment
        return None
    logger.warning("created user %r; its initial password is in %s", BOOTSTRAP_USERNAME, path)
    return path


def password_policy_error(*, new_password: str, old_password: str | None = None) -> str | None:
    """The policy message for a new password, or None when it is acceptable."""
    minimum = settings.MIN_PASSWORD_LENGTH
    if len(new_password) < minimum:  # characters, not bytes
        return f"new password too short, at least {minimum} characters"
    if old_password is not None and new_password == old_password:
        return "new password must differ from the old one"
    return None


# --- lockout -------------------------------------------------------------------------------------


def profile_for(user) -> AccountProfile:
    """The user's profile, created with defaults on first use."""
    try:
        return user.account_profile
    except AccountProfile.DoesNotExist:
        profile, _ = AccountProfile.objects.get_or_create(user=user)
        user.account_profile = profile
        return profile


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return make_password(secrets.token_urlsafe(16))


def _burn_hash_time(password: str) -> None:
    """Verify against a dummy hash so an unknown user costs what a wrong password costs."""
    check_password(password, _dummy_hash())


def lock_message(remaining_seconds: float) -> str:
    minutes = max(1, math.ceil(remaining_seconds / 60))
    return f"account locked, try again in {minutes} minute{'s' if minutes != 1 else ''}"


def _lock_check(profile: AccountProfile) -> float:
    """Remaining lock seconds; an expired lock is cleared together with its counter."""
    now = timezone.now()
    remaining = profile.lock_remaining_seconds(now)
    if remaining == 0 and profile.locked_until is not None:
        AccountProfile.objects.filter(pk=profile.pk, locked_until__lte=now).update(
            failed_attempts=0, locked_until=None
        )
        profile.failed_attempts, profile.locked_until = 0, None
    return remaining


def _failure_record(*, profile: AccountProfile, username: str, client_ip: str | None) -> bool:
    """Count one wrong password (shared by login and change-password); True when it locks."""
    with transaction.atomic():
        locked_row = AccountProfile.objects.select_for_update().get(pk=profile.pk)
        now = timezone.now()
        if locked_row.locked_until is not None and locked_row.locked_until <= now:
            locked_row.failed_attempts = 0  # the previous lock has expired: start afresh
        locked_row.failed_attempts += 1
        locks = locked_row.failed_attempts >= settings.LOCKOUT_THRESHOLD
        locked_row.locked_until = (
            now + timedelta(seconds=settings.LOCKOUT_DURATION_SECONDS) if locks else None
        )
        locked_row.save(update_fields=["failed_attempts", "locked_until"])
    profile.failed_attempts, profile.locked_until = (
        locked_row.failed_attempts,
        locked_row.locked_until,
    )
    if locks:
        audit_record(
            operation="login_lockout",
            username=username,
            target=client_ip or "",
            params=f"failed_attempts={locked_row.failed_attempts}",
            result=f"account locked for {settings.LOCKOUT_DURATION_SECONDS} s",
            success=False,
            client_ip=client_ip,
        )
    return locks


def _counters_reset(profile: AccountProfile) -> None:
    if profile.failed_attempts or profile.locked_until is not None:
        profile.failed_attempts, profile.locked_until = 0, None
        profile.save(update_fields=["failed_attempts", "locked_until"])


def account_unlock(*, user, actor: str = "", source: str = "cli", client_ip: str | None = None):
    """Clear the failure counter and any lock (CLI `unlock`, admin action); audited."""
    profile = profile_for(user)
    was_locked = profile.is_locked()
    _counters_reset(profile)
    audit_record(
        operation="cli_unlock" if source == "cli" else "admin_unlock",
        username=actor or user.get_username(),
        target=_local_target() if source == "cli" else user.get_username(),
        params=f"username={user.get_username()}",
        result="ok (was locked)" if was_locked else "ok (was not locked)",
        client_ip=client_ip,
    )
    return profile


def _local_target() -> str:
    return f"local@{socket.gethostname()}"


def credentials_check(*, username: str, password: str, operation: str, wrong: str, client_ip):
    """Shared first half of login and change-password: user, lock, password.

    Returns the user or raises AuthFailure (after auditing it). Unknown users burn a hash
    verification; locked accounts get no hash comparison at all.
    """
    started = time.monotonic()

    def refuse(message: str) -> AuthFailure:
        audit_record(
            operation=operation,
            username=username,
            target=client_ip or "",
            result=message,
            duration_ms=int((time.monotonic() - started) * 1000),
            success=False,
            client_ip=client_ip,
        )
        return AuthFailure(message)

    user = (
        get_user_model().objects.select_related("account_profile").filter(username=username).first()
    )
    if user is None or not user.is_active:
        _burn_hash_time(password)
        raise refuse(wrong)
    profile = profile_for(user)
    remaining = _lock_check(profile)
    if remaining:
        raise refuse(lock_message(remaining))
    if not user.check_password(password):
        _failure_record(profile=profile, username=username, client_ip=client_ip)
        raise refuse(wrong)
    return user


# --- sessions ------------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


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


def sessions_revoke(*, user) -> int:
    """End every session of `user` (password change, reset_password); returns how many."""
    deleted, _ = UserSession.objects.filter(user=user).delete()
    return deleted


def sessions_purge_expired() -> int:
    """Delete expired sessions (they are refused on lookup anyway; this keeps the table small)."""
    deleted, _ = UserSession.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted


# --- the auth flows ------------------------------------------------------------------------------


@dataclass
class LoginResult:
    user: object
    must_change_password: bool
    token: str = ""
    session: UserSession | None = None


def login_attempt(*, username: str, password: str, client_ip: str | None = None) -> LoginResult:
    """The login endpoint's logic (§1.1). Raises AuthFailure on refusal.

    A correct password of a user who must change it issues no session and leaves the counters
    as they are; any other success resets them, records last_login and creates a session.
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

    def audit(result: str, success: bool = True) -> None:
        audit_record(
            operation="login",
            username=username,
            target=client_ip or "",
            result=result,
            duration_ms=int((time.monotonic() - started) * 1000),
            success=success,
            client_ip=client_ip,
        )

    if profile.must_change_password:
        audit("must_change_password")
        return LoginResult(user=user, must_change_password=True)
    try:
        with transaction.atomic():
            _counters_reset(profile)
            user.last_login = timezone.now()
            user.save(update_fields=["last_login"])
            token, session = session_create(user=user, client_ip=client_ip)
    except DatabaseError:
        logger.exception("session creation failed for %s", username)
        audit("session creation failed", success=False)
        raise AuthFailure("login failed", status=500) from None
    audit("ok")
    return LoginResult(user=user, must_change_password=False, token=token, session=session)


def password_change(
    *, username: str, old_password: str, new_password: str, client_ip: str | None = None
) -> None:
    """The zero-token change-password endpoint (§1.1). Raises AuthFailure on refusal.

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
    policy = password_policy_error(new_password=new_password, old_password=old_password)
    if policy:
        raise AuthFailure(policy, status=400)  # not counted, not audited
    profile = profile_for(user)
    was_forced = profile.must_change_password
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        profile.must_change_password = False
        profile.failed_attempts, profile.locked_until = 0, None
        profile.save(update_fields=["must_change_password", "failed_attempts", "locked_until"])
        revoked = sessions_revoke(user=user)
    if was_forced:
        initial_password_file_delete()
    audit_record(
        operation="change_password",
        username=username,
        target=client_ip or "",
        result=f"ok, {revoked} session(s) revoked",
        duration_ms=int((time.monotonic() - started) * 1000),
        client_ip=client_ip,
    )


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

    Returns the number of revoked sessions. Raises AuthFailure(400) on a policy violation.
    """
    policy = password_policy_error(new_password=new_password)
    if policy:
        raise AuthFailure(policy, status=400)
    profile = profile_for(user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        profile.must_change_password = True
        profile.failed_attempts, profile.locked_until = 0, None
        profile.save(update_fields=["must_change_password", "failed_attempts", "locked_until"])
        revoked = sessions_revoke(user=user)
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


# --- panel config and retention ------------------------------------------------------------------


def panel_config_save(*, user, config: dict) -> dict:
    """Store a user's layout, normalised against the panel registry (unknown ids dropped).

    Raises TooManyVisibleCards (nothing stored) when more than MAX_VISIBLE_CARDS distinct cards
    are sent visible; the view turns it into the contract's 400.
    """
    from monitoring.panels import MAX_VISIBLE_CARDS, merge_panel_config

    merged = merge_panel_config(config)
    sent_cards = config.get("cards")
    if isinstance(sent_cards, list):
        visible_ids = {
            c.get("id")
            for c in sent_cards
            if isinstance(c, dict) and c.get("visible") is True and isinstance(c.get("id"), str)
        }
        if len(visible_ids) > MAX_VISIBLE_CARDS:
            raise TooManyVisibleCards(MAX_VISIBLE_CARDS)
    PanelConfig.objects.update_or_create(
        user=user,
        defaults={
            "panels": merged["panels"],
            "cards": merged["cards"] if isinstance(sent_cards, list) else None,
        },
    )
    return merged


class TooManyVisibleCards(ValueError):
    def __init__(self, maximum: int):
        super().__init__(f"more than {maximum} visible cards")
        self.maximum = maximum


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
