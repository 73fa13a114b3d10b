"""The change journal's throughput and lag, against the gateway's raw watch in the same run.

    DATABASE_URL=postgres://… .venv/bin/python bench/journal.py [--events 50000] [--runs 3]
        [--rate 5000] [--seconds 10] [--json out.json]

Starts a private single-member etcd and uses the database of DATABASE_URL (migrated here; the
bench's rows carry cluster id "bench" and are deleted afterwards; without DATABASE_URL a fresh
SQLite in a temp DATA_DIR). Values are 1 KiB, one key per revision (etcd's common case).

1. **Catch-up throughput.** `--events` puts are written first; then, alternating run by run,
   (a) the baseline: `etcdgateway`'s watch from the first of them, every event decoded to a
   `WatchEvent`, nothing stored; (b) the journal: `ClusterJournal` from the same revision
   until its cursor reaches the last one (rows and cursor committed). Events/s wall and per CPU
   second of this process (the journal is one Python process: one core's worth of GIL),
   median of `--runs`; ratio = journal ÷ baseline.
2. **Lag under load.** The journal runs live while a separate writer process puts 1 KiB values
   at `--rate` events/s for `--seconds` (transactions of 10 puts, each value starting with its
   send time); lag = the row's `observed_at` minus that time, p50/p95/p99/max.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="journal-bench-data-"))

import warnings  # noqa: E402

import django  # noqa: E402

warnings.filterwarnings("ignore", message="No directory at")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from devtools.localcluster import LocalEtcdCluster  # noqa: E402
from etcdgateway import cluster_gateway, reset_gateways  # noqa: E402
from journal.models import JournalCursor, JournalEvent, JournalGap  # noqa: E402
from journal.services import JournalPolicy  # noqa: E402
from journal.worker import ClusterJournal, current_revision  # noqa: E402

CLUSTER = "bench"
VALUE_SIZE = 1024
POLICY = JournalPolicy(max_value_bytes=65536, exclude_prefixes=())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def clear() -> None:
    for model in (JournalEvent, JournalGap, JournalCursor):
        model.objects.filter(cluster_id=CLUSTER).delete()


def preload(total: int, threads: int = 4) -> tuple[int, int]:
    """`total` single-key puts of 1 KiB (several writer threads); (first, last) revision."""
    gateway = cluster_gateway()
    first = current_revision(gateway) + 1
    value = os.urandom(VALUE_SIZE // 2).hex().encode()

    def write(offset: int) -> None:
        for n in range(offset, total, threads):
            gateway.put(f"/bench/k{n % 1000:04d}".encode(), value, ttl=None)

    workers = [threading.Thread(target=write, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return first, current_revision(gateway)


def baseline_run(first: int, last: int, total: int) -> tuple[float, float]:
    """The gateway's watch alone: (seconds, CPU seconds) to decode every event."""
    gateway = cluster_gateway()
    seen = 0
    cpu, started = cpu_seconds(), time.perf_counter()
    with gateway.watch(b"\x00", b"\x00", start_revision=first, prev_kv=True) as watch:
        for batch in watch:
            seen += len(batch.events)
            if batch.events and batch.events[-1].revision >= last:
                break
    elapsed, used = time.perf_counter() - started, cpu_seconds() - cpu
    assert seen == total, (seen, total)
    return elapsed, used


def journal_run(first: int, last: int, total: int) -> tuple[float, float]:
    """The journal from `first` until its cursor reaches `last`: (seconds, CPU seconds)."""
    clear()
    JournalCursor.objects.create(
        cluster_id=CLUSTER, revision=first - 1, etcd_revision=first - 1, updated_at=timezone.now()
    )
    stop = threading.Event()
    worker = ClusterJournal(
        cluster_id=CLUSTER, stop=stop, policy=POLICY, gateway_factory=lambda _: cluster_gateway()
    )
    thread = threading.Thread(target=worker.run)
    cpu, started = cpu_seconds(), time.perf_counter()
    thread.start()
    while JournalCursor.objects.get(cluster_id=CLUSTER).revision < last:
        time.sleep(0.01)
    elapsed, used = time.perf_counter() - started, cpu_seconds() - cpu
    stop.set()
    thread.join()
    stored = JournalEvent.objects.filter(cluster_id=CLUSTER, revision__lte=last).count()
    assert stored == total, (stored, total)
    return elapsed, used


def write_load(endpoints: str, rate: int, seconds: float) -> None:
    """The load writer (a process of its own): `rate` events/s as transactions of 10 puts."""
    settings.ETCD_ENDPOINTS = endpoints.split(",")
    reset_gateways()
    gateway = cluster_gateway()
    per_txn = 10
    interval = per_txn / rate
    padding = b"x" * (VALUE_SIZE - 24)
    started = time.perf_counter()
    sent = 0
    while time.perf_counter() - started < seconds:
        due = started + sent * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        stamp = f"{time.time():<24.6f}".encode()
        base = sent * per_txn
        gateway.put_all(
            (f"/load/k{(base + i) % 1000:04d}".encode(), stamp + padding) for i in range(per_txn)
        )
        sent += 1
    elapsed = time.perf_counter() - started
    print(json.dumps({"events": sent * per_txn, "seconds": elapsed}))


