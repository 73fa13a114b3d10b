"""Issue 15, item 3 against the real server: `manage.py runmonitor` as a subprocess takes the
red-team's burst (96 logins with random usernames, 16 at a time) while its workers' memory and
`/healthz` latency are watched.

Before the fix a worker grew from 243 to 1,029 MiB and both cores saturated. The sign-in throttles
are raised in the second run so that what bounds memory and keeps /healthz answering is the
hashing limit alone: PASSWORD_HASH_CONCURRENCY low-priority hashing threads per process, and
sign-ins beyond twice that refused at once with 503.
"""

import os
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.servers import start_runmonitor

MIB = 1024 * 1024


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


NO_THROTTLES = {
    "LOGIN_ADDRESS_FAILURE_LIMIT": "100000",
    "LOGIN_USER_FAILURE_LIMIT": "100000",
    "LOGIN_GLOBAL_FAILURES_PER_MINUTE": "100000",
}


@pytest.fixture(params=[{}, NO_THROTTLES], ids=["defaults", "hashing-limit-only"])
def server(request, tmp_path, etcd_cluster):
    started = start_runmonitor(
        tmp_path,
        ETCD_ENDPOINTS=",".join(etcd_cluster.client_urls),
        DJANGO_SECRET_KEY="burst-test-" + uuid.uuid4().hex * 2,
        **request.param,
        PASSWORD_HASH_CONCURRENCY=os.environ.get("BURST_HC", "2"),
        LOG_LEVEL="WARNING",
    )
    yield started.url, started.process
    started.stop()


def _health_during(url: str, burst, *also) -> list[float]:
    """/healthz latencies (ms) sampled every 50 ms while `burst()` runs; each of `also` is called
    over and over in a thread of its own meanwhile."""
    samples: list[float] = []
    done = threading.Event()

    def watch():
        with httpx.Client(base_url=url, timeout=10) as http:
            while not done.is_set():
                started = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                samples.append((time.perf_counter() - started) * 1000)
                time.sleep(0.05)

    def repeat(probe):
        while not done.is_set():
            probe()

    watchers = [threading.Thread(target=watch)]
    watchers += [threading.Thread(target=repeat, args=(probe,)) for probe in also]
    for watcher in watchers:
        watcher.start()
    try:
        burst()
    finally:
        done.set()
        for watcher in watchers:
            watcher.join(15)
    return samples


def test_a_login_burst_keeps_memory_bounded_and_health_answering(server):
    url, process = server
    workers = _children(process.pid)
    assert workers, "no gunicorn worker found"
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(2):  # warm up: the dummy hash, the first Argon2 allocation, connections
            http.post("/api/auth/login", json={"username": "warm-up", "password": "x"})
            http.get("/healthz")
        idle_ms = []
        for _ in range(30):  # the same machine without the burst, for comparison
            started = time.perf_counter()
            http.get("/healthz")
            idle_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)

    def cheap(_index):  # the same number of requests, refused before any sign-in work
        with httpx.Client(base_url=url, timeout=60) as http:
            return http.post("/api/auth/login", json={})

    def cheap_burst():
        with ThreadPoolExecutor(max_workers=16) as pool:
            assert {r.status_code for r in pool.map(cheap, range(96))} == {400}

    control_ms = _health_during(url, cheap_burst)
    baseline = sum(_rss_bytes(pid) for pid in workers)
    peak = [baseline]
    answers = []

    def watch_memory():
        peak[0] = max(peak[0], sum(_rss_bytes(pid) for pid in workers))
        time.sleep(0.01)

    def attempt(_index):
        with httpx.Client(base_url=url, timeout=60) as http:
            name = "burst-" + uuid.uuid4().hex[:12]
            return http.post("/api/auth/login", json={"username": name, "password": "guess"})

    def login_burst():
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers.extend(pool.map(attempt, range(96)))

    started = time.monotonic()
    health_ms = _health_during(url, login_burst, watch_memory)
    elapsed = time.monotonic() - started

    statuses = sorted({answer.status_code for answer in answers})
    growth = (peak[0] - baseline) / MIB
    p95 = statistics.quantiles(health_ms, n=20)[-1]
    print(
        f"\nburst: 96 logins in {elapsed:.1f} s, statuses {statuses}, RSS "
        f"{baseline / MIB:.0f} -> peak {peak[0] / MIB:.0f} MiB (+{growth:.0f}), /healthz "
        f"n={len(health_ms)} median {statistics.median(health_ms):.1f} ms, p95 {p95:.1f} ms, "
        f"max {max(health_ms):.1f} ms; idle /healthz median {statistics.median(idle_ms):.1f} ms, "
        f"p95 {statistics.quantiles(idle_ms, n=20)[-1]:.1f} ms; during 96 cheap requests median "
        f"{statistics.median(control_ms):.1f} ms, "
        f"p95 {statistics.quantiles(control_ms, n=20)[-1]:.1f} ms"
    )
    assert all(answer.headers["content-type"].startswith("application/json") for answer in answers)
    assert set(statuses) <= {401, 429, 503}  # checked, throttled, or refused at once as busy
    assert sum(answer.status_code == 401 for answer in answers) >= 2  # checked, not all refused
    assert growth < 300
    # The bound holds on the median. The tail on this shared 2-core machine depends on
    # what else runs (a burst of trivial requests, the control, has as long a tail), so it is
    # bounded loosely: before the hashing bound it was 2.4 s, the app effectively offline.
    assert len(health_ms) >= 10 and statistics.median(health_ms) < 100
    assert p95 < 1000
