"""The sample table's daily partitions on PostgreSQL, and SQLite's unpartitioned retention."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count

from monitoring import partitions, selectors, services, timeseries
from monitoring.models import Member, Sample
from monitoring.partitions import DAY, day_start, partition_name
from tests.servers import clean_env

pytestmark = pytest.mark.usefixtures("fresh_slot_cache")
ROOT = Path(__file__).resolve().parents[2]


def _row(sql: str, params=()) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _scalar(sql: str, params=()):
    return _row(sql, params)[0]


def _attached() -> set[str]:
    """Names of the partitions attached to monitoring_sample (pg_inherits), default included."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'monitoring_sample'::regclass"
        )
        return {name for (name,) in cursor.fetchall()}


def _table_exists(name: str) -> bool:
    return _scalar("SELECT count(*) FROM pg_class WHERE relname = %s", [name]) == 1


def _partition_of(member: Member, ts: int) -> str:
    return _scalar(
        "SELECT tableoid::regclass::text FROM monitoring_sample WHERE member_id = %s AND ts = %s",
        [member.pk, ts],
    )


def _days_ahead(now: float) -> set[str]:
    return {partition_name(day_start(now) + k * DAY) for k in range(partitions.DAYS_AHEAD + 1)}


def _counts_are_true() -> bool:
    real = dict(Sample.objects.values_list("member_id").annotate(n=Count("*")))
    return all(m.sample_count == real.get(m.pk, 0) for m in Member.objects.all())


@pytest.fixture
def member(etcd_cluster, db):
    """A real member of the session cluster after one collection cycle."""
    services.collect_cluster()
    return Member.objects.get(is_default=True)


@pytest.mark.django_db
def test_migrate_leaves_a_partitioned_table_with_today_and_the_days_ahead():
    assert partitions.is_partitioned()
    assert _scalar("SELECT relkind FROM pg_class WHERE relname = 'monitoring_sample'") == "p"
    attached = _attached()
    assert "monitoring_sample_default" in attached
    # The test database was migrated when the session began: maybe before midnight UTC.
    now = time.time()
    assert _days_ahead(now) <= attached or _days_ahead(now - DAY) <= attached


@pytest.mark.django_db
def test_retention_recreates_the_partitions_ahead():
    now = time.time()
    last_ahead = partition_name(day_start(now) + partitions.DAYS_AHEAD * DAY)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {last_ahead}")
    assert last_ahead not in _attached()

    services.metrics_purge(days=7, now=now)

    assert _days_ahead(now) <= _attached()


@pytest.mark.django_db
def test_collected_samples_land_in_their_days_partition(member):
    sample = Sample.objects.filter(member=member).get()

    assert _partition_of(member, sample.ts) == partition_name(day_start(sample.ts))
    assert _scalar("SELECT count(*) FROM monitoring_sample_default") == 0


@pytest.mark.django_db
def test_retention_drops_old_days_whole_and_trims_the_day_across_the_cutoff(member):
    # Noon: the cutoff's day then holds rows on both sides of it, whatever the clock says.
    now = day_start(time.time()) + 12 * 3600
    cutoff = now - 7 * 86400
    first_day = day_start(now - 10 * 86400)
    partitions.partitions_ensure(first=first_day, last=cutoff)
    old_days = [partition_name(first_day + k * DAY) for k in range(3)]
    straddling = partition_name(day_start(cutoff))
    assert set(old_days) | {straddling} <= _attached()
    others = Member.objects.exclude(pk=member.pk).order_by("pk")
    rows = [
        Sample(member_id=m.pk, ts=ts, vals=[1.0])
        for m in [member, *others]
        for ts in range(first_day, cutoff + 3600, 900)
    ]
    # Rows of days without a partition go to the default one: one too old, one to keep.
    kept_in_default = day_start(now - 2 * 86400) + 60
    rows += [Sample(member=member, ts=1_000_000_200, vals=[2.0])]
    rows += [Sample(member=member, ts=kept_in_default, vals=[3.0])]
    Sample.objects.bulk_create(rows)
    assert _partition_of(member, kept_in_default) == "monitoring_sample_default"
    for m in Member.objects.all():
        Member.objects.filter(pk=m.pk).update(sample_count=Sample.objects.filter(member=m).count())
    before = Sample.objects.count()
    expected_gone = Sample.objects.filter(ts__lt=cutoff).count()

    deleted = services.metrics_purge(days=7, now=now)

    assert deleted == expected_gone == before - Sample.objects.count()
    assert not Sample.objects.filter(ts__lt=cutoff).exists()
    for name in old_days:
        assert name not in _attached() and not _table_exists(name), f"{name} dropped whole"
    assert straddling in _attached(), "the day across the cutoff is trimmed, not dropped"
    assert Sample.objects.filter(ts__gte=cutoff, ts__lt=day_start(cutoff) + DAY).exists()
    assert _partition_of(member, kept_in_default) == partition_name(day_start(kept_in_default))
    assert _scalar("SELECT count(*) FROM monitoring_sample_default") == 0
    assert _counts_are_true()


