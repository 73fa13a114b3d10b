"""Writes of the journal: store watch events with the cursor, record gaps, purge old rows.

These are the journal worker's writes, not a user's: nothing here is audited (the journal is
itself a record of changes). Every store moves the cluster's cursor in the same transaction as
its rows, and skips what the cursor already covers, so a worker that restarts or reconnects at
any moment neither loses nor repeats a change.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Value
from django.db.models.functions import Greatest
from django.utils import timezone

from etcdgateway import WatchEvent
from journal.models import JournalCursor, JournalEvent, JournalGap

PURGE_BATCH = 5000


@dataclass(frozen=True)
class JournalPolicy:
    """What is kept: values up to `max_value_bytes`, keys outside `exclude_prefixes`."""

    max_value_bytes: int
    exclude_prefixes: tuple[bytes, ...]

    @classmethod
    def from_settings(cls) -> "JournalPolicy":
        return cls(
            max_value_bytes=settings.JOURNAL_MAX_VALUE_BYTES,
            exclude_prefixes=tuple(p.encode() for p in settings.JOURNAL_EXCLUDE_PREFIXES),
        )


def journal_start(*, cluster_id: str, current_revision: Callable[[], int]) -> int:
    """The revision up to which the cluster's journal is complete; the worker watches from the
    next one. A cluster journaled for the first time starts at etcd's current revision
    (`current_revision()`): history from before the journal existed is not replayed."""
    cursor = JournalCursor.objects.filter(cluster_id=cluster_id).first()
    if cursor is not None:
        return cursor.revision
    revision = current_revision()
    cursor, _ = JournalCursor.objects.get_or_create(
        cluster_id=cluster_id,
        defaults={"revision": revision, "etcd_revision": revision, "updated_at": timezone.now()},
    )
    return cursor.revision


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


# The columns of one stored event, in the order `_rows` builds them and COPY sends them.
COLUMNS = (
    "cluster_id",
    "revision",
    "key",
    "kind",
    "lease",
    "value",
    "value_size",
    "value_sha256",
    "prev_value",
    "prev_value_size",
    "prev_value_sha256",
    "observed_at",
)
COPY_TYPES = (
    "text",
    "int8",
    "bytea",
    "text",
    "int8",
    "bytea",
    "int4",
    "bytea",
    "bytea",
    "int4",
    "bytea",
    "timestamptz",
)


NO_VALUE = (None, 0, None)  # value, value_size, value_sha256 of a delete
NO_PREV = (None, None, None)  # prev_value, prev_value_size, prev_value_sha256 of a put


def _rows(
    cluster_id: str, events: Sequence[WatchEvent], policy: JournalPolicy, now: datetime
) -> list[tuple]:
    """One tuple per kept event (COLUMNS order); plain tuples, not model instances: building
    thousands of instances per batch cost more than the insert (measured, bench/journal.py)."""
    limit = policy.max_value_bytes
    excluded = policy.exclude_prefixes
    rows = []
    append = rows.append
    for kind, key, revision, value, lease, prev in events:
        if excluded and key.startswith(excluded):
            continue
        if kind == "put":
            size = len(value)
            kept = value if size <= limit else None
            digest = _digest(value)
            append((cluster_id, revision, key, kind, lease, kept, size, digest, *NO_PREV, now))
        elif prev is None:
            append((cluster_id, revision, key, kind, lease, *NO_VALUE, *NO_PREV, now))
        else:
            size = len(prev)
            kept = prev if size <= limit else None
            digest = _digest(prev)
            append((cluster_id, revision, key, kind, lease, *NO_VALUE, kept, size, digest, now))
    return rows


def _insert(rows: list[tuple]) -> None:
    """Insert rows: PostgreSQL's binary COPY (several times faster than a multi-row INSERT for
    1 KiB bytea values, measured), elsewhere (SQLite, embedded mode) bulk_create."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        table = JournalEvent._meta.db_table
        statement = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            copy.set_types(COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        return
    JournalEvent.objects.bulk_create(
        [JournalEvent(**dict(zip(COLUMNS, row, strict=True))) for row in rows], batch_size=500
    )


def journal_events_store(
    *,
    cluster_id: str,
    events: Sequence[WatchEvent],
    etcd_revision: int,
    policy: JournalPolicy,
) -> int:
    """Store `events` (watch batches in revision order) and move the cursor to the last one's
    revision, in one transaction; returns the rows written.

    Events the cursor already covers are skipped (a reconnect may replay them), excluded keys
    are skipped but still move the cursor. The cursor row is locked first, so two workers on one
    cluster serialise instead of storing a change twice.
    """
    if not events:
        return 0
    now = timezone.now()
    with transaction.atomic():
        cursor = JournalCursor.objects.select_for_update().get(cluster_id=cluster_id)
        fresh = [event for event in events if event.revision > cursor.revision]
        rows = _rows(cluster_id, fresh, policy, now)
        _insert(rows)
        cursor.revision = max(cursor.revision, events[-1].revision)
        cursor.etcd_revision = max(cursor.etcd_revision, etcd_revision, cursor.revision)
        cursor.updated_at = now
        cursor.save(update_fields=["revision", "etcd_revision", "updated_at"])
    return len(rows)


def journal_progress_notes(*, etcd_revisions: dict[str, int], moved: set[str]) -> None:
    """Watches answered without events (created, or a progress reply): note that each cluster's
    worker is alive (`updated_at`, which the health check reads), and etcd's revision of the
    clusters in `moved` (those whose revision grew since their last note: an idle cluster's
    does not). Two statements for every cluster at once (the journal gathers its idle clusters'
    notes: one UPDATE each was most of an idle cluster's cost)."""
    if not etcd_revisions:
        return
    now = timezone.now()
    with transaction.atomic():
        JournalCursor.objects.filter(cluster_id__in=list(etcd_revisions)).update(updated_at=now)
        for cluster_id in moved:
            JournalCursor.objects.filter(cluster_id=cluster_id).update(
                etcd_revision=Greatest("etcd_revision", Value(etcd_revisions[cluster_id]))
            )


def journal_gap_record(*, cluster_id: str, compact_revision: int) -> JournalGap | None:
    """etcd compacted past the cursor: record revisions cursor+1 … compact_revision-1 as a gap
    and move the cursor to just below `compact_revision`, the oldest revision etcd still
    replays, so the worker resyncs from there. None when nothing was missed after all."""
    with transaction.atomic():
        cursor = JournalCursor.objects.select_for_update().get(cluster_id=cluster_id)
        if cursor.revision >= compact_revision - 1:
            return None
        now = timezone.now()
        gap = JournalGap.objects.create(
            cluster_id=cluster_id,
            from_revision=cursor.revision + 1,
            to_revision=compact_revision - 1,
            detected_at=now,
        )
        cursor.revision = compact_revision - 1
        cursor.updated_at = now
        cursor.save(update_fields=["revision", "updated_at"])
    return gap


def journal_purge(*, now: datetime | None = None) -> int:
    """Delete events and gaps older than JOURNAL_RETENTION_DAYS, in batches (the worker keeps
    writing meanwhile); returns the rows deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.JOURNAL_RETENTION_DAYS)
    total = 0
    while True:
        batch = list(
            JournalEvent.objects.filter(observed_at__lt=cutoff).values_list("pk", flat=True)[
                :PURGE_BATCH
            ]
        )
        if not batch:
            break
        deleted, _ = JournalEvent.objects.filter(pk__in=batch).delete()
        total += deleted
    deleted, _ = JournalGap.objects.filter(detected_at__lt=cutoff).delete()
    return total + deleted
