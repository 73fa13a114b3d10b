"""Everything of issue 9 side by side in one run: ours vs Prometheus, etcdctl (bench/run_all).

    .venv/bin/python bench/perf_run.py [--days 7] [--runs 5] [--skip kv,snapshot] [--out docs]

All processes are local, on 127.0.0.1, started here and stopped by PID. Each comparison runs both
sides in this run, alternating, 1 warm-up then `--runs` recorded runs, and keeps the median
(min-max). Raw figures go to <out>/performance.json, the table to <out>/PERFORMANCE.md.
"""

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import perf_dataset  # noqa: E402
import perf_promql  # noqa: E402
import perf_report  # noqa: E402

from devtools.localcluster import LocalEtcdCluster, free_port  # noqa: E402

PG = os.environ.get("PERF_PG", "postgres://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("PERF_DB", "etcdmonitor_perf_bench")
REDIS = os.environ.get("PERF_REDIS", "redis://127.0.0.1:6379/7")
CLK_TCK = os.sysconf("SC_CLK_TCK")
WINDOWS = (("1h", 3600), ("24h", 86400), ("7d", 7 * 86400))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def spread(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


class Processes:
    """Every process started here, stopped by PID (SIGTERM, then SIGKILL) in reverse order."""

    def __init__(self):
        self.items: list[subprocess.Popen] = []

    def start(self, args, **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        process = subprocess.Popen(args, **kwargs)
        self.items.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self.items:
            self.items.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.items)):
            self.stop(process)


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def fresh_database() -> str:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return f"{PG}/{DB_NAME}"


def django_env(work: Path, database_url: str, endpoints: list[str]) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ETCD_", "DJANGO_", "CELERY_", "DATABASE_"))
    }
    env.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(work / "data"),
        ETCD_ENDPOINTS=",".join(endpoints),
        # The production shape: a broker, so runmonitor serves web only with 2 workers (no
        # Celery worker or beat is started, so no job runs behind the measurements).
        CELERY_BROKER_URL=REDIS,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
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


def session_token(env: dict) -> str:
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from accounts.services import session_create\n"
        "user, _ = get_user_model().objects.get_or_create(username='perf-bench')\n"
        "print(session_create(user=user)[0])\n"
    )
    return manage(env, "shell", "-c", script).strip().splitlines()[-1]


def cluster_members(cluster: LocalEtcdCluster) -> list[dict]:
    """[{id, name, url}] in the order of the cluster's client URLs (m1 first)."""
    import pyetcd

    host, port = cluster.client_urls[0].removeprefix("http://").split(":")
    client = pyetcd.client(host=host, port=int(port))
    try:
        listed = list(client.members)
    finally:
        client.close()
    by_url = {}
    for member in listed:
        for url in member.client_urls:
            by_url[url.rstrip("/")] = member
    out = []
    for url in cluster.client_urls:
        member = by_url[url]
        out.append({"id": str(member.id), "name": member.name, "url": url})
    return out


# --- item 1: the same data in both stores -------------------------------------------------------


