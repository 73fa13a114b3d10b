"""Reads of the ops app: the audit log, filtered and paginated."""

from datetime import datetime

from django.db.models import QuerySet

from accounts.models import AuditLog


def audit_entries(
    *,
    operation: str = "",
    username: str = "",
    success: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditLog]:
    """Audit entries newest first, filtered by the given fields (exact matches)."""
    entries = AuditLog.objects.order_by("-timestamp", "-id")
    if operation:
        entries = entries.filter(operation=operation)
    if username:
        entries = entries.filter(username=username)
    if success is not None:
        entries = entries.filter(success=success)
    if since is not None:
        entries = entries.filter(timestamp__gte=since)
    if until is not None:
        entries = entries.filter(timestamp__lt=until)
    return entries


def audit_page(entries: QuerySet[AuditLog], *, page: int, page_size: int) -> dict:
    """One page in the reference's shape (`entries` is [] when empty)."""
    offset = (page - 1) * page_size
    return {
        "entries": [entry.to_dict() for entry in entries[offset : offset + page_size]],
        "total": entries.count(),
        "page": page,
        "page_size": page_size,
    }