@pytest.mark.django_db
def test_collection_and_range_answer_across_midnight(member, api):
    midnight = day_start(time.time())
    partitions.partitions_ensure(first=midnight - DAY, last=midnight - DAY)
    member.refresh_from_db()
    count_before = member.sample_count
    stamps = [midnight - 15, midnight, midnight + 15]
    for k, ts in enumerate(stamps):
        values = timeseries.to_array({"collector_up": 1.0, "process_open_fds": float(k)})
        services._write_cycle(member, ts, values, {"collector_up": True})

    assert [_partition_of(member, ts) for ts in stamps] == [
        partition_name(midnight - DAY),
        partition_name(midnight),
        partition_name(midnight),
    ]
    member.refresh_from_db()
    assert member.sample_count == count_before + 3
    body = api.get(
        f"/api/range?metrics=process_open_fds&member_id={member.member_id}"
        f"&start={midnight - 60}&end={midnight + 60}"
    ).json()
    assert body["metrics"]["process_open_fds"] == [
        {"ts": ts, "value": k} for k, ts in enumerate(stamps)
    ]


@pytest.mark.django_db
def test_range_reads_touch_only_the_partitions_of_their_window(member):
    now = int(time.time())
    # Just after midnight UTC the window reaches into a day older than this database's first
    # partition; give it one, since pruning (not creation) is what this test is about.
    partitions.partitions_ensure(first=now - 3600, last=now)
    slots = list(timeseries.slots_for(["collector_up"]).values())
    sql, params = selectors._series_query(
        member=member, slots=slots, start=now - 3600, end=now, bucket=None
    )
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(line for (line,) in cursor.fetchall())

    scanned = {name for name in _attached() if name in plan}
    wanted = {partition_name(day_start(now - 3600)), partition_name(day_start(now))}
    assert scanned == wanted, plan


@pytest.mark.django_db(transaction=True)
def test_migration_partitions_a_populated_table_with_rows_intact():
    call_command("migrate", "monitoring", "0004", verbosity=0)
    assert _scalar("SELECT relkind FROM pg_class WHERE relname = 'monitoring_sample'") == "r"
    now = int(time.time())
    checksum = (
        "SELECT count(*), md5(string_agg(member_id || ':' || ts || ':' || vals::text, ',' "
        "ORDER BY member_id, ts)) FROM monitoring_sample"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO monitoring_sample (member_id, ts, vals) SELECT m, t, ARRAY[t %% 97, m]"
            "::real[] FROM generate_series(1, 3) m, generate_series(%s::bigint, %s, 1800) t",
            [now - 5 * 86400, now + 3600],
        )
    before = _row(checksum)

    call_command("migrate", "monitoring", verbosity=0)

    assert _row(checksum) == before and before[0] == 3 * (5 * 48 + 3)
    assert _scalar("SELECT relkind FROM pg_class WHERE relname = 'monitoring_sample'") == "p"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT tableoid::regclass::text, ts / 86400 * 86400 FROM monitoring_sample"
        )
        placed = cursor.fetchall()
    # Five days back and today, and tomorrow too when the last row's hour crosses midnight UTC.
    days = {t // 86400 for t in range(now - 5 * 86400, now + 3600 + 1, 1800)}
    assert len(placed) == len(days) >= 6
    assert all(name == partition_name(start) for name, start in placed)
    assert _days_ahead(now) <= _attached()


def test_sqlite_keeps_the_unpartitioned_table_and_the_batched_delete(tmp_path):
    script = (
        "import json, time\n"
        "from django.db import connection\n"
        "from monitoring import services\n"
        "from monitoring.models import Member, Sample\n"
        "cluster = services.cluster_ensure()\n"
        "member = Member.objects.create(cluster=cluster, member_id='1')\n"
        "now = int(time.time())\n"
        "Sample.objects.bulk_create([Sample(member=member, ts=now - 8 * 86400 + i * 600, "
        "vals=[1.0]) for i in range(300)])\n"
        "Member.objects.filter(pk=member.pk).update(sample_count=300)\n"
        "deleted = services.metrics_purge(days=7, now=now)\n"
        "member.refresh_from_db()\n"
        'tables = [r[0] for r in connection.cursor().execute("SELECT name FROM sqlite_master "\n'
        "    \"WHERE type = 'table' AND name LIKE 'monitoring_sample%'\")]\n"
        "print(json.dumps({'deleted': deleted, 'left': Sample.objects.count(),\n"
        "    'sample_count': member.sample_count, 'tables': sorted(tables)}))\n"
    )
    env = clean_env(DATA_DIR=str(tmp_path))
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    out = subprocess.check_output([*manage, "shell", "-c", script], cwd=ROOT, env=env, text=True)

    result = json.loads(out.strip().splitlines()[-1])
    # 8 days back at 600 s: 300 rows reach 8d - 50h, so those older than 7 d go (145 of them).
    expected = sum(1 for i in range(300) if -8 * 86400 + i * 600 < -7 * 86400)
    assert result == {
        "deleted": expected,
        "left": 300 - expected,
        "sample_count": 300 - expected,
        "tables": ["monitoring_sample", "monitoring_samplerollup"],
    }
