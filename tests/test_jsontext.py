"""The JSON text of the rounds' hot paths (orjson, the standard library where orjson
refuses): the same values as the standard library's, through real PostgreSQL too."""

import json
import math
import random
import struct
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import JSONField

from clusters.models import Cluster
from etcdmonitor_site import jsontext, rawsql
from monitoring import metrics
from monitoring.models import Member

SCRAPE = (
    Path(__file__).resolve().parent.parent / "monitoring/tests/data/etcd-3.4.23-metrics.txt"
).read_text()


def _snapshot_fields() -> list:
    """What a collection writes for a member of the real 3.4.23 scrape, twice (a window)."""
    samples = metrics.parse_metrics(SCRAPE, only=metrics.SOURCE_NAMES, sparse=metrics.SPARSE_NAMES)
    first = metrics.derive_snapshot(samples, timestamp=1000.0, extra={"raft_term": 2.0})
    second = metrics.derive_snapshot(samples, timestamp=1015.0, previous=first.state)
    return [
        second.state,
        {**second.values, **second.fallback},
        second.grpc_methods,
        second.basis,
        metrics.unexported_sources(samples),
    ]


ODD_VALUES = [
    {},
    [],
    "",
    0,
    -0.0,
    0.1,
    1e-300,
    5e-324,
    1.7976931348623157e308,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    True,
    None,
    {'quote"back\\slash\nnew': ["tab\t", "\u00e9t\u00e9", "\u2028", "\x00\x1f", "\U0001f600"]},
    {"nested": {"deep": [[[{"a": [1, 2.5, None, False]}]]]}},
]
# What orjson refuses to write and the standard library writes: the fallback takes them.
REFUSED = [2**70, -(2**70), {1: "int key"}, {"big": [10**30 + 1]}, {"k": 2**64 + 1}]


@pytest.mark.parametrize("value", [*_snapshot_fields(), *ODD_VALUES])
def test_dumps_and_loads_give_the_standard_librarys_values(value):
    text = jsontext.dumps(value)

    assert json.loads(text) == json.loads(json.dumps(value))
    assert jsontext.loads(text) == json.loads(json.dumps(value))
    assert jsontext.loads(json.dumps(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", REFUSED)
def test_what_orjson_refuses_to_write_the_standard_library_writes(value):
    assert jsontext.dumps(value) == json.dumps(value)


def test_an_integer_beyond_64_bits_that_came_from_a_float_reads_as_the_same_number():
    # The one reading difference (why only the collector's and the probe's JSON use it):
    # orjson gives the nearest float, the standard library the int.
    counts = [int(1e25), -int(2.0**70), int(1.8446744073709552e19) * 2]
    text = json.dumps(counts)

    assert jsontext.loads(text) == counts == json.loads(text)
    assert jsontext.loads("[100000000000000000000000000001]") != [10**29 + 1]


def test_floats_read_as_the_standard_library_reads_them():
    rng = random.Random(19)  # noqa: S311 - test data, seeded to repeat
    texts = [
        repr(struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]) for _ in range(20000)
    ]
    texts = [t for t in texts if t not in ("nan", "inf", "-inf")]
    texts += [
        f"{rng.randint(1, 10**17)}.{rng.randint(0, 10**17)}e{rng.randint(-300, 290)}"
        for _ in range(20000)
    ]
    for text in texts:
        assert jsontext.loads(text) == float(text), text


def test_a_non_finite_float_is_written_as_null_which_postgresql_accepts():
    # The standard library writes NaN / Infinity, which PostgreSQL's JSON refuses.
    assert (
        jsontext.dumps({"a": math.nan, "b": [math.inf, -math.inf]}) == '{"a":null,"b":[null,null]}'
    )


def test_what_orjson_refuses_to_read_the_standard_library_reads():
    assert jsontext.loads("1e400") == math.inf == json.loads("1e400")
    assert math.isnan(jsontext.loads("[NaN]")[0])


def test_text_that_is_not_json_raises_as_the_standard_librarys_does():
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads("{not json")
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads("NaN-ish")


@pytest.mark.django_db
@pytest.mark.parametrize("value", [*_snapshot_fields(), *ODD_VALUES[:14], {"f": [1e20, -1e300]}])
def test_values_round_trip_through_postgresql_jsonb(value):
    # PostgreSQL gives 1e20 back as 100000000000000000000: the same number either way.
    with rawsql.bound_cursor() as cursor:
        cursor.execute("SELECT %s::jsonb::text", [jsontext.dumps(value)])
        (stored,) = cursor.fetchone()

    assert jsontext.loads(stored) == json.loads(json.dumps(value))
    assert connection.vendor == "postgresql"


@pytest.mark.django_db
def test_hand_written_reads_parse_json_fields_through_it_as_django_would(etcd_cluster):
    from monitoring import selectors, services

    field = Member._meta.get_field("scrape_state")
    assert jsontext.from_db_value in rawsql._field_converters(field)
    assert field.from_db_value not in rawsql._field_converters(field)
    # User content (a record's labels) and a field with its own decoder keep Django's.
    labels = Cluster._meta.get_field("labels")
    assert rawsql._field_converters(labels) == labels.get_db_converters(connection)
    decoded = JSONField(decoder=json.JSONDecoder)
    assert rawsql._field_converters(decoded) == decoded.get_db_converters(connection)
    # Django's converter returns text that is not JSON as it is; so does this one.
    assert jsontext.from_db_value("{not json", None, connection) == "{not json"
    assert jsontext.from_db_value(None, None, connection) is None

    services.collect_cluster()
    cluster = selectors.cluster_row()
    (read, *_) = selectors.members_to_scrape(cluster)
    orm = Member.objects.get(pk=read.pk)
    assert read.scrape_state == orm.scrape_state and read.scrape_state["histograms"]
    assert read.quantile_basis == orm.quantile_basis
    assert read.client_urls == orm.client_urls and read.unexported_metrics == orm.unexported_metrics
