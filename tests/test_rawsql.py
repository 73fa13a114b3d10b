"""`etcdmonitor_site.rawsql.bound_cursor`: parameters sent apart from the SQL, on the real
PostgreSQL the suite runs against. What it must keep from Django's cursor: values arrive
exactly (quotes, backslashes, placeholders' own characters, JSON, arrays of NULLs), errors are
Django's, and no statement is left prepared on the server connection."""

import json

import pytest
from django.db import DatabaseError, connection
from psycopg.types.json import Jsonb

from etcdmonitor_site import rawsql

pytestmark = pytest.mark.django_db

AWKWARD = ["it's", 'say "hi"', "back\\slash", "%s and %%", "ünïcode ✓", "", "a\nb"]


def test_values_arrive_exactly_as_sent():
    with rawsql.bound_cursor() as cursor:
        cursor.execute(
            "SELECT %s::text[], %s::jsonb, %s::timestamptz[], %s::bigint[]",
            [AWKWARD, Jsonb({"k": AWKWARD, "n": 2**53}), [None, None], [1, 2**40]],
        )
        texts, document, moments, numbers = cursor.fetchone()
    assert texts == AWKWARD
    # Django registers a loader that leaves jsonb as text (its JSONField decodes it).
    assert json.loads(document) == {"k": AWKWARD, "n": 2**53}
    assert moments == [None, None]
    assert numbers == [1, 2**40]


def test_many_runs_leave_no_prepared_statement():
    for run in range(12):  # psycopg would prepare after five
        with rawsql.bound_cursor() as cursor:
            cursor.execute("SELECT %s::int + 1", [run])
            assert cursor.fetchone() == (run + 1,)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone() == (0,)


def test_errors_are_djangos():
    with pytest.raises(DatabaseError), rawsql.bound_cursor() as cursor:
        cursor.execute("SELECT %s::int", ["not a number"])


def test_rows_in_reads_many_keys_at_once():
    rows = rawsql.rows_in(
        "SELECT v FROM (VALUES ('a'), ('b'), ('it''s')) AS t(v) WHERE t.v = %s ORDER BY v",
        "t.v = %s",
        ["it's", "b", "zzz"],
    )
    assert rows == [("b",), ("it's",)]
