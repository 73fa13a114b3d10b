"""Daily partitions of `monitoring_sample` on PostgreSQL (declarative, by RANGE (ts)).

Layout: the parent `monitoring_sample` holds no rows; each UTC day [d, d + 86400) of Unix seconds
is a partition `monitoring_sample_pYYYYMMDD`, and `monitoring_sample_default` (the DEFAULT
partition) catches any row whose day has no partition yet (a clock far off, a history loaded
into the past), so an insert never fails for lack of a partition. The retention job moves the
default's rows that are still worth keeping into day partitions of their own and deletes the
rest; the collector, the migration and the retention job create partitions for
today and the next `DAYS_AHEAD` days, so in normal running the default stays empty.

Retention drops a partition whole once every row in it is older than the cutoff (after taking
each member's row count off `Member.sample_count`); the day straddling the cutoff is trimmed by
the batched delete in services.metrics_purge. SQLite (embedded mode) has none of this.

Locks: a partition is made standalone and then ATTACHed (SHARE UPDATE EXCLUSIVE on the parent,
which neither readers nor the collector's inserts wait for); DROP needs a brief ACCESS
EXCLUSIVE on the parent, bounded by LOCK_TIMEOUT so a long reader delays retention by an hour
instead of stalling every query queued behind the DROP.
"""

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import OperationalError, connection, transaction

logger = logging.getLogger(__name__)

DAY = 86400
DAYS_AHEAD = 3  # partitions exist for today and the next three days
PARENT = "monitoring_sample"
DEFAULT_PARTITION = f"{PARENT}_default"
LOCK_TIMEOUT = "5s"
# Serialises partition DDL between the collector, the retention job and the migration.
_DDL_LOCK_KEY = 0x6D5F7061  # any fixed bigint of ours: "m_pa"
_ADD_PRIMARY_KEY = f"ALTER TABLE {PARENT} ADD CONSTRAINT {PARENT}_pkey PRIMARY KEY (member_id, ts)"
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True)
class Partition:
    """One day partition: its table name and its [start, end) range of Unix seconds."""

    name: str
    start: int
    end: int


def day_start(ts: float) -> int:
    """The UTC midnight at or before ts, in Unix seconds."""
    return int(ts) // DAY * DAY


def partition_name(start: int) -> str:
    return f"{PARENT}_p{datetime.fromtimestamp(start, UTC):%Y%m%d}"


def is_partitioned() -> bool:
    """True on PostgreSQL once the sample table is partitioned (migration 0005 ran)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def partitions_list() -> list[Partition]:
    """The day partitions (not the default), oldest first, with bounds as PostgreSQL has them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [PARENT],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound)
        if match:  # the DEFAULT partition's bound is "DEFAULT"
            found.append(Partition(name, int(match[1]), int(match[2])))
    return sorted(found, key=lambda p: p.start)


def _ddl_transaction(cursor) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_DDL_LOCK_KEY])
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def _partition_create(cursor, start: int) -> str:
    """Create the day partition starting at `start`, taking over the default's rows of that day.

    Built standalone, filled from the default and then attached: ATTACH checks that the default
    keeps no row of the new range, and holds only a SHARE UPDATE EXCLUSIVE lock on the parent.
    """
    name = partition_name(start)
    end = start + DAY
    cursor.execute(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= %s AND ts < %s "  # noqa: S608
        f"RETURNING member_id, ts, vals) INSERT INTO {name} (member_id, ts, vals) "
        "SELECT member_id, ts, vals FROM moved",
        [start, end],
    )
    moved = cursor.rowcount
    cursor.execute(
        f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
    )
    if moved:
        logger.info("partition %s created with %d rows from the default partition", name, moved)
    return name


def partitions_ensure(*, first: float, last: float) -> list[str]:
    """Make sure a day partition exists for every UTC day from `first` to `last` (Unix seconds).

    Idempotent and safe to run from several processes at once (an advisory lock orders them).
    Returns the names created.
    """
    wanted = range(day_start(first), day_start(last) + 1, DAY)
    existing = {p.start for p in partitions_list()}
    if all(start in existing for start in wanted):
        return []
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        _ddl_transaction(cursor)
        existing = {p.start for p in partitions_list()}  # again, now under the lock
        for start in wanted:
            if start not in existing:
                created.append(_partition_create(cursor, start))
    return created


