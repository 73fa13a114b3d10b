"""Models of the accounts app: account profiles, sign-in throttles, bearer sessions."""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.validators import validate_kv_scopes, validate_roles


class Role(models.TextChoices):
    """A user's role on one cluster, each including the one before."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class AccountProfile(models.Model):
    """What Django's user lacks: the forced password change and the roles per cluster.

    `roles` maps a cluster id, or "*" for every cluster not named, to a `Role`
    (`accounts.selectors.role_for` reads it: a missing "*" means viewer, a superuser is admin
    everywhere). Whether the account is locked is not stored here: failed sign-ins are counted
    in `LoginThrottle` (by username and client address, so unknown usernames count too).
    `last_login` is Django's own field on the user. `kv_scopes` narrows the keys a user sees and
    writes per cluster (kvmanager.scopes; a superuser is never narrowed). Created on first use
    by `profile_for()`.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_profile"
    )
    must_change_password = models.BooleanField(default=False)
    roles = models.JSONField(default=dict, blank=True, validators=[validate_roles])
    # {"<cluster_id>" | "*": {"read": [prefix, …], "write": [prefix, …]}}; no entry for a
    # cluster (nor "*") = every key. Enforced by kvmanager.scopes.
    kv_scopes = models.JSONField(default=dict, blank=True, validators=[validate_kv_scopes])

    class Meta:
        verbose_name = "account profile"

    def __str__(self) -> str:
        return f"profile of {self.user}"


class LoginThrottle(models.Model):
    """One counter of failed sign-ins (login, change-password, admin login) in one scope:

    - `user_addr`: a username from one client address. LOCKOUT_THRESHOLD failures lock that pair
      for LOCKOUT_DURATION_SECONDS; the same username from another address is not affected.
    - `addr`: every username from one address (LOGIN_ADDRESS_FAILURE_LIMIT per lockout duration).
    - `user`: a username from every address (LOGIN_USER_FAILURE_LIMIT per lockout duration, then
      one attempt per LOGIN_USER_SLOWDOWN_SECONDS).
    - `global`: everything (LOGIN_GLOBAL_FAILURES_PER_MINUTE).
    - `known`: not a counter: a username's successful sign-in from an address (when, in
      `window_started_at`), which exempts that address from the `user` and `global` blocks.

    Usernames are counted whether or not they exist, so no answer tells them apart. A row is
    reserved (counted) before the password is checked, under a row lock, so concurrent
    attempts can never check more passwords than the limit allows.
    """

    key = models.CharField(max_length=64, unique=True)  # SHA-256 of scope, username, address
    scope = models.CharField(max_length=16)
    username = models.CharField(max_length=150, blank=True, default="", db_index=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()
    blocked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["window_started_at"], name="login_throttle_window")]

    def __str__(self) -> str:
        return f"{self.scope} {self.username} {self.client_ip or ''}: {self.failures}"

    def block_remaining_seconds(self, now: datetime | None = None) -> float:
        """Seconds the block still holds (0 when not blocked or the block has expired)."""
        if self.blocked_until is None:
            return 0.0
        return max(0.0, (self.blocked_until - (now or timezone.now())).total_seconds())


class UserSession(models.Model):
    """A bearer session. Only the SHA-256 of the token is stored; the token itself is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_sessions"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)  # None: never
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"session of {self.user} from {self.created_at:%Y-%m-%d %H:%M:%S}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def expires_at_unix(self) -> int:
        """The API's `expires_at`: Unix seconds, 0 for a session that never expires."""
        return int(self.expires_at.timestamp()) if self.expires_at else 0
