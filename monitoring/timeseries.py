"""SQL for the values arrays, per database vendor (PostgreSQL `real[]`, SQLite JSON text).

Aggregation always runs in the database: Python never loads raw rows to average them.
"""

import threading

from django.db import connection

from monitoring.models import MetricName

# Downsampling tiers of /api/range (span limit in seconds → bucket seconds); None = raw rows.
TIERS: tuple[tuple[int, int | None], ...] = (
    (30 * 60, None),
    (2 * 3600, 30),
    (12 * 3600, 120),
    (48 * 3600, 300),
)
LONG_TIER = 600
# Tiers kept pre-aggregated in SampleRollup; the shorter ones are cheap to average on the fly.
ROLLUP_TIERS = (300, 600)

_slots: dict[str, int] = {}
_slots_lock = threading.Lock()


def bucket_for_span(span: int) -> int | None:
    """The reference's tier table: raw ≤ 30 min, 30 s ≤ 2 h, 120 s ≤ 12 h, 300 s ≤ 48 h, 600 s."""
    for limit, bucket in TIERS:
        if span <= limit:
            return bucket
    return LONG_TIER


def slots_for(names, *, create: bool = False) -> dict[str, int]:
    """{name: slot} for known names (registering unknown ones first when `create`)."""
    names = list(names)
    missing = [n for n in names if n not in _slots]
    if missing:
        with _slots_lock:
            found = dict(MetricName.objects.filter(name__in=missing).values_list("name", "slot"))
            if create and len(found) < len(missing):
                MetricName.objects.bulk_create(
                    [MetricName(name=n) for n in missing if n not in found],
                    ignore_conflicts=True,  # another process may register the same name
                )
                found = dict(
                    MetricName.objects.filter(name__in=missing).values_list("name", "slot")
                )
            _slots.update(found)
    return {n: _slots[n] for n in names if n in _slots}


def max_slot() -> int:
    return MetricName.objects.order_by("-slot").values_list("slot", flat=True).first() or 0


def to_array(values: dict[str, float]) -> list[float | None]:
    """The values array of one snapshot: index slot-1, None where a key is absent."""
    slots = slots_for(values, create=True)
    array: list[float | None] = [None] * (max(slots.values()) if slots else 0)
    for name, value in values.items():
        array[slots[name] - 1] = value
    return array


def slot_expr(slot: int, column: str = "vals") -> str:
    """SQL for one element (slot numbers are ints from our registry, never user text)."""
    slot = int(slot)
    if connection.vendor == "postgresql":
        return f"{column}[{slot}]"
    return f"json_extract({column}, '$[{slot - 1}]')"


def array_of(expressions: list[str]) -> str:
    """SQL building a values array from per-slot expressions."""
    if connection.vendor == "postgresql":
        return f"ARRAY[{', '.join(expressions)}]::real[]"
    # json_array() takes at most 127 arguments on older SQLite; text concatenation has no limit
    # and SQLite prints REAL values as valid JSON numbers.
    parts = " || ',' || ".join(f"coalesce({e}, 'null')" for e in expressions)
    return f"'[' || {parts} || ']'" if expressions else "'[]'"
