"""System checks of the accounts app's settings (`manage.py check`)."""

from django.conf import settings
from django.core import checks

SIGN_IN_LIMITS = (
    "LOCKOUT_THRESHOLD",
    "LOCKOUT_DURATION_SECONDS",
    "LOGIN_ADDRESS_FAILURE_LIMIT",
    "LOGIN_USER_FAILURE_LIMIT",
    "LOGIN_USER_SLOWDOWN_SECONDS",
    "LOGIN_GLOBAL_FAILURES_PER_MINUTE",
    "PASSWORD_HASH_CONCURRENCY",
)


@checks.register(checks.Tags.security)
def sign_in_limits_check(app_configs=None, **kwargs) -> list:
    """accounts.W001: a sign-in limit below 1 cannot mean "off"; it is used as 1."""
    return [
        checks.Warning(
            f"{name}={getattr(settings, name)} is below 1 and is used as 1",
            hint="Set it to a positive number (see .env.example).",
            id="accounts.W001",
        )
        for name in SIGN_IN_LIMITS
        if getattr(settings, name) < 1
    ]


WEAK_MINIMUM = 8  # NIST SP 800-63B's floor for a password the user chooses


@checks.register(checks.Tags.security)
def password_policy_check(app_configs=None, **kwargs) -> list:
    """accounts.W002: MIN_PASSWORD_LENGTH below 8 lets every user pick a guessable password
    (the common-password list and the other validators still apply)."""
    if settings.MIN_PASSWORD_LENGTH >= WEAK_MINIMUM:
        return []
    return [
        checks.Warning(
            f"MIN_PASSWORD_LENGTH={settings.MIN_PASSWORD_LENGTH} is below {WEAK_MINIMUM}",
            hint="Raise it to 8 or more (see .env.example).",
            id="accounts.W002",
        )
    ]
