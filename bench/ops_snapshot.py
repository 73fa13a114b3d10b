"""Snapshot download: ours (through the real WSGI server) vs `etcdctl snapshot save`, same run.

    .venv/bin/python bench/ops_snapshot.py [--size-mb 210] [--runs 5] [--json out.json]

Fills a one-member etcd with incompressible values, starts `manage.py runmonitor` (embedded mode,
fresh SQLite) against it, then alternates etcdctl and our `/api/ops/snapshot` download. Prints the
median throughput of each, the ratio, and the server's RSS growth during our downloads.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.localcluster import LocalEtcdCluster, free_port  # noqa: E402


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


class RssSampler(threading.Thread):
    """Peak RSS of a process, sampled every 10 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop_event = pid, 0, threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def fill(endpoint: str, size_mb: int) -> None:
    """`size_mb` incompressible 1 MiB values."""
    import pyetcd

    host, port = endpoint.removeprefix("http://").split(":")
    client = pyetcd.client(host=host, port=int(port), timeout=30)
    for i in range(size_mb):
        client.put(f"/bench/blob/{i:05d}", os.urandom(1024 * 1024))
    client.close()


def first_member_id(endpoint: str) -> str:
    import pyetcd

    host, port = endpoint.removeprefix("http://").split(":")
    client = pyetcd.client(host=host, port=int(port))
    try:
        return str(next(iter(client.members)).id)
    finally:
        client.close()


def server_env(data_dir: Path, endpoints: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "DJANGO_"))}
    env.pop("CELERY_BROKER_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(
        DATA_DIR=str(data_dir),
        ETCD_ENDPOINTS=endpoints,
        COLLECTOR_INTERVAL="3600",
        LOG_LEVEL="WARNING",
    )
    return env


def session_token(env: dict) -> str:
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from accounts.services import session_create\n"
        "user, _ = get_user_model().objects.get_or_create(username='bench')\n"
        "print(session_create(user=user)[0])\n"
    )
    out = subprocess.check_output(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, text=True
    )
    return out.strip().splitlines()[-1]


def run_etcdctl(endpoint: str, target: Path) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            "etcdctl",
            f"--endpoints={endpoint}",
            "snapshot",
            "save",
            str(target),
        ],
        capture_output=True,
        text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin"},
        check=True,
    )
    elapsed = time.perf_counter() - started
    peak_kib = int(result.stderr.strip().splitlines()[-1])
    size = target.stat().st_size
    target.unlink()
    return size / elapsed / 1e6, peak_kib


def run_ours(base: str, token: str, member_id: str, worker_pid: int) -> tuple[float, int, int]:
    before = rss_kib(worker_pid)
    sampler = RssSampler(worker_pid)
    sampler.start()
    size = 0
    started = time.perf_counter()
    with httpx.stream(
        "GET",
        f"{base}/api/ops/snapshot",
        params={"member_id": member_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes(1024 * 1024):
            size += len(chunk)
    elapsed = time.perf_counter() - started
    peak = sampler.stop()
    return size / elapsed / 1e6, max(0, peak - before), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=210)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    cluster = LocalEtcdCluster(
        work / "etcd", size=1, extra_args=["--quota-backend-bytes=8589934592"]
    ).start()
    server = None
    try:
        endpoint = cluster.client_urls[0]
        print(f"filling {args.size_mb} MB into {endpoint} ...", flush=True)
        fill(endpoint, args.size_mb)
        env = server_env(work / "data", endpoint)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        token = session_token(env)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runmonitor", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        workers = children(server.pid)
        member_id = first_member_id(endpoint)

        theirs, ours = [], []
        for run in range(args.runs):  # alternate, so drift affects both sides alike
            theirs.append(run_etcdctl(endpoint, work / f"etcdctl-{run}.db"))
            ours.append(run_ours(base, token, member_id, workers[0]))
            print(
                f"run {run + 1}: etcdctl {theirs[-1][0]:.1f} MB/s, ours {ours[-1][0]:.1f} MB/s",
                flush=True,
            )
        result = {
            "snapshot_bytes": ours[-1][2],
            "etcdctl_mb_per_s": statistics.median(t[0] for t in theirs),
            "etcdctl_peak_rss_mib": statistics.median(t[1] for t in theirs) / 1024,
            "ours_mb_per_s": statistics.median(o[0] for o in ours),
            "ours_rss_growth_mib": max(o[1] for o in ours) / 1024,
            "runs": args.runs,
        }
        result["throughput_ratio"] = result["ours_mb_per_s"] / result["etcdctl_mb_per_s"]
        print(f"\nsnapshot of {result['snapshot_bytes'] / 1e6:.0f} MB, median of {args.runs} runs")
        print(
            f"  etcdctl snapshot save : {result['etcdctl_mb_per_s']:7.1f} MB/s  "
            f"(peak RSS {result['etcdctl_peak_rss_mib']:.0f} MiB)"
        )
        print(
            f"  GET /api/ops/snapshot : {result['ours_mb_per_s']:7.1f} MB/s  "
            f"(server RSS growth {result['ours_rss_growth_mib']:.1f} MiB)"
        )
        print(
            f"  ratio ours/etcdctl    : {result['throughput_ratio']:.2f}  (goal >= 0.9; "
            "RSS growth goal <= 50 MiB)"
        )
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return 0
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
        cluster.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
