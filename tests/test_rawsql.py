"""Hand-written SQL helpers against the real PostgreSQL."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from psycopg.types.numeric import Int8

from etcdmonitor_site import rawsql


@pytest.mark.django_db
def test_an_array_literal_reads_back_as_the_values_it_was_made_of():
    at = datetime(2026, 12, 7, 6, 59, 22, 311000, tzinfo=UTC)
    columns = {
        "bigint": [Int8(1796626770), 2**40, None, -3],
        "double precision": [0.25, float("inf"), -1e-7, None],
        "text": ['say "hi"', "back\\slash", "{braces}, comma", "", None, "NULL"],
        "boolean": [True, False, None],
        "timestamptz": [at, None],
    }
    with rawsql.bound_cursor() as cursor:
        for sql_type, values in columns.items():
            cursor.execute(f"SELECT %s::{sql_type}[]", [rawsql.array_literal(values)])
            assert cursor.fetchone()[0] == values, sql_type
    assert connection.vendor == "postgresql"
