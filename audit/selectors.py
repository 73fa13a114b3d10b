"""Reads of the audit log: filtered pages for the API, and the CSV export's rows."""

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from django.db.models import QuerySet

from audit.models import AuditLog


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


# --- CSV -----------------------------------------------------------------------------------------

AUDIT_CSV_COLUMNS = (
    "id",
    "timestamp",
    "username",
    "operation",
    "target",
    "params",
    "result",
    "duration_ms",
    "success",
    "client_ip",
)
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe_cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP: prefix a single quote)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def audit_csv_rows(entries: Iterable[AuditLog]) -> Iterator[list[str]]:
    """Header then one neutralised row per entry; timestamps as ISO 8601 UTC."""
    yield list(AUDIT_CSV_COLUMNS)
    for entry in entries:
        row = entry.to_dict()
        row["timestamp"] = entry.timestamp.astimezone(UTC).isoformat()
        yield [csv_safe_cell(row[column]) for column in AUDIT_CSV_COLUMNS]


def audit_csv_lines(entries: Iterable[AuditLog]) -> Iterator[str]:
    """The CSV document line by line (for a StreamingHttpResponse)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in audit_csv_rows(entries):
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