def lag_run(cluster, rate: int, seconds: float) -> dict:
    clear()
    stop = threading.Event()
    worker = ClusterJournal(
        cluster_id=CLUSTER, stop=stop, policy=POLICY, gateway_factory=lambda _: cluster_gateway()
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    while not JournalCursor.objects.filter(cluster_id=CLUSTER).exists():
        time.sleep(0.01)
    cpu = cpu_seconds()
    writer = subprocess.run(
        [
            sys.executable,
            __file__,
            "--write-load",
            cluster.endpoints,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    written = json.loads(writer.stdout.strip().splitlines()[-1])
    last = current_revision(cluster_gateway())
    while JournalCursor.objects.get(cluster_id=CLUSTER).revision < last:
        time.sleep(0.01)
    used = cpu_seconds() - cpu
    stop.set()
    thread.join()
    lags = []
    for value, observed in JournalEvent.objects.filter(cluster_id=CLUSTER).values_list(
        "value", "observed_at"
    ):
        lags.append(observed.timestamp() - float(bytes(value[:24]).decode()))
    lags.sort()
    assert len(lags) == written["events"], (len(lags), written)

    def pct(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * len(lags)))]

    return {
        "events": written["events"],
        "write_rate": written["events"] / written["seconds"],
        "journal_cpu_share": used / written["seconds"],
        "lag_p50_ms": pct(0.50) * 1000,
        "lag_p95_ms": pct(0.95) * 1000,
        "lag_p99_ms": pct(0.99) * 1000,
        "lag_max_ms": lags[-1] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write-load", metavar="ENDPOINTS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_load:
        write_load(args.write_load, args.rate, args.seconds)
        return 0

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    with tempfile.TemporaryDirectory(prefix="journal-bench-etcd-") as base:
        cluster = LocalEtcdCluster(Path(base), size=1).start()
        try:
            settings.ETCD_ENDPOINTS = list(cluster.client_urls)
            reset_gateways()
            load_started = time.perf_counter()
            first, last = preload(args.events)
            total = last - first + 1
            loaded_in = time.perf_counter() - load_started
            print(f"preloaded {total} events of {VALUE_SIZE} B in {loaded_in:.1f} s")
            journal_run(first, min(last, first + 999), min(total, 1000))  # warm-up
            base_rates, base_cpu, ours_rates, ours_cpu = [], [], [], []
            for run in range(args.runs):
                seconds, cpu = baseline_run(first, last, total)
                base_rates.append(total / seconds)
                base_cpu.append(total / cpu)
                seconds, cpu = journal_run(first, last, total)
                ours_rates.append(total / seconds)
                ours_cpu.append(total / cpu)
                print(
                    f"run {run + 1}: watch only {base_rates[-1]:,.0f} ev/s, "
                    f"journal {ours_rates[-1]:,.0f} ev/s ({ours_cpu[-1]:,.0f} per CPU s)"
                )
            lag = lag_run(cluster, args.rate, args.seconds)
        finally:
            clear()
            cluster.stop()
    result = {
        "events": total,
        "value_bytes": VALUE_SIZE,
        "database": connection.vendor,
        "baseline_events_per_s": statistics.median(base_rates),
        "baseline_events_per_cpu_s": statistics.median(base_cpu),
        "journal_events_per_s": statistics.median(ours_rates),
        "journal_events_per_cpu_s": statistics.median(ours_cpu),
        "journal_range": [min(ours_rates), max(ours_rates)],
        "ratio": statistics.median(ours_rates) / statistics.median(base_rates),
        "lag": lag,
        "load_average": os.getloadavg(),
    }
    print(
        f"\ncatch-up, {total} events of 1 KiB, median of {args.runs}:\n"
        f"  gateway watch only (baseline): {result['baseline_events_per_s']:,.0f} events/s\n"
        f"  journal (watch + PostgreSQL):   {result['journal_events_per_s']:,.0f} events/s "
        f"({result['journal_events_per_cpu_s']:,.0f} per CPU second of this process)\n"
        f"  ratio journal / baseline: {result['ratio']:.3f}   goal >= 5,000 events/s: "
        f"{'met' if result['journal_events_per_s'] >= 5000 else 'MISSED'}\n"
        f"live load: {lag['events']} events at {lag['write_rate']:,.0f}/s written; journal lag "
        f"p50 {lag['lag_p50_ms']:.0f} ms, p95 {lag['lag_p95_ms']:.0f} ms, p99 "
        f"{lag['lag_p99_ms']:.0f} ms, max {lag['lag_max_ms']:.0f} ms; journal CPU "
        f"{lag['journal_cpu_share']:.0%} of a core\n"
        f"load average {result['load_average']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