def partitions_ensure_ahead(*, now: float | None = None, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Partitions for today and the next `days_ahead` days (collector, retention, migration)."""
    now = time.time() if now is None else now
    return partitions_ensure(first=now, last=now + days_ahead * DAY)


_ready_through: dict[str, int] = {}  # {"day": the UTC day ensure_ahead last ran for}


def partitions_ready_for_collection() -> None:
    """Once a UTC day per process, before the collector writes: today's partitions exist.

    Never raises: without a partition the row still lands in the default partition.
    """
    today = day_start(time.time())
    if _ready_through.get("day") == today:
        return
    if is_partitioned():
        try:
            partitions_ensure_ahead()
        except OperationalError as error:  # a lock timeout: the retention job tries hourly
            logger.warning("could not create sample partitions ahead: %s", error)
            return
    _ready_through["day"] = today


def default_partition_settle(*, cutoff: int) -> int:
    """Move the default partition's rows of days not wholly before `cutoff` into day partitions.

    Rows of older days stay for default_partition_trim. Returns the number of rows moved.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT ts / {DAY} * {DAY} AS day, count(*) FROM {DEFAULT_PARTITION} "  # noqa: S608
            "WHERE ts >= %s GROUP BY day",
            [day_start(cutoff)],
        )
        days = cursor.fetchall()
    moved = 0
    for start, count in sorted(days):
        partitions_ensure(first=start, last=start)
        moved += count
    return moved


def default_partition_trim(*, cutoff: int) -> int:
    """Delete the default partition's rows older than `cutoff` in one statement; returns them.

    The default is small (rows of days that had no partition), but its rows may be years
    apart, which an hour-by-hour delete would walk through one empty hour at a time.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH gone AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts < %s "  # noqa: S608
            "RETURNING member_id), per_member AS (SELECT member_id, count(*) AS n FROM gone "
            "GROUP BY member_id) UPDATE monitoring_member m SET sample_count = m.sample_count "
            "- p.n FROM per_member p WHERE m.id = p.member_id RETURNING p.n",
            [cutoff],
        )
        return sum(n for (n,) in cursor.fetchall())


def partitions_drop_expired(*, cutoff: int) -> int:
    """Drop every day partition whose rows are all older than `cutoff`; returns rows dropped.

    Each partition goes in its own transaction: its per-member counts come off
    `Member.sample_count` and the table is dropped together, or neither happens. A partition
    whose locks are not granted within LOCK_TIMEOUT is left for the next run.
    """
    dropped = 0
    for partition in partitions_list():
        if partition.end > cutoff:
            break
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                _ddl_transaction(cursor)
                # SHARE: no write can slip in between the count and the drop.
                cursor.execute(f"LOCK TABLE {partition.name} IN SHARE MODE")
                cursor.execute(
                    "UPDATE monitoring_member m SET sample_count = m.sample_count - c.n "  # noqa: S608
                    f"FROM (SELECT member_id, count(*) AS n FROM {partition.name} "
                    "GROUP BY member_id) c WHERE m.id = c.member_id RETURNING c.n"
                )
                rows = sum(n for (n,) in cursor.fetchall())
                cursor.execute(f"DROP TABLE {partition.name}")
        except OperationalError as error:
            logger.warning("sample partition %s not dropped yet: %s", partition.name, error)
            continue
        logger.info("dropped sample partition %s (%d rows)", partition.name, rows)
        dropped += rows
    return dropped


def sample_table_partition(*, days_ahead: int = DAYS_AHEAD, keep_days: int) -> None:
    """Migration: turn the plain `monitoring_sample` into the partitioned table, rows intact.

    The old table is renamed away, the partitioned one created under the old name with the same
    columns and key, day partitions made for the old rows' days (at most `keep_days` back) and
    the next `days_ahead`, the rows copied in (older or odd ones land in the default partition,
    which the retention job handles), and the old table dropped. One transaction: a failure
    leaves the plain table as it was.
    """
    old = f"{PARENT}_unpartitioned"
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {PARENT} RENAME TO {old}")
        cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {PARENT}_pkey TO {old}_pkey")
        cursor.execute(
            f"CREATE TABLE {PARENT} (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE (ts)"
        )
        cursor.execute(_ADD_PRIMARY_KEY)
        cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {PARENT} DEFAULT")
        cursor.execute(f"SELECT min(ts) FROM {old}")  # noqa: S608
        oldest = cursor.fetchone()[0]
    now = time.time()
    first = now if oldest is None else max(min(oldest, now), now - (keep_days + 1) * DAY)
    partitions_ensure(first=first, last=now + days_ahead * DAY)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PARENT} (member_id, ts, vals) "  # noqa: S608
            f"SELECT member_id, ts, vals FROM {old}"
        )
        cursor.execute(f"DROP TABLE {old}")


def sample_table_unpartition() -> None:
    """Migration, backwards: the plain table again, with every row of every partition."""
    new = f"{PARENT}_plain"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {new} (LIKE {PARENT} INCLUDING DEFAULTS)")
        cursor.execute(
            f"INSERT INTO {new} (member_id, ts, vals) SELECT member_id, ts, vals FROM {PARENT}"  # noqa: S608
        )
        cursor.execute(f"DROP TABLE {PARENT}")  # its partitions go with it
        cursor.execute(f"ALTER TABLE {new} RENAME TO {PARENT}")
        cursor.execute(_ADD_PRIMARY_KEY)
