"""Timestamps read through our PostgreSQL backend (`etcdmonitor_site.pgbackend`): psycopg's C
loader in place of Django's Python one, with exactly the values and time zone Django's gave."""

import datetime

import psycopg
import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from etcdmonitor_site.pgbackend.base import _C_TIMESTAMPTZ
from monitoring.models import MonitoredCluster

pytestmark = pytest.mark.django_db

TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid

# Written as text in several zones: the edges of what a timestamptz holds in Python, a leap
# day, whole seconds and microseconds.
VALUES = [
    "0001-01-01 00:00:00+00",
    "1970-01-01 00:00:00+00",
    "2024-02-29 23:59:59.999999+00",
    "2026-12-08 02:17:29.419597+05:30",
    "2026-03-29 01:30:00-07",
    "9999-12-31 23:59:59.999999+00",
]
SQL = "SELECT v::timestamptz FROM unnest(%s::text[]) v"


def _read(cursor) -> list[datetime.datetime]:
    cursor.execute(SQL, [VALUES])
    return [row[0] for row in cursor.fetchall()]


def test_the_connection_reads_timestamps_in_c_with_djangos_values():
    if _C_TIMESTAMPTZ is None:
        pytest.skip("psycopg without its C module: Django's loader stays")
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
        assert type(loader(TIMESTAMPTZ, cursor.cursor)) is _C_TIMESTAMPTZ
        fast = _read(cursor)
    with connection.cursor() as cursor:
        # What Django registers on its own: its Python loader, on this cursor alone.
        register_tzloader(connection.timezone, cursor.cursor)
        djangos = _read(cursor)
    assert fast == djangos
    assert [value.tzinfo for value in fast] == [datetime.UTC] * len(VALUES)
    assert fast[3] == datetime.datetime(2026, 12, 7, 20, 47, 29, 419597, tzinfo=datetime.UTC)


def test_models_round_trip_their_datetimes():
    written = datetime.datetime(2026, 12, 8, 2, 17, 29, 419597, tzinfo=datetime.UTC)
    cluster = MonitoredCluster.objects.create(name="tz-probe", health_at=written)
    read = MonitoredCluster.objects.get(pk=cluster.pk)
    assert read.health_at == written and read.health_at.tzinfo is datetime.UTC
    assert read.last_cycle_at is None  # NULL stays None
