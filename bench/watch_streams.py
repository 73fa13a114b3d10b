"""Live watches beside normal requests: what open streams cost the rest of the server.

    .venv/bin/python bench/watch_streams.py [--streams 60] [--requests 300] [--rate 100]
        [--seconds 10] [--json out.json]

Starts a private 3-member etcd and `manage.py runmonitor` (embedded mode, default WEB_THREADS,
the per-user cap raised to `--streams`), signs in, and measures:

1. **Normal requests**: latency of `--requests` sequential `GET /api/kv/v3/list` (p50/p99),
   with no stream open, with `--streams` open watches of one prefix and nothing changing, and
   while a writer puts to that prefix through the API at `--rate` puts/s (each put reaches
   every stream; the bench's own reader threads share the machine).
2. **Delivery**: put (send time inside the value) to frame arrival at each stream, p50/p99/max,
   and frames delivered / expected.
3. **Memory**: the server's RSS with the streams open, minus before, per stream.
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.localcluster import LocalEtcdCluster  # noqa: E402
from tests.servers import start_runmonitor  # noqa: E402

PASSWORD = "bench-watch-passphrase-1"  # noqa: S105 - a throwaway server's admin
PREFIX = "/bench-watch/"


def rss_kib(pid: int) -> int:
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def request_latencies(client: httpx.Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get("/api/kv/v3/list", params={"prefix": PREFIX})
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return out


class Reader(threading.Thread):
    """One stream: records (send time → arrival) of each put frame."""

    def __init__(self, base: str, token: str):
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=None))
        self.token = token
        self.ready = threading.Event()
        self.delays: list[float] = []

    def run(self):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        try:
            with self.client.stream(
                "GET", "/api/kv/v3/watch", params={"prefix": PREFIX}, headers=headers
            ) as response:
                assert response.status_code == 200, response.read()
                for line in response.iter_lines():
                    if line.startswith("event: ready"):
                        self.ready.set()
                    elif line.startswith("data: ") and '"value"' in line:
                        sent = float(json.loads(line[6:])["value"])
                        self.delays.append((time.time() - sent) * 1000)
        except httpx.HTTPError:
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=60)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="watch-bench-"))
    cluster = LocalEtcdCluster(work / "etcd").start()
    server = None
    try:
        server = start_runmonitor(
            work,
            ETCD_ENDPOINTS=",".join(cluster.client_urls),
            JOURNAL_ENABLED="false",
            WATCH_MAX_PER_USER=str(args.streams),
            WATCH_MAX_STREAMS=str(args.streams + 4),
        )
        initial = server.initial_password()
        httpx.post(
            f"{server.url}/api/auth/change-password",
            json={"username": "admin", "old_password": initial, "new_password": PASSWORD},
        ).raise_for_status()
        token = httpx.post(
            f"{server.url}/api/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()["session_token"]
        auth = {"Authorization": f"Bearer {token}"}
        client = httpx.Client(base_url=server.url, headers=auth, timeout=30)
        request_latencies(client, 20)  # warm up
        idle = request_latencies(client, args.requests)
        rss_before = rss_kib(server.process.pid)

        readers = [Reader(server.url, token) for _ in range(args.streams)]
        for reader in readers:
            reader.start()
        for reader in readers:
            assert reader.ready.wait(30), "a stream did not open"
        rss_open = rss_kib(server.process.pid)
        quiet = request_latencies(client, args.requests)

        stop = threading.Event()
        puts = [0]

        def writer():
            writes = httpx.Client(base_url=server.url, headers=auth, timeout=30)
            interval = 1 / args.rate
            next_at = time.monotonic()
            while not stop.is_set():
                writes.put(
                    "/api/kv/v3/put",
                    json={"key": f"{PREFIX}{puts[0] % 50}", "value": repr(time.time())},
                ).raise_for_status()
                puts[0] += 1
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

        writing = threading.Thread(target=writer, daemon=True)
        writing.start()
        time.sleep(1)
        loaded = request_latencies(client, args.requests)
        time.sleep(max(0.0, args.seconds - 1))
        stop.set()
        writing.join()
        time.sleep(2)  # the last frames arrive
        delays = [d for reader in readers for d in reader.delays]
        result = {
            "streams": args.streams,
            "rate_target": args.rate,
            "puts": puts[0],
            "list_ms_no_streams": {"p50": pct(idle, 0.5), "p99": pct(idle, 0.99)},
            "list_ms_streams_quiet": {"p50": pct(quiet, 0.5), "p99": pct(quiet, 0.99)},
            "list_ms_streams_busy": {"p50": pct(loaded, 0.5), "p99": pct(loaded, 0.99)},
            "delivery_ms": {
                "p50": pct(delays, 0.5),
                "p99": pct(delays, 0.99),
                "max": max(delays) if delays else None,
            },
            "frames_delivered": len(delays),
            "frames_expected": puts[0] * args.streams,
            "rss_kib_per_stream": (rss_open - rss_before) / args.streams,
            "mean_list_ms_no_streams": statistics.fmean(idle),
        }
        print(json.dumps(result, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    finally:
        if server is not None:
            server.stop()
        cluster.remove()


if __name__ == "__main__":
    main()
