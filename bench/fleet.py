"""Issue 19's scale run: a fleet of real etcd clusters watched by the distributed mode.

    .venv/bin/python bench/fleet.py             # 70 one-member + 10 three-member clusters, 10 min
    .venv/bin/python bench/fleet.py --singles 4 --triples 1 --minutes 2   # a quick look

Everything runs on 127.0.0.1 and is stopped by PID at the end: the etcd members, gunicorn
(`manage.py runmonitor` with a broker: web only), Celery beat, two Celery workers and the change
journal (`manage.py journal`), against
PostgreSQL and Redis. The clusters are registered through `POST /api/clusters`. The run has two
phases, so the baseline is measured in the same run: first only the environment's cluster is
monitored (the others registered with `monitored: false`), then every cluster is switched on.

Reported: CPU ms per member-scrape (all our processes, health probes included), the share of
collection intervals in which every cluster stored a cycle, p50/p99 of a cluster's cycle
duration (each cycle stores it with the cluster; polled), database growth per member per day,
`/api/fleet` and the fleet page p50/p99, and `/api/range` over 24 h for one member with the
fleet off (baseline) and on. The figures go to bench/results/fleet.json.
"""

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.localcluster import LocalEtcdCluster, free_port  # noqa: E402

PG = os.environ.get("PERF_PG", "postgres://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("FLEET_DB", "etcdmonitor_fleet_bench")
REDIS = os.environ.get("FLEET_REDIS", "redis://127.0.0.1:6379/9")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# One-member clusters need no heartbeats; three-member ones get etcd's defaults (100/1000 ms)
# instead of the test fixture's fast timers, as a real fleet would run.
SLOW_RAFT = ["--heartbeat-interval=100", "--election-timeout=1000"]
# As docker-compose.yml runs them (no gossip, mingle or heartbeat events).
WORKER_FLAGS = ["-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"]
GOALS = {"cpu_ms_per_member_scrape": 5.0, "complete_share": 0.99, "fleet_p99_ms": 150.0}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timings(values: list[float]) -> dict:
    return {
        "p50": round(percentile(values, 0.50), 2),
        "p99": round(percentile(values, 0.99), 2),
        "n": len(values),
    }


# --- processes ------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree_cpu_seconds(roots: list[int]) -> float:
    """CPU of `roots` and every live descendant, plus what their reaped children used."""
    total = 0.0
    for pid in _descendants(roots):
        fields = _stat(pid)
        if fields is not None:
            # utime, stime, cutime, cstime (fields 14-17 of stat, counted after the command name)
            total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK
    return total


def _descendants(roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, pending = [], list(roots)
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def thread_cpu_seconds(roots: dict[str, int]) -> dict[tuple[str, str, int], float]:
    """CPU of every live thread under each named root, keyed (root name, thread kind, tid).

    The kind is the thread's name without its number ("collect_3" -> "collect"), so the report
    shows where a process's CPU goes outside Python too (gRPC's and psycopg's own threads).
    """
    found = {}
    for name, root in roots.items():
        for pid in _descendants([root]):
            try:
                tids = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
            except OSError:
                continue
            for tid in tids:
                try:
                    text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                except OSError:
                    continue
                comm = text[text.index("(") + 1 : text.rindex(")")]
                fields = text.rsplit(")", 1)[1].split()
                kind = re.sub(r"[-_]?\d+$", "", comm) or comm
                if tid == pid:
                    kind = "main"
                found[(name, kind, tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return found


def thread_split(before: dict, after: dict, seconds: float, top: int = 15) -> dict[str, float]:
    """CPU ms/s per (process, thread kind) between two `thread_cpu_seconds` readings."""
    totals: dict[str, float] = {}
    for key, used in after.items():
        name, kind, _ = key
        label = f"{name}/{kind}"
        totals[label] = totals.get(label, 0.0) + used - before.get(key, 0.0)
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return {label: round(used * 1000 / max(seconds, 1), 1) for label, used in ranked}


class Processes:
    """Every process started here, stopped by PID (SIGTERM, then SIGKILL) in reverse order."""

    def __init__(self):
        self.items: list[subprocess.Popen] = []

    def start(self, args: list[str], *, env: dict, log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.items.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.items):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.items):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


# --- set-up ---------------------------------------------------------------------------------------


def start_etcd(work: Path, singles: int, triples: int) -> list[LocalEtcdCluster]:
    clusters = []
    for i in range(singles + triples):
        size = 1 if i < singles else 3
        cluster = LocalEtcdCluster(work / f"etcd-{i:03d}", size=size, extra_args=SLOW_RAFT)
        clusters.append(cluster.start(timeout=60))
        if (i + 1) % 10 == 0:
            log(f"etcd: {i + 1} clusters up")
    return clusters


def fresh_database() -> str:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return f"{PG}/{DB_NAME}"


def django_env(work: Path, database_url: str, endpoints: list[str], interval: int) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ETCD_", "DJANGO_", "CELERY_", "DATABASE_"))
    }
    env.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(work / "data"),
        ETCD_ENDPOINTS=",".join(endpoints),
        CELERY_BROKER_URL=REDIS,
        COLLECTOR_INTERVAL=str(interval),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        KV_TABS_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def admin_token(env: dict) -> str:
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from accounts.services import session_create\n"
        "user = get_user_model().objects.create_superuser('fleet-bench', password=None)\n"
        "print(session_create(user=user)[0])\n"
    )
    return manage(env, "shell", "-c", script).strip().splitlines()[-1]


def register(api: httpx.Client, clusters: list[LocalEtcdCluster]) -> list[str]:
    """POST every cluster but the first (the environment's) unmonitored; returns their ids."""
    environments = ("prod", "staging", "dev", "other")
    ids = []
    for i, cluster in enumerate(clusters[1:], start=1):
        response = api.post(
            "/api/clusters",
            json={
                "name": f"fleet-{i:03d}",
                "endpoints": cluster.client_urls,
                "labels": {"environment": environments[i % len(environments)]},
                "monitored": False,
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"register fleet-{i:03d}: {response.status_code} {response.text}")
        ids.append(response.json()["id"])
    return ids


# --- measurements ---------------------------------------------------------------------------------


def request_times(api: httpx.Client, path: str, params: dict | None, runs: int) -> list[float]:
    api.get(path, params=params)  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = api.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
    return times


def range_24h(api: httpx.Client, runs: int) -> list[float]:
    member = api.get("/api/members").json()["members"][0]["id"]
    params = {
        "member_id": member,
        "metrics": "etcd_mvcc_db_total_size_in_bytes,etcd_server_proposals_committed_total",
        "range": "24h",
    }
    return request_times(api, "/api/range", params, runs)


def watch_cycles(database_url: str, seconds: float, step: float = 3.0) -> tuple[list[float], int]:
    """Every cluster's cycle durations (ms) stored during `seconds` (each cycle writes its
    `last_cycle_ms` with its `last_cycle_at`; polled often enough to see each one), and the
    most connections to the database seen at once."""
    seen: dict[tuple[str, object], float] = {}
    peak = 0
    deadline = time.monotonic() + seconds
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT name, last_cycle_at, last_cycle_ms FROM monitoring_monitoredcluster "
                "WHERE last_cycle_ms IS NOT NULL"
            ).fetchall()
            for name, at, ms in rows:
                seen[(name, at)] = ms
            (count,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchone()
            peak = max(peak, count)
            left = deadline - time.monotonic()
            if left <= 0:
                return list(seen.values()), peak
            time.sleep(min(step, left))


def database_bytes(database_url: str) -> dict[str, int]:
    """Bytes of the monitoring tables (with indexes and TOAST), by table; partitions of the
    sample table summed under `monitoring_sample`."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE 'monitoring%%'"
        ).fetchall()
    out: dict[str, int] = {}
    for name, size in rows:
        table = "monitoring_sample" if name.startswith("monitoring_sample_p") else name
        out[table] = out.get(table, 0) + int(size)
    return out


def cycles(database_url: str, since: int, until: int) -> dict[str, dict]:
    """{cluster: {"members": n, "stamps": {ts: members stored}}} of samples stored in the window."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT c.name, s.ts, count(*) FROM monitoring_sample s "
            "JOIN monitoring_member m ON m.id = s.member_id "
            "JOIN monitoring_monitoredcluster c ON c.id = m.cluster_id "
            "WHERE s.ts >= %s AND s.ts < %s GROUP BY c.name, s.ts",
            [since, until],
        ).fetchall()
        sizes = dict(
            conn.execute(
                "SELECT c.name, count(*) FROM monitoring_member m "
                "JOIN monitoring_monitoredcluster c ON c.id = m.cluster_id "
                "WHERE m.in_cluster GROUP BY c.name"
            ).fetchall()
        )
    out: dict[str, dict] = {}
    for name, ts, count in rows:
        entry = out.setdefault(name, {"members": sizes.get(name, 0), "stamps": {}})
        entry["stamps"][int(ts)] = int(count)
    return out


def interval_offset(phases: list[int], step: int) -> int:
    """The phase (0 <= phase < step) farthest from every cycle's: the middle of the widest gap
    between the phases taken round a circle of one step. (Half a step from their median was
    wrong when the phases wrap: dispatch spread over 7 s starting at phase 10 put an edge
    next to the last batch.)"""
    points = sorted(set(phases))
    if not points:
        return 0
    gaps = [
        ((points[(i + 1) % len(points)] - point) % step or step, point)
        for i, point in enumerate(points)
    ]
    width, start = max(gaps)
    return (start + width // 2) % step


def completeness(found: dict[str, dict], expected: list[str], since: int, until: int, step: int):
    """Share of intervals in which every cluster stored a full cycle (all its members).

    Interval edges sit in the middle of the widest gap between the cycles' start phases, so
    the few hundred ms a queued task waits cannot move a cycle into its neighbour's interval.
    """
    offset = interval_offset(
        [ts % step for entry in found.values() for ts in entry["stamps"]], step
    )
    first = since - since % step + offset
    edges = [t for t in range(first, until - step + 1, step) if t >= since]
    complete, missed = 0, {}
    for start in edges:
        ok = True
        for name in expected:
            entry = found.get(name)
            full = entry and any(
                start <= ts < start + step and count >= entry["members"]
                for ts, count in entry["stamps"].items()
            )
            if not full:
                ok = False
                missed.setdefault(name, []).append(start)
        complete += ok
    return complete, len(edges), missed


_SUCCEEDED = re.compile(r"Task (\S+)\[[^\]]+\] succeeded in ([\d.]+)s")


def task_durations(log_paths: list[Path], since_line: dict[Path, int]) -> dict[str, list[float]]:
    """{task name: [ms, ...]} from the workers' "succeeded in" log lines after `since_line`."""
    out: dict[str, list[float]] = {}
    for path in log_paths:
        lines = path.read_text(errors="replace").splitlines()[since_line.get(path, 0) :]
        for line in lines:
            if match := _SUCCEEDED.search(line):
                out.setdefault(match.group(1), []).append(float(match.group(2)) * 1000)
    return out


def line_counts(paths: list[Path]) -> dict[Path, int]:
    return {p: len(p.read_text(errors="replace").splitlines()) for p in paths}


# --- the run --------------------------------------------------------------------------------------


def run(args, work: Path) -> dict:
    procs = Processes()
    clusters: list[LocalEtcdCluster] = []
    try:
        log(f"starting {args.singles} one-member and {args.triples} three-member etcd clusters")
        clusters = start_etcd(work, args.singles, args.triples)
        members_total = sum(len(c.members) for c in clusters)
        database_url = fresh_database()
        env = django_env(work, database_url, clusters[0].client_urls, args.interval)
        manage(env, "migrate", "--noinput")
        token = admin_token(env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        logs = work / "logs"
        logs.mkdir()
        web = procs.start(
            [sys.executable, "manage.py", "runmonitor", "--bind", f"127.0.0.1:{port}"],
            env=env,
            log_path=logs / "web.log",
        )
        wait_http(f"{base}/healthz")
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        ids = register(api, clusters)
        log(f"registered {len(ids)} clusters through /api/clusters ({members_total} members)")

        celery = [sys.executable, "-m", "celery", "-A", "etcdmonitor_site"]
        worker_logs = [logs / "worker-1.log", logs / "worker-2.log"]
        jobs = [
            procs.start(
                [
                    *celery,
                    "worker",
                    *WORKER_FLAGS,
                    "-P",
                    args.pool,
                    "-c",
                    str(args.concurrency),
                    "-n",
                    f"w{i}@%h",
                ],
                env=env,
                log_path=worker_logs[i - 1],
            )
            for i in (1, 2)
        ]
        # The change journal is part of the distributed mode too (compose's `journal`): counted.
        jobs.append(
            procs.start(
                [sys.executable, "manage.py", "journal"], env=env, log_path=logs / "journal.log"
            )
        )
        jobs.append(
            procs.start(
                [*celery, "beat", "-l", "warning", "--schedule", str(work / "beat-schedule")],
                env=env,
                log_path=logs / "beat.log",
            )
        )
        roots = [web.pid, *(p.pid for p in jobs)]
        root_names = ["web", "worker-1", "worker-2", "journal", "beat"]

        log(f"baseline: only the environment's cluster monitored, {args.baseline_seconds} s")
        time.sleep(args.baseline_seconds)
        range_off = range_24h(api, args.requests)

        for cluster_id in ids:
            response = api.patch(f"/api/clusters/{cluster_id}", json={"monitored": True})
            if response.status_code != 200:
                raise RuntimeError(f"monitor {cluster_id}: {response.status_code}")
        log(f"fleet on: warming up for {2 * args.interval} s")
        time.sleep(2 * args.interval)

        since = int(time.time())
        cpu_before = tree_cpu_seconds(roots)
        split_before = [tree_cpu_seconds([pid]) for pid in roots]
        named_roots = dict(zip(root_names, roots, strict=True))
        threads_before = thread_cpu_seconds(named_roots)
        bytes_before = database_bytes(database_url)
        log_marks = line_counts(worker_logs)
        window = args.minutes * 60
        log(f"measuring for {args.minutes} min")
        collect, peak_connections = watch_cycles(database_url, window)
        until = int(time.time())
        cpu_after = tree_cpu_seconds(roots)
        split = {
            name: round((tree_cpu_seconds([pid]) - before) * 1000 / max(1, until - since), 1)
            for name, pid, before in zip(root_names, roots, split_before, strict=True)
        }
        threads = thread_split(threads_before, thread_cpu_seconds(named_roots), until - since)
        bytes_after = database_bytes(database_url)

        found = cycles(database_url, since, until)
        scrapes = sum(sum(e["stamps"].values()) for e in found.values())
        # Monitoring keys a cluster's rows by the record's id.
        ids = [c["id"] for c in api.get("/api/fleet").json()["clusters"] if c["monitored"]]
        complete, intervals, missed = completeness(found, ids, since, until, args.interval)
        durations = task_durations(worker_logs, log_marks)

        fleet = request_times(api, "/api/fleet", None, args.requests)
        page = request_times(api, args.fleet_page, None, args.requests)
        range_on = range_24h(api, args.requests)
        cpu_ms = (cpu_after - cpu_before) * 1000 / max(scrapes, 1)
        per_day = 86400 / (until - since) / members_total
        growth = {
            table: round((size - bytes_before.get(table, 0)) * per_day)
            for table, size in sorted(bytes_after.items())
            if size != bytes_before.get(table, 0)
        }
        result = {
            "clusters": len(clusters),
            "members": members_total,
            "interval_s": args.interval,
            "worker_pool": f"{args.pool} x {args.concurrency}",
            "window_s": until - since,
            "member_scrapes": scrapes,
            "cpu_ms_per_member_scrape": round(cpu_ms, 3),
            "cpu_ms_per_second_by_process": split,
            "cpu_ms_per_second_by_thread": threads,
            "complete_intervals": complete,
            "intervals": intervals,
            "complete_share": round(complete / intervals, 4) if intervals else 0.0,
            "missed_intervals": missed,
            "peak_db_connections": peak_connections,
            "cycle_ms": timings(collect) if collect else None,
            "task_ms": {name: timings(v) for name, v in sorted(durations.items())},
            "db_bytes_per_member_day": sum(growth.values()),
            "db_bytes_per_member_day_by_table": growth,
            "fleet_api_ms": timings(fleet),
            "fleet_page_ms": timings(page),
            "range_24h_ms_fleet_off": timings(range_off),
            "range_24h_ms_fleet_on": timings(range_on),
            "range_ratio_p50": round(statistics.median(range_on) / statistics.median(range_off), 3),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        }
        return result
    finally:
        procs.stop_all()
        for cluster in clusters:
            cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=70)
    parser.add_argument("--triples", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval", type=int, default=15)
    parser.add_argument("--baseline-seconds", type=int, default=60)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2, help="pool size of each worker")
    parser.add_argument(
        "--pool", default="prefork", help="each worker's Celery pool (prefork, threads, solo)"
    )
    parser.add_argument("--fleet-page", default="/fleet")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fleet.json")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        try:
            result = run(args, Path(tmp))
        finally:
            if args.logs and (Path(tmp) / "logs").is_dir():
                shutil.copytree(Path(tmp) / "logs", args.logs, dirs_exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    for name, goal in GOALS.items():
        value = result["fleet_api_ms"]["p99"] if name == "fleet_p99_ms" else result[name]
        better = value >= goal if name == "complete_share" else value <= goal
        print(
            f"{name}: {value} (goal {'>=' if name == 'complete_share' else '<='} {goal}) "
            f"ratio {value / goal:.2f} {'met' if better else 'NOT met'}"
        )
    print(f"/api/range 24 h p50 with the fleet / without: {result['range_ratio_p50']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
