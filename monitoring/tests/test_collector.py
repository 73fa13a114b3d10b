"""The collector against real etcd clusters: discovery, faults, lock, rollups, retention."""

import time

import httpx
import pytest
from django.core.management import call_command

from etcdgateway import cluster_gateway
from monitoring import services, timeseries
from monitoring.models import Member, MonitoredCluster, Sample, SampleRollup
from monitoring.tests.expected_keys import stored_key_names

pytestmark = pytest.mark.usefixtures("fresh_slot_cache")


def _values(sample: Sample) -> dict[str, float]:
    slots = {slot: name for name, slot in timeseries.slots_for(stored_key_names()).items()}
    return {slots[i + 1]: v for i, v in enumerate(sample.vals) if v is not None and i + 1 in slots}


def _wait_for_peer_rtt(urls, timeout=20.0):
    """etcd's peer prober records its first round trip a few seconds after start."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            pages = [http.get(f"{url}/metrics").text for url in urls]
            if all("etcd_network_peer_round_trip_time_seconds_count" in p for p in pages):
                return
            time.sleep(0.5)
    raise AssertionError("peer RTT histogram never appeared")


def _two_cycles(kv_prefix=None):
    first = services.collect_cluster()
    if kv_prefix:
        for i in range(20):
            cluster_gateway().kv(lambda c, i=i: c.put(f"{kv_prefix}k{i}", "v"))
    # Sample timestamps are whole seconds: the next cycle must start in another second.
    time.sleep(1.1)
    second = services.collect_cluster()
    return first, second


@pytest.mark.django_db
def test_collect_discovers_members_with_decimal_ids_and_one_default(
    etcd_cluster, etcd_server_version
):
    report = services.collect_cluster()

    members = list(Member.objects.all())
    assert len(members) == 3 and len(report.members) == 3
    listed = {m.id_str: m for m in cluster_gateway().members()}
    assert {m.member_id for m in members} == set(listed)
    assert all(m.member_id.isdigit() for m in members)
    assert [m.is_default for m in members].count(True) == 1
    default = next(m for m in members if m.is_default)
    assert default.scrape_url == etcd_cluster.client_urls[0]
    assert [m.is_leader for m in members].count(True) == 1
    assert all(m.collector_up and m.etcd_version == etcd_server_version for m in members)


@pytest.mark.django_db
def test_a_member_list_that_did_not_change_writes_only_the_sync_date(etcd_cluster):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monitoring import selectors

    services.collect_cluster()
    cluster = MonitoredCluster.objects.get(name="default")
    current = selectors.members_to_scrape(cluster)
    before = cluster.last_member_sync

    with CaptureQueriesContext(connection) as captured:
        members = services.members_sync(cluster=cluster, force=True, current=current)

    assert members is current  # the stored members, not a reload
    writes = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith("SELECT")]
    assert len(writes) == 1 and "monitoring_monitoredcluster" in writes[0], writes
    cluster.refresh_from_db()
    assert cluster.last_member_sync > before
    # A stored member that differs from the list is a change: the full sync rewrites it.
    Member.objects.filter(pk=current[0].pk).update(name="renamed-meanwhile")
    changed = services.members_sync(cluster=cluster, force=True)
    assert {m.name for m in changed} == {m.name for m in current}


@pytest.mark.django_db
def test_a_members_cycle_is_written_with_its_values_apart_from_the_statement(etcd_cluster):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    services.collect_cluster()
    with CaptureQueriesContext(connection) as captured:
        report = services.collect_cluster()

    assert all(entry["up"] for entry in report.members)
    writes = [
        q["sql"] for q in captured.captured_queries if "INSERT INTO monitoring_sample " in q["sql"]
    ]
    assert len(writes) == len(report.members)
    # Bound by the server: psycopg did not quote the member's JSON state into the text.
    assert all("$1" in sql and "etcd_server_has_leader" not in sql for sql in writes)
    stored = Member.objects.filter(collector_up=True).values_list("latest", flat=True)
    assert len(stored) == len(report.members) and all(
        latest["collector_up"] == 1 for latest in stored
    )


@pytest.mark.django_db
def test_every_stored_metric_is_present_after_two_cycles(etcd_cluster, kv_prefix):
    _wait_for_peer_rtt(etcd_cluster.client_urls)
    _, second = _two_cycles(kv_prefix)

    assert all(entry["up"] for entry in second.members)
    leader = Member.objects.get(is_leader=True)
    sample = Sample.objects.filter(member=leader).order_by("-ts").first()
    stored = _values(sample)
    # Quantiles exist only for histograms with observations in the interval; failure counters
    # only once a failure happened. Everything else must be there.
    missing = {
        key
        for key in set(stored_key_names()) - set(stored)
        if "failures_total" not in key and not key.endswith(("_p50", "_p90", "_p99"))
    }
    assert missing == set()
    for prefix in ("etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration"):
        assert f"{prefix}_seconds_p99".replace("_seconds_seconds", "_seconds") in stored
    assert stored["etcd_network_active_peers"] == 2
    assert stored["etcd_mvcc_put_total_rate"] > 0
    now_index = cluster_gateway().client_for(leader.scrape_url).status().raft_index
    assert 0 < leader.latest["raft_index"] <= now_index
    assert isinstance(leader.latest["etcd_mvcc_current_revision"], int)
    assert leader.grpc_methods and {"service", "method", "count"} <= set(leader.grpc_methods[0])


@pytest.mark.django_db
def test_lease_count_is_collected_once_per_cycle_for_every_member(etcd_cluster):
    lease = cluster_gateway().kv(lambda c: c.lease(60))
    try:
        services.collect_cluster()
        counts = {m.latest["etcd_lease_count"] for m in Member.objects.all()}
    finally:
        cluster_gateway().kv(lambda c: c.revoke_lease(lease.id))

    assert len(counts) == 1 and counts.pop() >= 1


@pytest.mark.django_db
def test_a_second_collection_is_skipped_while_the_lock_is_held(etcd_cluster):
    cluster = services.cluster_ensure()
    token = services.cluster_lock_acquire(cluster=cluster)
    try:
        report = services.collect_cluster(cluster=cluster)
    finally:
        services.cluster_lock_release(cluster=cluster, token=token)

    assert report.skipped and Sample.objects.count() == 0
    assert services.cluster_lock_acquire(cluster=cluster) is not None


@pytest.mark.django_db
def test_an_expired_lock_is_taken_over(etcd_cluster):
    cluster = services.cluster_ensure()
    assert services.cluster_lock_acquire(cluster=cluster, seconds=-1) is not None

    assert services.cluster_lock_acquire(cluster=cluster) is not None


@pytest.mark.django_db
def test_a_killed_member_is_down_while_the_others_keep_their_cadence(etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    services.collect_cluster()
    victim = cluster.members[2]
    cluster.kill_member(victim)
    time.sleep(1.1)

    report = services.collect_cluster()

    by_url = {m.scrape_url: m for m in Member.objects.all()}
    dead = by_url[victim.client_url]
    assert dead.collector_up is False and dead.last_scrape_error
    assert dead.latest["collector_up"] == 0
    alive = [m for url, m in by_url.items() if url != victim.client_url]
    assert all(m.collector_up for m in alive)
    assert all(Sample.objects.filter(member=m, ts=report.ts).exists() for m in alive)
    assert _values(Sample.objects.get(member=dead, ts=report.ts)) == {"collector_up": 0.0}

    cluster.start_member(victim)
    cluster.wait_healthy([victim])
    time.sleep(1.1)
    services.collect_cluster()
    dead.refresh_from_db()
    assert dead.collector_up is True and dead.last_scrape_error == ""


@pytest.mark.django_db
def test_a_hung_member_never_delays_storing_the_others(etcd_cluster_factory, monkeypatch):
    monkeypatch.setattr(services, "SCRAPE_TIMEOUT", 3.0)
    cluster = etcd_cluster_factory()
    services.collect_cluster()
    victim = cluster.members[0]
    cluster.pause_member(victim)
    try:
        time.sleep(1.1)
        started = time.monotonic()
        stored_at = {}
        original = services._write_cycle

        def timed_write(member, ts, array, fields):
            original(member, ts, array, fields)
            stored_at[member.scrape_url] = time.monotonic() - started

        monkeypatch.setattr(services, "_write_cycle", timed_write)
        services.collect_cluster()
    finally:
        cluster.resume_member(victim)

    others = [t for url, t in stored_at.items() if url != victim.client_url]
    assert len(others) == 2 and max(others) < stored_at[victim.client_url]
    hung = Member.objects.get(scrape_url=victim.client_url)
    assert hung.collector_up is False and "timed out" in hung.last_scrape_error


@pytest.mark.django_db
def test_unreachable_cluster_stores_nothing_and_never_raises(etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    cluster.stop()

    report = services.collect_cluster()

    assert report.members == [] and Member.objects.count() == 0
    assert MonitoredCluster.objects.get().last_error.startswith("etcd unavailable")


@pytest.mark.django_db
def test_rollups_average_closed_buckets_in_the_database(etcd_cluster):
    services.collect_cluster()
    member = Member.objects.first()
    slot = timeseries.slots_for(["collector_up", "process_open_fds"])
    width = max(slot.values())
    base = 1_000_000_200  # a multiple of 600
    rows = []
    for i, fds in enumerate([10.0, 20.0, 30.0, 40.0]):
        vals = [None] * width
        vals[slot["process_open_fds"] - 1] = fds
        rows.append(Sample(member=member, ts=base + i * 150, vals=vals))
    Sample.objects.bulk_create(rows)
    cluster = MonitoredCluster.objects.get()
    cluster.rollup_state = {"300": base, "600": base}

    services.rollups_refresh(cluster=cluster, now=base + 1200)

    got = {
        (r.tier, r.bucket): r.vals[slot["process_open_fds"] - 1]
        for r in SampleRollup.objects.filter(member=member)
    }
    assert got == {(300, base): 15.0, (300, base + 300): 35.0, (600, base): 25.0}
    assert cluster.rollup_state == {"300": base + 1200, "600": base + 1200}


@pytest.mark.django_db
def test_retention_deletes_old_samples_in_batches_and_keeps_recent(etcd_cluster):
    services.collect_cluster()
    member = Member.objects.first()
    now = int(time.time())
    old = [Sample(member=member, ts=now - 8 * 86400 + i * 30, vals=[1.0]) for i in range(500)]
    Sample.objects.bulk_create(old)
    Member.objects.filter(pk=member.pk).update(sample_count=501)

    deleted = services.metrics_purge(days=7, now=now)

    assert deleted == 500
    assert Sample.objects.filter(member=member).count() == 1
    member.refresh_from_db()
    assert member.sample_count == 1


@pytest.mark.django_db
def test_collect_once_prints_one_line_per_member(etcd_cluster, capsys):
    call_command("collect_once")

    out = capsys.readouterr().out.splitlines()
    assert sum(": up" in line for line in out) == 3
    assert out[-1].startswith("cycle took")


@pytest.mark.django_db(transaction=True)
def test_beat_task_collects_through_a_real_celery_worker_and_redis(etcd_cluster, redis_url):
    from celery.contrib.testing.worker import start_worker

    from etcdmonitor_site import celery_app
    from monitoring.tasks import collect_metrics

    celery_app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=60):
            summary = collect_metrics.apply_async(expires=85).get(timeout=90)
    finally:
        celery_app.conf.update(task_always_eager=True)

    assert summary["skipped"] is False and len(summary["members"]) == 3
    assert Sample.objects.filter(ts=summary["ts"]).count() == 3
