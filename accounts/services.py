"""Writes of the accounts app: the audit service every app calls."""

import logging

from django.utils import timezone

from accounts.models import AuditLog

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
