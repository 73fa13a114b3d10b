"""Dashboard load on loopback: N concurrent clients of mixed dashboard calls via the real server.

    .venv/bin/python bench/load_dashboard.py [--clients 50] [--seconds 60] [--json out.json]

Starts a private 3-member etcd, a fresh database of its own on the local PostgreSQL (dropped at
the end; `--database-url` picks another server) and `manage.py runmonitor` in embedded mode (no
broker) collecting every 2 s. After one client has measured the mix alone (the baseline), the
clients each loop over the calls the dashboard makes — status, members, current, a ~140-metric
range query, auth status, healthz, the KV key tree — while one more client keeps downloading a
snapshot. Prints requests/s, errors, p50/p99 under load next to the single-client baseline, and
the snapshot downloads completed. Everything it starts is stopped by PID.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.localcluster import LocalEtcdCluster, free_port  # noqa: E402

SHARED_POSTGRES = "postgres://postgres@127.0.0.1:5432"
PASSWORD = "load-bench-admin-pw"  # noqa: S105 - a throwaway local instance


def mix(member_id: str, metric_names: str) -> list[tuple[str, str, dict]]:
    return [
        ("GET", "/api/status", {}),
        ("GET", "/api/members", {}),
        ("GET", "/api/current", {"member_id": member_id}),
        ("GET", "/api/range", {"metrics": metric_names, "range": "1h", "member_id": member_id}),
        ("GET", "/api/auth/status", {}),
        ("GET", "/healthz", {}),
        ("GET", "/api/kv/v3/keys", {}),
    ]


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-q", "-c", sql], check=True, capture_output=True, timeout=60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def add(self, latency: float, error: str = "") -> None:
        with self.lock:
            self.latencies.append(latency)
            if error:
                self.errors.append(error)


def client_loop(base, token, calls, stats: Stats, stop: threading.Event, offset: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        index = offset
        while not stop.is_set():
            method, path, params = calls[index % len(calls)]
            index += 1
            started = time.perf_counter()
            try:
                response = http.request(method, path, params=params)
                error = "" if response.status_code == 200 else f"{path} {response.status_code}"
                response.read()
            except httpx.HTTPError as exc:
                error = f"{path} {type(exc).__name__}"
            stats.add(time.perf_counter() - started, error)


def snapshot_loop(base, token, member_id, stop: threading.Event, result: dict) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        while not stop.is_set():
            try:
                with http.stream(
                    "GET", "/api/ops/snapshot", params={"member_id": member_id}
                ) as response:
                    size = sum(len(chunk) for chunk in response.iter_bytes())
                if response.status_code == 200 and size > 0:
                    result["downloads"] += 1
                    result["bytes"] += size
                else:
                    result["errors"].append(f"snapshot {response.status_code}")
            except httpx.HTTPError as exc:
                result["errors"].append(f"snapshot {type(exc).__name__}")


def run_phase(base, token, calls, clients: int, seconds: float, member_id: str | None = None):
    """`clients` loops for `seconds` (plus a snapshot loop when member_id is given)."""
    stats, stop = Stats(), threading.Event()
    snapshot = {"downloads": 0, "bytes": 0, "errors": []}
    threads = [
        threading.Thread(target=client_loop, args=(base, token, calls, stats, stop, i))
        for i in range(clients)
    ]
    if member_id:
        threads.append(
            threading.Thread(target=snapshot_loop, args=(base, token, member_id, stop, snapshot))
        )
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=150)
    elapsed = time.perf_counter() - started
    lat = stats.latencies
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(lat),
        "requests_per_s": round(len(lat) / elapsed, 1),
        "errors": len(stats.errors),
        "error_samples": sorted(set(stats.errors))[:10],
        "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
        "p99_ms": round(percentile(lat, 0.99) * 1000, 1),
        "max_ms": round(max(lat) * 1000, 1) if lat else None,
        "snapshot_downloads": snapshot["downloads"],
        "snapshot_mb": round(snapshot["bytes"] / 2**20, 1),
        "snapshot_errors": snapshot["errors"][:10],
    }


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("server not ready")
        time.sleep(0.3)


def run_load(
    *, clients: int, seconds: float, database_server: str = SHARED_POSTGRES, baseline_s: float = 10
) -> dict:
    """The whole run; returns {"baseline": ..., "load": ...}."""
    work = Path(tempfile.mkdtemp(prefix="load-dashboard-"))
    cluster = LocalEtcdCluster(work / "etcd").start()
    db_name = f"etcdmonitor_load_{uuid.uuid4().hex[:8]}"
    _psql(f"{database_server}/postgres", f"create database {db_name}")
    server = None
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "DJANGO_"))}
        env.pop("CELERY_BROKER_URL", None)
        env.update(
            DATA_DIR=str(work / "data"),
            DATABASE_URL=f"{database_server}/{db_name}",
            ETCD_ENDPOINTS=cluster.endpoints,
            COLLECTOR_INTERVAL="2",
            LOG_LEVEL="WARNING",
            DJANGO_SECRET_KEY="load-bench-" + uuid.uuid4().hex * 2,
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT, env=env, check=True, timeout=300,
        )  # fmt: skip
        port = free_port()
        log = open(work / "server.log", "wb")  # noqa: SIM115 - owned by the child
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runmonitor", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            _wait(lambda: http.get("/healthz").status_code == 200, 60)
            initial = (work / "data" / "initial-admin-password").read_text().strip()
            http.post(
                "/api/auth/change-password",
                json={"username": "admin", "old_password": initial, "new_password": PASSWORD},
            ).raise_for_status()
            login = http.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
            token = login.json()["session_token"]
            http.headers["Authorization"] = f"Bearer {token}"
            _wait(lambda: http.get("/api/members").status_code == 200, 60)
            members = http.get("/api/members").json()
            _wait(lambda: http.get("/api/status").json()["collector_up"], 30)
            # The dashboard's range query asks for every metric it charts (~140 names).
            current = http.get("/api/current").json()["metrics"]
            names = ",".join(sorted(current)[:140])
        member_id = members["default_member_id"]
        calls = mix(member_id, names)
        baseline = run_phase(base, token, calls, 1, baseline_s)
        load = run_phase(base, token, calls, clients, seconds, member_id=member_id)
        load["server_alive"] = server.poll() is None
        return {"baseline": baseline, "load": load}
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        cluster.remove()
        _psql(f"{database_server}/postgres", f"drop database if exists {db_name} with (force)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--database-url", default=SHARED_POSTGRES, help="server, no db name")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run_load(clients=args.clients, seconds=args.seconds, database_server=args.database_url)
    base, load = result["baseline"], result["load"]
    loaded = f"{load['clients']} clients + snapshot"
    print(f"{'':28}{'1 client (baseline)':>22}{loaded:>26}")
    for key in ("requests", "requests_per_s", "errors", "p50_ms", "p99_ms", "max_ms"):
        print(f"{key:28}{base[key]!s:>22}{load[key]!s:>26}")
    print(
        f"snapshot downloads during load: {load['snapshot_downloads']} ({load['snapshot_mb']} MB)"
    )
    if load["error_samples"] or load["snapshot_errors"]:
        print("errors:", load["error_samples"], load["snapshot_errors"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if load["errors"] == 0 and not load["snapshot_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
