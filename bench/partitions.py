"""The daily-partitioned sample table (issue 19, item 4): storage per member-scrape and retention.

    .venv/bin/python bench/partitions.py storage --before /path/to/main-checkout [--days 7]
    .venv/bin/python bench/partitions.py retention [--members 100] [--interval 15] [--runs 3]

storage: the synthetic history of bench/run_all item 1 (bench/perf_load.py ours: a local 3-member
etcd cluster's real scrapes evolved over `--days` at 30 s, rollups, VACUUM ANALYZE), loaded with
the code at --before (unpartitioned) and with this checkout (partitioned), each into a fresh
database, both loads at once; prints bytes per member-scrape of each.

retention: one UTC day of `--members` members at `--interval` s (162-value arrays, the collector's
width), eight days old, removed by `metrics_purge(days=7)` on the unpartitioned table (migration
0004: the hour-by-hour batched delete, main's path) and on the partitioned one (0005: DROP of the
day's partition), alternating; prints for each the purge's wall time, the WAL it wrote, and the
VACUUM the table needed afterwards.

Databases: PERF_PG (default postgres://postgres@127.0.0.1:5432), named etcdmonitor_part_bench_*.
Every process started here is stopped by PID.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from etcdgateway.localcluster import LocalEtcdCluster  # noqa: E402

PG = os.environ.get("PERF_PG", "postgres://postgres@127.0.0.1:5432")
DB_PREFIX = "etcdmonitor_part_bench_"
WIDTH = 162  # stored values per scrape (monitoring.metrics.stored_key_names())


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fresh_database(name: str) -> str:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    return f"{PG}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- storage per member-scrape ---------------------------------------------------------------


def storage(args) -> dict:
    import httpx
    import perf_dataset  # numpy: bench/run_all installs it
    from perf_run import cluster_members

    work = Path(tempfile.mkdtemp(prefix="bench-partitions-"))
    cluster = LocalEtcdCluster(work / "etcd").start()
    try:
        members = cluster_members(cluster)
        scrapes = [httpx.get(f"{m['url']}/metrics", timeout=10).text for m in members]
    finally:
        cluster.remove()
    ticks = args.days * 86400 // perf_dataset.STEP
    spec = {
        "scrapes": scrapes,
        "members": members,
        "start": int(time.time()) // 600 * 600 - args.days * 86400,
        "ticks": ticks,
        "blocks_dir": str(work / "unused"),
        "work_dir": str(work),
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    jobs = {}
    for label, root in (("before", args.before.resolve()), ("after", ROOT)):
        env = {
            **os.environ,
            "DATABASE_URL": fresh_database(f"{DB_PREFIX}{label}"),
            "DATA_DIR": str(work / f"data-{label}"),
            "DJANGO_SETTINGS_MODULE": "etcdmonitor_site.settings",
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True
        )
        log(f"storage: loading {ticks} ticks x {len(members)} members with {root} ({label})")
        jobs[label] = subprocess.Popen(
            [sys.executable, "bench/perf_load.py", "ours", "--spec", str(spec_path)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
    result = {}
    for label, job in jobs.items():
        out, _ = job.communicate()
        if job.returncode != 0:
            raise RuntimeError(f"perf_load ({label}) failed")
        loaded = json.loads(out.strip().splitlines()[-1])
        result[label] = {
            "bytes": loaded["bytes"],
            "member_scrapes": loaded["member_scrapes"],
            "bytes_per_member_scrape": round(loaded["bytes_total"] / loaded["member_scrapes"], 1),
        }
        drop_database(f"{DB_PREFIX}{label}")
    return result


# --- retention of one day --------------------------------------------------------------------


def _load_day(cursor, member_pks: list[int], day: int, interval: int) -> int:
    cursor.execute(
        "INSERT INTO monitoring_sample (member_id, ts, vals) "
        "SELECT m, t, array_prepend((t %% 3600)::real, array_fill(1.5::real, ARRAY[%s])) "
        "FROM unnest(%s::int[]) m, generate_series(%s::bigint, %s, %s) t",
        [WIDTH - 1, member_pks, day, day + 86400 - interval, interval],
    )
    rows = cursor.rowcount
    cursor.execute(
        "UPDATE monitoring_member m SET sample_count = c.n FROM (SELECT member_id, count(*) AS n "
        "FROM monitoring_sample GROUP BY member_id) c WHERE m.id = c.member_id"
    )
    return rows


def retention(args) -> dict:
    os.environ["DATABASE_URL"] = fresh_database(f"{DB_PREFIX}retention")
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bench-partitions-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "etcdmonitor_site.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from monitoring import partitions, services
    from monitoring.models import Member

    call_command("migrate", verbosity=0)
    cluster = services.cluster_ensure()
    Member.objects.bulk_create(
        [Member(cluster=cluster, member_id=str(1000 + k)) for k in range(args.members)]
    )
    pks = list(Member.objects.values_list("pk", flat=True))
    now = time.time()
    day = partitions.day_start(now - 8 * 86400)
    runs = {"batched delete (unpartitioned, main)": [], "drop partition": []}
    for number in range(args.runs):
        for mode in runs:
            partitioned = mode == "drop partition"
            call_command("migrate", "monitoring", "0005" if partitioned else "0004", verbosity=0)
            if partitioned:
                partitions.partitions_ensure(first=day, last=day)
            with connection.cursor() as cursor:
                rows = _load_day(cursor, pks, day, args.interval)
                cursor.execute("VACUUM ANALYZE monitoring_sample")
                cursor.execute("CHECKPOINT")
                cursor.execute("SELECT pg_current_wal_lsn()")
                lsn = cursor.fetchone()[0]
            started = time.perf_counter()
            deleted = services.metrics_purge(days=7, now=now)
            purge_s = time.perf_counter() - started
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [lsn])
                wal = int(cursor.fetchone()[0])
                started = time.perf_counter()
                cursor.execute("VACUUM monitoring_sample")
                vacuum_s = time.perf_counter() - started
                cursor.execute(
                    "SELECT (SELECT count(*) FROM monitoring_sample), "
                    "(SELECT sum(sample_count) FROM monitoring_member)"
                )
                left, counted = cursor.fetchone()
            assert deleted == rows and left == 0 and counted == 0, (deleted, rows, left, counted)
            runs[mode].append({"purge_s": purge_s, "wal_bytes": wal, "vacuum_s": vacuum_s})
            log(f"run {number + 1} {mode}: {rows} rows, purge {purge_s:.2f} s, WAL {wal:,} B")
    connection.close()
    drop_database(f"{DB_PREFIX}retention")
    summary = {"rows": rows, "members": args.members, "interval_s": args.interval}
    for mode, measured in runs.items():
        summary[mode] = {
            key: {
                "median": statistics.median(m[key] for m in measured),
                "min": min(m[key] for m in measured),
                "max": max(m[key] for m in measured),
            }
            for key in ("purge_s", "wal_bytes", "vacuum_s")
        }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    store = sub.add_parser("storage")
    store.add_argument("--before", type=Path, required=True, help="a checkout without partitions")
    store.add_argument("--days", type=int, default=7)
    keep = sub.add_parser("retention")
    keep.add_argument("--members", type=int, default=100)
    keep.add_argument("--interval", type=int, default=15)
    keep.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = storage(args) if args.command == "storage" else retention(args)
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
