"""The HTTP server we ship (`manage.py runmonitor`), tried as other clients and attackers would.

Every test talks to a real `runmonitor` process over loopback sockets, never the test client:
the limits under test are enforced before Django sees the request.
"""

import asyncio
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from uvicorn import Config

from etcdmonitor_site.server import OncePerSecondServer
from tests.servers import runmonitors

# What the reference product's own front end asks for besides our panels' series: its banner,
# the series of charts it draws that we name differently, and the names it requests that no
# etcd exports (it sends them anyway, so they must not break the request).
REFERENCE_EXTRA_NAMES = [
    "process_cpu_usage_percent",
    "process_resident_memory_bytes",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_mvcc_keys_total",
    "etcd_lease_count",
    "etcd_server_is_leader",
    "etcd_server_client_requests_v35_rate",
    "etcd_server_client_requests_v34_rate",
    "etcd_server_client_requests_unknown_rate",
    "etcd_server_heartbeat_send_failures_total_rate",
    "etcd_server_health_failures_rate",
    "etcd_server_read_indexes_failed_total_rate",
    "etcd_mvcc_db_compaction_pause_duration_p99",
    "etcd_mvcc_db_compaction_total_duration_p99",
    "etcd_mvcc_db_compaction_keys_total_rate",
    "grpc_server_handled_ok_total",
    "grpc_server_handled_error_total",
    *(f"grpc_method_{n}_count" for n in range(10)),
]
HISTOGRAM_PREFIXES = [
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_network_peer_round_trip_time_seconds",
    "etcd_snap_db_fsync_duration_seconds",
    "etcd_disk_backend_snapshot_duration_seconds",
    "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
    "etcd_debugging_snap_save_total_duration_seconds",
    "grpc_server_handling_seconds",
    "etcd_disk_backend_defrag_duration_seconds",
    "etcd_disk_commit_rebalance_duration_seconds",
    "etcd_disk_commit_spill_duration_seconds",
    "etcd_disk_commit_write_duration_seconds",
    "etcd_mvcc_hash_duration_seconds",
    "etcd_mvcc_hash_rev_duration_seconds",
    "etcd_snap_db_save_total_duration_seconds",
]


def reference_front_end_names() -> list[str]:
    """The union the reference front end sends in one /api/range request (about 131 names)."""
    from monitoring.panels import dashboard_registry

    registry = dashboard_registry()
    names = {series["metric"] for panel in registry["panels"] for series in panel["series"]}
    names |= {card["metric"] for card in registry["cards"] if card["metric"]}
    names |= set(REFERENCE_EXTRA_NAMES)
    names |= {f"{prefix}_{q}" for prefix in HISTOGRAM_PREFIXES for q in ("p50", "p90", "p99")}
    names |= {f"{prefix}_count" for prefix in HISTOGRAM_PREFIXES}
    return sorted(names)