def load_both(work: Path, env: dict, members: list[dict], days: int) -> dict:
    scrapes = [httpx.get(f"{m['url']}/metrics", timeout=10).text for m in members]
    ticks = days * 86400 // perf_dataset.STEP
    start = int(time.time()) // 600 * 600 - days * 86400
    spec = {
        "scrapes": scrapes,
        "members": members,
        "start": start,
        "ticks": ticks,
        "blocks_dir": str(work / "prom-blocks"),
        "work_dir": str(work),
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    log(f"item 1: {days} d x 30 s x {len(members)} members into PostgreSQL and promtool ...")
    started = time.perf_counter()
    jobs = {
        store: subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "perf_load.py"), store, "--spec", str(spec_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for store in ("ours", "prom")
    }
    results = {}
    for store, job in jobs.items():
        out, _ = job.communicate()
        if job.returncode != 0:
            raise RuntimeError(f"perf_load {store} failed")
        results[store] = json.loads(out.strip().splitlines()[-1])
    results["wall_s"] = time.perf_counter() - started
    results["start"], results["ticks"] = start, ticks
    results["scrape_samples"] = [
        sum(1 for line in s.splitlines() if line and line[0] != "#") for s in scrapes
    ]
    log(f"item 1: loaded in {results['wall_s']:.0f} s")
    return results


def prom_config(path: Path, targets: list[str] | None) -> Path:
    lines = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1h"]
    if targets:
        lines += ["scrape_configs:", "  - job_name: etcd", "    static_configs:"]
        lines += ["      - targets: [" + ", ".join(f"'{t}'" for t in targets) + "]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_prometheus(procs: Processes, work: Path, name: str, data: Path, targets=None):
    port = free_port()
    config = prom_config(work / f"{name}.yml", targets)
    process = procs.start(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stderr=(work / f"{name}.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/-/ready", timeout=120)
    return process, base


def prom_metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_compaction(base: str, timeout: float = 300.0) -> dict:
    """Until Prometheus has compacted the backfilled 2 h blocks and the block count is stable."""
    started = time.monotonic()
    stable_since, last = None, None
    while time.monotonic() - started < timeout:
        compactions = prom_metric(base, "prometheus_tsdb_compactions_total")
        blocks = prom_metric(base, "prometheus_tsdb_blocks_loaded")
        state = (compactions, blocks)
        if state != last:
            stable_since, last = time.monotonic(), state
        elif compactions > 0 and time.monotonic() - stable_since > 15:
            break
        time.sleep(2)
    return {
        "compactions": last[0],
        "blocks": last[1],
        "waited_s": time.monotonic() - started,
    }


def block_bytes(data: Path) -> dict:
    total, samples, blocks = 0, 0, 0
    for meta in data.glob("*/meta.json"):
        info = json.loads(meta.read_text())
        samples += info["stats"]["numSamples"]
        blocks += 1
        total += sum(f.stat().st_size for f in meta.parent.rglob("*") if f.is_file())
    everything = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    return {"blocks_bytes": total, "dir_bytes": everything, "samples": samples, "blocks": blocks}


# --- item 2: the dashboard query ----------------------------------------------------------------


def bucket_for_span(span: int) -> int:
    for limit, bucket in ((1800, 30), (7200, 30), (43200, 120), (172800, 300)):
        if span <= limit:
            return bucket
    return 600


def query_both(ours_base, token, prom_base, member, names, present, last_ts, runs) -> dict:
    exprs = {
        n: perf_promql.promql(n, instance="m1", window=0, present=present) for n in names
    }  # validated here; the window is filled per range below
    del exprs
    out = {}
    ours_client = httpx.Client(
        base_url=ours_base, headers={"Authorization": f"Bearer {token}"}, timeout=120
    )
    prom_client = httpx.Client(base_url=prom_base, timeout=300)
    try:
        for label, span in WINDOWS:
            end = last_ts
            start = end - span
            step = bucket_for_span(span)
            window = max(300, step)
            expressions = list(
                dict.fromkeys(
                    perf_promql.promql(n, instance="m1", window=window, present=present)
                    for n in names
                )
            )

            def ours(start=start, end=end):
                response = ours_client.get(
                    "/api/range",
                    params={
                        "member_id": member,
                        "metrics": ",".join(names),
                        "start": start,
                        "end": end,
                    },
                )
                response.raise_for_status()
                series = response.json()["metrics"] or {}
                return len(series), sum(len(p) for p in series.values()), len(response.content)

            def prom(start=start, end=end, step=step, expressions=expressions):
                series = points = size = 0
                for expr in expressions:
                    response = prom_client.get(
                        "/api/v1/query_range",
                        params={"query": expr, "start": start, "end": end, "step": step},
                    )
                    response.raise_for_status()
                    result = response.json()["data"]["result"]
                    series += len(result)
                    points += sum(len(r["values"]) for r in result)
                    size += len(response.content)
                return series, points, size

            ours(), prom()  # warm-up
            mine, theirs = [], []
            for _ in range(runs):
                t = time.perf_counter()
                ours_shape = ours()
                mine.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                prom_shape = prom()
                theirs.append((time.perf_counter() - t) * 1000)
            out[label] = {
                "step": step,
                "rate_window_s": window,
                "ours_ms": spread(mine),
                "prom_ms": spread(theirs),
                "ours_series_points_bytes": ours_shape,
                "prom_series_points_bytes": prom_shape,
                "names": len(names),
                "expressions": len(expressions),
                "ratio": statistics.median(mine) / statistics.median(theirs),
            }
            log(
                f"item 2: {label}: ours {statistics.median(mine):.1f} ms, "
                f"Prometheus {statistics.median(theirs):.1f} ms ({len(expressions)} expressions)"
            )
    finally:
        ours_client.close()
        prom_client.close()
    return out


# --- item 4: ingest CPU -------------------------------------------------------------------------


def ingest_cpu(procs, work, env, members, runs, window_s: float) -> dict:
    targets = [m["url"].removeprefix("http://") for m in members]
    prom, base = start_prometheus(procs, work, "prom-scrape", work / "prom-scrape")
    time.sleep(3)
    idle_start = cpu_seconds(prom.pid)
    time.sleep(window_s)
    idle_rate = (cpu_seconds(prom.pid) - idle_start) / window_s  # CPU s per s with no targets
    prom_config(work / "prom-scrape.yml", targets)
    prom.send_signal(signal.SIGHUP)  # reload: now scraping the 3 members every 1 s
    time.sleep(10)
    theirs, ours, gross = [], [], []
    samples_per_scrape = 0.0
    for run in range(runs + 1):
        c0 = cpu_seconds(prom.pid)
        n0 = prom_metric(base, "prometheus_target_interval_length_seconds_count")
        s0 = prom_metric(base, "prometheus_tsdb_head_samples_appended_total")
        time.sleep(window_s)
        c1 = cpu_seconds(prom.pid)
        n1 = prom_metric(base, "prometheus_target_interval_length_seconds_count")
        s1 = prom_metric(base, "prometheus_tsdb_head_samples_appended_total")
        scrapes = n1 - n0
        prom.send_signal(signal.SIGSTOP)  # quiet while ours runs
        result = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "perf_collect.py"), "--cycles", "10"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        prom.send_signal(signal.SIGCONT)
        mine = json.loads(result.stdout.strip().splitlines()[-1])
        if run == 0:
            time.sleep(2)
            continue  # warm-up
        gross.append((c1 - c0) * 1000 / scrapes)
        theirs.append(((c1 - c0) - idle_rate * window_s) * 1000 / scrapes)
        samples_per_scrape = (s1 - s0) / scrapes
        ours.append(mine["ms_per_member_cycle"])
        log(f"item 4: run {run}: Prometheus {theirs[-1]:.2f} ms/scrape, ours {ours[-1]:.2f} ms")
        time.sleep(2)
    procs.stop(prom)
    return {
        "prom_ms_per_scrape": spread(theirs),
        "prom_gross_ms_per_scrape": spread(gross),
        "prom_idle_cpu_per_s": idle_rate,
        "prom_samples_per_scrape": samples_per_scrape,
        "ours_ms_per_member_cycle": spread(ours),
        "window_s": window_s,
        "ratio": statistics.median(ours) / statistics.median(theirs),
    }


# --- item 5: API throughput ---------------------------------------------------------------------

_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def wrk(url: str, seconds: int, token: str | None = None) -> dict:
    args = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", url]
    if token:
        args[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    p99 = _WRK_P99.search(out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    bad = _WRK_NON2XX.search(out)
    return {
        "rps": float(_WRK_RPS.search(out).group(1)),
        "p99_ms": float(p99.group(1)) * scale,
        "non_2xx": int(bad.group(1)) if bad else 0,
    }


UNCACHED = {"AUTH_CACHE_SECONDS": "0", "CURRENT_CACHE_SECONDS": "0", "HEALTH_CACHE_SECONDS": "0"}


def throughput(base: str, token: str, runs: int, seconds: int) -> dict:
    health, current = [], []
    wrk(f"{base}/healthz", 2), wrk(f"{base}/api/current", 2, token)  # warm-up
    for _ in range(runs):
        health.append(wrk(f"{base}/healthz", seconds))
        current.append(wrk(f"{base}/api/current", seconds, token))
        log(
            f"item 5: /healthz {health[-1]['rps']:.0f} req/s, "
            f"/api/current {current[-1]['rps']:.0f} req/s"
        )
    out = {}
    for name, runs_ in (("healthz", health), ("current", current)):
        out[name] = {
            "rps": spread([r["rps"] for r in runs_]),
            "p99_ms": spread([r["p99_ms"] for r in runs_]),
            "non_2xx": sum(r["non_2xx"] for r in runs_),
        }
    # Per adjacent pair of windows, then the median: this machine's speed drifts by 2-3x
    # between 5 s windows, and a ratio of two medians can pair a fast window with a slow one.
    pair_ratios = [c["rps"] / h["rps"] for h, c in zip(health, current, strict=True)]
    out["auth_overhead"] = 1 - statistics.median(pair_ratios)
    out["auth_overhead_pairs"] = [1 - ratio for ratio in pair_ratios]
    out["seconds"] = seconds
    return out


# --- item 6: KV and snapshot --------------------------------------------------------------------


def sub_bench(script: str, work: Path, runs: int, *extra: str) -> dict:
    target = work / f"{script}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "DATABASE_"))}
    env["DATA_DIR"] = str(work / f"{script}-data")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, f"bench/{script}.py", "--runs", str(runs), "--json", str(target), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        log(f"{script} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return {"error": result.stderr[-2000:]}
    figures = json.loads(target.read_text())
    figures["wall_s"] = time.perf_counter() - started
    figures["output"] = result.stdout[-3000:]
    return figures


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    versions = {}
    for name, args in (
        ("prometheus", ["prometheus", "--version"]),
        ("etcd", ["etcd", "--version"]),
        ("wrk", ["wrk", "--version"]),
    ):
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=10)
            versions[name] = (out.stdout or out.stderr).splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            versions[name] = "?"
    with psycopg.connect(f"{PG}/postgres") as conn:
        versions["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_mib": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--scrape-window", type=float, default=15.0)
    parser.add_argument("--kv-keys", type=int, default=100_000)
    parser.add_argument("--snapshot-mb", type=int, default=210)
    parser.add_argument("--skip", default="", help="comma list of: kv,snapshot,ingest,wrk")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    started_at = datetime.now(UTC)
    began = time.perf_counter()
    result: dict = {
        "started": started_at.isoformat(timespec="seconds"),
        "load_start": loadavg(),
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    log(f"load average at start: {result['load_start']}")
    work = Path(tempfile.mkdtemp(prefix="perf-run-"))
    procs = Processes()
    cluster = None
    try:
        database_url = fresh_database()
        cluster = LocalEtcdCluster(work / "etcd").start()
        members = cluster_members(cluster)
        env = django_env(work, database_url, list(cluster.client_urls))
        manage(env, "migrate", "--noinput", "-v0")

        result["dataset"] = load_both(work, env, members, args.days)
        prom_q, prom_base = start_prometheus(procs, work, "prom-query", work / "prom-blocks")
        result["prom_compaction"] = wait_compaction(prom_base)
        result["prom_storage"] = block_bytes(work / "prom-blocks")
        log(f"item 3: Prometheus blocks {result['prom_storage']}")

        port = free_port()
        token = session_token(env)
        server = procs.start(
            [sys.executable, "manage.py", "runmonitor", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
        )
        ours_base = f"http://127.0.0.1:{port}"
        wait_http(f"{ours_base}/healthz", timeout=60)
        names = perf_promql.dashboard_names()
        from monitoring.metrics import parse_metrics

        present = set(parse_metrics(httpx.get(f"{members[0]['url']}/metrics").text))
        result["query"] = query_both(
            ours_base,
            token,
            prom_base,
            members[0]["id"],
            names,
            present,
            result["dataset"]["ours"]["last_ts"],
            args.runs,
        )
        procs.stop(prom_q)

        if "wrk" not in skip:
            result["throughput"] = throughput(ours_base, token, args.runs, args.wrk_seconds)
            # The same server with its per-process caches off: what each request costs when
            # every one reads PostgreSQL (reported beside the default configuration's figures).
            uncached_port = free_port()
            uncached = procs.start(
                [sys.executable, "manage.py", "runmonitor", "--bind", f"127.0.0.1:{uncached_port}"],
                cwd=ROOT,
                env={**env, **UNCACHED},
            )
            uncached_base = f"http://127.0.0.1:{uncached_port}"
            wait_http(f"{uncached_base}/healthz", timeout=60)
            result["throughput_uncached"] = throughput(
                uncached_base, token, args.runs, args.wrk_seconds
            )
            procs.stop(uncached)
        if "ingest" not in skip:
            result["ingest"] = ingest_cpu(procs, work, env, members, args.runs, args.scrape_window)
        procs.stop(server)
        cluster.remove()
        cluster = None

        if "kv" not in skip:
            log("item 6: bench/kv_tree.py ...")
            result["kv"] = sub_bench("kv_tree", work, args.runs, "--keys", str(args.kv_keys))
        if "snapshot" not in skip:
            log("item 6: bench/ops_snapshot.py ...")
            result["snapshot"] = sub_bench(
                "ops_snapshot", work, args.runs, "--size-mb", str(args.snapshot_mb)
            )
    finally:
        procs.stop_all()
        if cluster is not None:
            cluster.remove()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["load_end"] = loadavg()
    result["wall_s"] = time.perf_counter() - began
    log(f"load average at end: {result['load_end']}; total {result['wall_s']:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "performance.json").write_text(json.dumps(result, indent=2, default=str))
    (args.out / "PERFORMANCE.md").write_text(perf_report.render(result))
    log(f"wrote {args.out / 'PERFORMANCE.md'} and {args.out / 'performance.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
