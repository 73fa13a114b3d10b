"""Monitoring benchmarks, each printed with a baseline measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/etcdmonitor \
        .venv/bin/python bench/run_monitoring.py [--days 7] [--skip-live]

1. parser: ours vs prometheus_client on the real etcd 3.4.23 scrape (ms per scrape);
2. collector CPU per member per cycle on a live local 3-member cluster;
3. storage: synthetic history for 3 members at 30 s through our ingest path (derive → array
   → Sample rows → rollups) vs the reference's one-row-per-value layout, bytes per member-scrape;
4. the full dashboard /api/range query at 1 h, 24 h and 7 d (every charted series) vs the
   reference's EAV SQL on the same data volume.
Runs in a throwaway test database (created and dropped), never in DATABASE_URL's own tables.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from monitoring import metrics, selectors, services, timeseries  # noqa: E402
from monitoring.models import Member, Sample  # noqa: E402

SCRAPE = (ROOT / "monitoring" / "tests" / "data" / "etcd-3.4.23-metrics.txt").read_text()
# Every series the 27 dashboard panels chart (reference §3.2, with the stored names).
DASHBOARD = [
    *(
        f"etcd_server_proposals_{k}"
        for k in ("committed_total", "applied_total", "pending", "failed_total")
    ),
    "etcd_server_leader_changes_seen_total",
    "etcd_server_slow_apply_total",
    "etcd_server_slow_read_indexes_total",
    "etcd_server_proposals_commit_apply_lag",
    "etcd_server_proposals_failed_rate",
    "etcd_server_client_requests_34_rate",
    "etcd_server_client_requests_unknown_rate",
    "etcd_server_heartbeat_send_failures_total_rate",
    "etcd_server_health_failures_rate",
    "etcd_server_read_indexes_failed_total_rate",
    *(f"etcd_disk_wal_fsync_duration_seconds_{p}" for p in ("p50", "p90", "p99")),
    *(f"etcd_disk_backend_commit_duration_seconds_{p}" for p in ("p50", "p90", "p99")),
    "etcd_disk_backend_defrag_duration_seconds_p99",
    "etcd_disk_backend_snapshot_duration_seconds_p99",
    "etcd_snap_db_fsync_duration_seconds_p99",
    "etcd_snap_db_save_total_duration_seconds_p99",
    *(
        f"etcd_disk_commit_{k}_duration_seconds_{p}"
        for k in ("rebalance", "spill", "write")
        for p in ("p50", "p99")
    ),
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_server_quota_backend_bytes",
    *(f"etcd_mvcc_{k}_total_rate" for k in ("put", "delete", "txn", "range")),
    "etcd_mvcc_current_revision",
    "etcd_mvcc_compact_revision",
    "etcd_mvcc_db_compaction_keys_total_rate",
    "etcd_mvcc_db_compaction_pause_duration_p99",
    "etcd_mvcc_db_compaction_total_duration_p99",
    "etcd_mvcc_events_total_rate",
    "etcd_mvcc_pending_events_total",
    "etcd_mvcc_watch_stream_total",
    "etcd_mvcc_watcher_total",
    "etcd_mvcc_slow_watcher_total",
    *(
        f"etcd_network_peer_{k}_total_rate"
        for k in ("sent_bytes", "received_bytes", "sent_failures", "received_failures")
    ),
    *(f"etcd_network_peer_round_trip_time_seconds_{p}" for p in ("p50", "p90", "p99")),
    "etcd_network_active_peers",
    "grpc_server_msg_received_total_rate",
    "grpc_server_msg_sent_total_rate",
    *(
        f"grpc_server_{k}_rate"
        for k in ("handled_total", "handled_ok_total", "handled_error_total", "started_total")
    ),
    "etcd_network_client_grpc_sent_bytes_total_rate",
    "etcd_network_client_grpc_received_bytes_total_rate",
    "process_cpu_usage_percent",
    "process_resident_memory_bytes",
    "go_memstats_alloc_bytes",
    "go_goroutines",
    *(f"go_gc_duration_seconds_{q}" for q in ("q05", "q075", "q1")),
    "process_open_fds",
    "go_memstats_sys_bytes",
    *(f"etcd_lease_{k}_total_rate" for k in ("granted", "revoked", "renewed", "expired")),
]


def median_ms(fn, *, rounds=7, inner=10) -> float:
    fn()
    runs = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(inner):
            fn()
        runs.append((time.perf_counter() - started) * 1000 / inner)
    return statistics.median(runs)


def bench_parser() -> None:
    ours = median_ms(lambda: metrics.parse_metrics(SCRAPE))
    derive = median_ms(
        lambda: metrics.derive_snapshot(metrics.parse_metrics(SCRAPE), timestamp=0.0)
    )
    print(f"parser: ours {ours:.2f} ms/scrape; parse+derive {derive:.2f} ms")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        print("parser: prometheus_client not installed (requirements-dev.txt): no baseline")
        return

    def baseline():
        materialised = []
        for family in text_string_to_metric_families(SCRAPE):
            materialised.extend((s.name, s.labels, s.value) for s in family.samples)

    theirs = median_ms(baseline, rounds=5, inner=3)
    print(f"parser: prometheus_client {theirs:.2f} ms/scrape → ours is {theirs / ours:.1f}x faster")


def bench_collector_cpu(cycles: int = 10) -> None:
    from django.conf import settings

    from etcdgateway import reset_gateways
    from etcdgateway.localcluster import LocalEtcdCluster

    with tempfile.TemporaryDirectory(prefix="bench-etcd-") as tmp:
        cluster = LocalEtcdCluster(Path(tmp)).start()
        try:
            settings.ETCD_ENDPOINTS = cluster.client_urls
            reset_gateways()
            services.collect_cluster()
            cpu = []
            for _ in range(cycles):
                time.sleep(1.05)
                started = time.process_time()
                report = services.collect_cluster()
                cpu.append((time.process_time() - started) * 1000 / len(report.members))
        finally:
            cluster.remove()
            reset_gateways()
    print(
        f"collector: {statistics.median(cpu):.2f} ms CPU per member per cycle "
        f"(median of {cycles}; Prometheus anchor 4.8 ms/scrape, goal <= 10 ms)"
    )


def _synthetic_snapshots(days: int, members: list[Member]):
    """Plausible evolving scrapes: counters rise, histograms gain observations, gauges walk."""
    base = metrics.parse_metrics(SCRAPE)
    step = 30
    start = int(time.time()) // 600 * 600 - days * 86400
    rng = random.Random(7)  # noqa: S311 - synthetic data, not secrets
    for index, member in enumerate(members):
        samples = {name: [(labels, v) for labels, v in series] for name, series in base.items()}
        state = None
        for ts in range(start, start + days * 86400, step):
            for name, series in samples.items():
                if name.endswith(("_total", "_count", "_sum")) or name.endswith("_bucket"):
                    bump = rng.randint(0, 30) * (1.0 - 0.3 * index)
                    samples[name] = [(lab, v + bump) for lab, v in series]
                elif name in ("go_goroutines", "process_resident_memory_bytes"):
                    samples[name] = [(lab, max(1.0, v + rng.randint(-3, 3))) for lab, v in series]
            for name in [n for n in samples if n.endswith("_bucket")]:
                # keep buckets cumulative: each le adds its own increments to all larger ones
                series = samples[name]
                running = 0.0
                fixed = []
                for lab, v in series:
                    running = max(running, v)
                    fixed.append((lab, running))
                samples[name] = fixed
            extra = {"raft_term": 2.0, "raft_index": float(ts - start), "etcd_lease_count": 3.0}
            snap = metrics.derive_snapshot(
                samples, timestamp=float(ts), previous=state, extra=extra
            )
            state = snap.state
            yield member, ts, snap.values


def _relation_bytes(*tables: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        total = 0
        for table in tables:
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            total += cursor.fetchone()[0]
    return total


def bench_storage_and_queries(days: int) -> None:
    cluster = services.cluster_ensure()
    members = [
        Member.objects.create(cluster=cluster, member_id=str(10**18 + i), name=f"m{i + 1}")
        for i in range(3)
    ]
    members[0].is_default = True
    members[0].save(update_fields=["is_default"])
    started = time.perf_counter()
    batch, count, eav_rows = [], 0, []
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_eav (id bigserial PRIMARY KEY, timestamp int NOT NULL, "
            "member_id text NOT NULL, metric_name text NOT NULL, metric_value float8 NOT NULL)"
        )
        cursor.execute("CREATE INDEX ON bench_eav (member_id, timestamp)")
        cursor.execute("CREATE INDEX ON bench_eav (member_id, metric_name, timestamp)")
    eav_since = int(time.time()) - 86400  # the EAV baseline holds the last day only
    for member, ts, values in _synthetic_snapshots(days, members):
        batch.append(Sample(member=member, ts=ts, vals=timeseries.to_array(values)))
        if member is members[0] and ts >= eav_since:
            eav_rows.extend((ts, member.member_id, k, v) for k, v in values.items())
        count += 1
        if len(batch) >= 2000:
            Sample.objects.bulk_create(batch)
            batch = []
        if len(eav_rows) >= 50000:
            _copy_eav(eav_rows)
            eav_rows = []
    Sample.objects.bulk_create(batch)
    _copy_eav(eav_rows)
    services.rollups_refresh(cluster=cluster)
    load_s = time.perf_counter() - started
    ours = _relation_bytes("monitoring_sample", "monitoring_samplerollup") / count
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT timestamp), count(*) FROM bench_eav")
        eav_scrapes, eav_values = cursor.fetchone()
    eav = _relation_bytes("bench_eav") / eav_scrapes
    print(
        f"storage: {count} member-scrapes loaded in {load_s:.0f} s; ours {ours:.0f} B per "
        f"member-scrape incl. indexes and rollups (goal <= 1000); reference EAV layout "
        f"{eav:.0f} B ({eav_values / eav_scrapes:.0f} values/scrape) → {eav / ours:.1f}x smaller"
    )

    from monitoring.api.range import parse_window

    member = members[0]
    member.refresh_from_db()
    now = int(time.time())
    for label in ("1h", "24h", "7d"):
        window = parse_window({"range": label}, now=now)

        def ours_query(window=window):
            selectors.metric_series(
                member=member,
                names=DASHBOARD,
                start=window.start,
                end=window.end,
                bucket=window.bucket,
            )

        ms = median_ms(ours_query, rounds=5, inner=3)
        line = f"range {label}: ours {ms:.1f} ms ({len(DASHBOARD)} series, bucket {window.bucket})"
        if label != "7d":
            eav_ms = median_ms(lambda w=window: _eav_query(member, w), rounds=5, inner=1)
            line += f"; reference EAV SQL {eav_ms:.1f} ms → {eav_ms / ms:.1f}x faster"
        print(line)


def _copy_eav(rows) -> None:
    if not rows:
        return
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(
            "COPY bench_eav (timestamp, member_id, metric_name, metric_value) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)


def _eav_query(member, window) -> None:
    bucket = window.bucket or 1
    placeholders = ", ".join(["%s"] * len(DASHBOARD))
    sql = (
        f"SELECT (timestamp / {bucket}) * {bucket} AS g, metric_name, AVG(metric_value) "  # noqa: S608
        "FROM bench_eav WHERE member_id = %s AND timestamp >= %s AND timestamp <= %s "
        f"AND metric_name IN ({placeholders}) GROUP BY g, metric_name ORDER BY g"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [member.member_id, window.start, window.end, *DASHBOARD])
        out: dict = {}
        for ts, name, value in cursor.fetchall():
            out.setdefault(name, []).append({"ts": ts, "value": value})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--skip-live", action="store_true", help="no local etcd cluster")
    args = parser.parse_args()
    bench_parser()
    if connection.vendor != "postgresql":
        print("storage/query benchmarks need DATABASE_URL=postgres://...")
        return 0
    old = setup_databases(verbosity=0, interactive=False)
    try:
        if not args.skip_live:
            bench_collector_cpu()
        Sample.objects.all().delete()
        Member.objects.all().delete()
        bench_storage_and_queries(args.days)
    finally:
        teardown_databases(old, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
