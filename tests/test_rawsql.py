"""Hand-written SQL helpers against the real PostgreSQL."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models.signals import post_init, pre_init
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


def _member_row(fields: list[str]) -> tuple:
    from monitoring.models import Member

    select = rawsql.select_list(Member, "m", fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {select} FROM {rawsql.table(Member)} m")  # noqa: S608
        return cursor.fetchone()


@pytest.fixture
def stored_member():
    from monitoring.models import Member, MonitoredCluster

    cluster = MonitoredCluster.objects.create(name="raw", endpoints=["http://127.0.0.1:2379"])
    return Member.objects.create(
        cluster=cluster,
        member_id="11",
        name="m1",
        client_urls=["http://127.0.0.1:2379"],
        latest={"etcd_server_quota_backend_bytes": 2.0**31},
        last_seen=datetime(2026, 12, 7, 7, 0, tzinfo=UTC),
    )


@pytest.mark.django_db
def test_an_instance_made_without_init_is_what_the_orm_loads(stored_member):
    from monitoring.models import Member

    fields = ["id", "cluster", "member_id", "name", "client_urls", "last_seen"]
    made = rawsql.instance(Member, fields, _member_row(fields))
    loaded = Member.objects.only(*fields).get(pk=stored_member.pk)

    assert type(made) is Member
    # The plain path ran: the fields qualify and no init signal has a receiver.
    assert rawsql._loader(Member, tuple(fields), connection.vendor)[2]
    assert not pre_init.receivers and not post_init.receivers
    assert {k: v for k, v in made.__dict__.items() if k != "_state"} == {
        k: v for k, v in loaded.__dict__.items() if k != "_state"
    }
    assert (made._state.adding, made._state.db) == (False, "default")
    assert made.get_deferred_fields() == loaded.get_deferred_fields()
    # A field left out loads when touched; a foreign key loads its object; a save updates.
    assert made.latest == {"etcd_server_quota_backend_bytes": 2.0**31}
    assert made.cluster.name == "raw"
    made.name = "renamed"
    made.save(update_fields=["name"])
    assert Member.objects.get(pk=stored_member.pk).name == "renamed"


@pytest.mark.django_db
def test_an_instance_goes_through_init_when_a_receiver_listens(stored_member):
    from monitoring.models import Member

    seen = []

    def heard(sender, instance, **kwargs):
        seen.append(instance.pk)

    fields = ["id", "cluster", "member_id"]
    post_init.connect(heard, sender=Member)
    try:
        made = rawsql.instance(Member, fields, _member_row(fields))
    finally:
        post_init.disconnect(heard, sender=Member)

    assert seen == [stored_member.pk]
    assert made.member_id == "11"


def test_a_field_whose_descriptor_converts_on_assignment_keeps_init():
    from types import SimpleNamespace

    from django.db.models.query_utils import DeferredAttribute

    class Converting(DeferredAttribute):
        def __set__(self, instance, value):
            instance.__dict__[self.field.attname] = str(value)

    def model(descriptor, *, abstract=False):
        return type("M", (), {"_meta": SimpleNamespace(abstract=abstract), "x": descriptor})

    field = SimpleNamespace(attname="x")
    assert rawsql._plain(model(DeferredAttribute(field)), ["x"])
    assert not rawsql._plain(model(Converting(field)), ["x"])
    assert not rawsql._plain(model(property(lambda self: 1)), ["x"])
    assert not rawsql._plain(model(DeferredAttribute(field), abstract=True), ["x"])
