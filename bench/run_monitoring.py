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
import json
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
from monitoring.models import Member, MonitoredCluster, Sample  # noqa: E402
from monitoring.panels import PANEL_CHARTS  # noqa: E402

SCRAPE = (ROOT / "monitoring" / "tests" / "data" / "etcd-3.4.23-metrics.txt").read_text()
# Every series the dashboard's panels chart, as the page requests them.
DASHBOARD = list(
    dict.fromkeys(row[0] for chart in PANEL_CHARTS.values() for row in chart["series"])
)


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

    from devtools.localcluster import LocalEtcdCluster
    from etcdgateway import reset_gateways

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

        query = dict(
            member=member, names=DASHBOARD, start=window.start, end=window.end, bucket=window.bucket
        )

        def ours_query(query=query):
            # What /api/range serves: the series' JSON text, written by PostgreSQL.
            selectors.metric_series_json(**query)

        def row_by_row(query=query):
            json.dumps(selectors.metric_series(**query))

        ms = median_ms(ours_query, rounds=5, inner=3)
        rows_ms = median_ms(row_by_row, rounds=5, inner=1)
        shape = json.loads(selectors.metric_series_json(**query))
        points = sum(len(series) for series in shape.values())
        line = (
            f"range {label}: ours {ms:.1f} ms ({len(shape)} of {len(DASHBOARD)} series, "
            f"{points} points, bucket {window.bucket}); "
            f"row-by-row dicts + json.dumps {rows_ms:.1f} ms"
        )
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
        # Start the history from scratch: the live cycles above left rollup progress behind
        # that would make the synthetic week look already rolled up.
        Sample.objects.all().delete()
        Member.objects.all().delete()
        MonitoredCluster.objects.all().delete()
        bench_storage_and_queries(args.days)
    finally:
        teardown_databases(old, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