class Server:
    def __init__(self, port: int, data_dir: Path, process: subprocess.Popen):
        self.port, self.data_dir, self.process = port, data_dir, process

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 10):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = json.dumps(body) if isinstance(body, dict) else body
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def raw(self, data: bytes, timeout: float = 10) -> bytes:
        """Send bytes as they are and return everything the server answers before closing."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            return received

    def token(self) -> str:
        """Sign in as the bootstrap admin (changing the initial password first)."""
        initial = (self.data_dir / "initial-admin-password").read_text().strip()
        new_password = "a-Long-test-passphrase-42"
        status, _, body = self.request(
            "POST",
            "/api/auth/change-password",
            {"username": "admin", "old_password": initial, "new_password": new_password},
        )
        assert status == 200, body
        status, _, body = self.request(
            "POST", "/api/auth/login", {"username": "admin", "password": new_password}
        )
        assert status == 200, body
        return json.loads(body)["session_token"]

    def rss_kib(self) -> int:
        """Resident memory of the server and its workers."""
        pids = [self.process.pid, *_children(self.process.pid)]
        total = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@pytest.fixture
def monitor_server(tmp_path, etcd_cluster):
    """Start `manage.py runmonitor` (embedded by default, or with a broker) and stop it by PID."""
    endpoints = ",".join(etcd_cluster.client_urls)
    with runmonitors(tmp_path, ETCD_ENDPOINTS=endpoints, COLLECTOR_INTERVAL="2") as start_one:

        def start(*, broker: bool = False, **overrides) -> Server:
            if broker:
                overrides.update(
                    CELERY_BROKER_URL=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
                    DJANGO_SECRET_KEY="x" * 50 + "-test-only-secret",
                )
            started = start_one(**overrides)
            return Server(started.port, started.data_dir, started.process)

        yield start


def _json_error(raw: bytes) -> tuple[int, dict, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body)


def test_the_reference_front_ends_chart_request_is_answered_with_charts(monitor_server):
    server = monitor_server()
    token = server.token()
    auth = {"Authorization": f"Bearer {token}"}
    status, _, body = server.request("GET", "/api/members", headers=auth)
    assert status == 200, body
    member_id = json.loads(body)["members"][0]["id"]
    names = reference_front_end_names()
    assert len(names) >= 131
    path = "/api/range?" + urllib.parse.urlencode(
        {"metrics": ",".join(names), "range": "1h", "member_id": member_id}, safe=","
    )
    assert len(path) > 4700, "as long as the reference front end's request line"

    deadline = time.monotonic() + 30
    while True:  # the collector (every 2 s here) must have stored something first
        status, headers, body = server.request("GET", path, headers=auth)
        assert status == 200, body[:300]
        assert headers["content-type"] == "application/json"
        series = json.loads(body)["metrics"] or {}
        if "etcd_server_has_leader" in series:
            break
        assert time.monotonic() < deadline, f"no charted series after 30 s: {sorted(series)}"
        time.sleep(1)
    assert series["etcd_server_has_leader"][-1]["value"] == 1


def test_a_request_line_of_16_kib_is_served(monitor_server):
    server = monitor_server()
    status, headers, _body = server.request("GET", "/api/range?metrics=" + "a" * 16384)
    assert status == 401, "it reached Django (which asks for a token), not a size limit"
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (
            b"GET /api/range?metrics=" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "request_line_too_long",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (1 << 20) + b"\r\n\r\n",
            431,
            "headers_too_large",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 100_000 + b"\r\n",
            431,
            "headers_too_large",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
    ],
    ids=["request-line-1MiB", "header-1MiB", "100k-headers", "garbage", "malformed-header"],
)
def test_limits_in_front_of_django_answer_in_json(monitor_server, request_bytes, status, code):
    server = monitor_server()
    answered_status, headers, body = _json_error(server.raw(request_bytes))
    assert answered_status == status
    assert headers["content-type"] == "application/json"
    assert body["code"] == code and body["error"]


def test_a_body_over_the_limit_is_a_json_413_whether_declared_or_chunked(monitor_server):
    server = monitor_server(REQUEST_BODY_MAX_BYTES="100000")
    big = json.dumps({"username": "admin", "password": "x" * 200_000})
    status, headers, body = server.request("POST", "/api/auth/login", big)
    assert (status, headers["content-type"]) == (413, "application/json")
    assert json.loads(body) == {"error": "request body too large", "code": "body_too_large"}

    chunks = b"".join(b"%x\r\n%s\r\n" % (10_000, b"y" * 10_000) for _ in range(20)) + b"0\r\n\r\n"
    raw = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks
    )
    status, headers, body = _json_error(server.raw(raw))
    assert (status, body["code"]) == (413, "body_too_large")

    # Just under the limit is read and reaches Django (a wrong password, not a size error).
    status, _, body = server.request(
        "POST", "/api/auth/login", json.dumps({"username": "nobody", "password": "p" * 90_000})
    )
    assert status in (400, 401), body


def test_a_request_head_that_never_ends_is_closed_with_a_json_408(monitor_server):
    server = monitor_server(HTTP_REQUEST_TIMEOUT="2")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status, _, body = _json_error(received)
    assert (status, body["code"]) == (408, "request_timeout")
    assert 1.5 < time.monotonic() - started < 8


class SlowClients:
    """`count` connections that trickle a request, one header line (or body byte) per second."""

    def __init__(self, port: int, count: int):
        self.port, self.count = port, count
        self.sockets: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self):
        for n in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if n % 2:  # a complete head, then a body that never finishes
                sock.sendall(
                    b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
                )
            else:  # a head that never finishes
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            self.sockets.append(sock)
        self.thread.start()
        return self

    def _trickle(self):
        while not self.stop.wait(1.0):
            for n, sock in enumerate(self.sockets):
                with contextlib.suppress(OSError):
                    sock.sendall(b" " if n % 2 else b"X-Slow: 1\r\n")

    def still_open(self) -> int:
        alive = 0
        for sock in self.sockets:
            try:
                sock.sendall(b" ")
                alive += 1
            except OSError:
                pass
        return alive

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


@pytest.mark.parametrize("broker", [False, True], ids=["make-run", "compose-like"])
def test_two_hundred_slow_clients_do_not_starve_healthz(monitor_server, broker):
    server = monitor_server(broker=broker)
    with SlowClients(server.port, 200) as slow:
        time.sleep(1.5)  # every slow connection has been accepted and is trickling
        latencies = []
        for _ in range(60):
            started = time.monotonic()
            status, _, body = server.request("GET", "/healthz", timeout=5)
            latencies.append(time.monotonic() - started)
            assert status == 200, body
            time.sleep(0.05)
        assert slow.still_open() >= 190, "the slow clients were held, not dropped"
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(
        f"/healthz with 200 slow clients: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms"
    )
    assert p99 < 1.0


def test_the_date_header_follows_the_clock_with_one_housekeeping_wake_a_second(monitor_server):
    """The server's housekeeping loop wakes once a second (OncePerSecondServer), not ten times:
    the Date header it refreshes still follows the clock."""
    server = monitor_server()
    _, first, _ = server.request("GET", "/healthz")
    time.sleep(2.2)
    _, second, _ = server.request("GET", "/healthz")
    first_at, second_at = (
        parsedate_to_datetime(first["date"]),
        parsedate_to_datetime(second["date"]),
    )
    assert 1 <= (second_at - first_at).total_seconds() <= 4
    assert abs(time.time() - second_at.timestamp()) <= 2


def test_a_shutdown_signal_wakes_the_housekeeping_loop_at_once():
    """handle_exit (uvicorn's SIGTERM/SIGINT handler) ends the loop without waiting for the next
    tick: here a tick a minute long, which the loop must not sit out."""

    async def app(scope, receive, send):  # never called: no connection is made
        raise AssertionError(scope)

    class SlowTicking(OncePerSecondServer):
        TICK_SECONDS = 60.0

    config = Config(app=app, lifespan="off", log_config=None)
    config.load()
    server = SlowTicking(config=config)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, server.handle_exit, signal.SIGTERM, None)
        started = loop.time()
        await asyncio.wait_for(server.main_loop(), 30)
        return loop.time() - started

    # A loop of its own on a thread of its own: earlier tests (Playwright's sync API) may
    # leave one running on this thread.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, run()).result(timeout=60) < 30
    assert server.should_exit
