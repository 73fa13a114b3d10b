"""Issue 22 item 6: the live watch, `GET /api/kv/v3/watch`, against the server we ship.

Every test talks to a real `manage.py runmonitor` (uvicorn in gunicorn) over loopback sockets and
a real etcd cluster: the stream's limits live in the ASGI layer, which the test client skips.
"""

import base64
import json
import os
import socket
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from audit.models import AuditLog
from etcdgateway import ClusterConfig, ClusterGateway, cluster_gateway
from tests.servers import runmonitors

PASSWORD = "a-Long-test-passphrase-42"


class Sse:
    """One open event stream read on a thread: `frames` as (kind, data) in arrival order, where
    kind is the event name or "comment"; `ended` once the server ended the response."""

    def __init__(self, base: str, path: str, headers: dict):
        self.frames: list[tuple[str, object]] = []
        self.ended = threading.Event()
        self.status = None
        self.body = b""
        self._opened = threading.Event()
        self._client = httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=None))
        self._thread = threading.Thread(target=self._run, args=(path, headers), daemon=True)
        self._thread.start()
        assert self._opened.wait(15), "no answer to the watch request"

    def _run(self, path, headers):
        try:
            with self._client.stream("GET", path, headers=headers) as response:
                self.status = response.status_code
                self.headers = response.headers
                if response.status_code != 200:
                    self.body = response.read()
                    self._opened.set()
                    return
                self._opened.set()
                event, data = None, None
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.frames.append(("comment", line[1:].strip()))
                    elif line.startswith("event: "):
                        event = line[len("event: ") :]
                    elif line.startswith("data: "):
                        data = json.loads(line[len("data: ") :])
                    elif line == "" and event is not None:
                        self.frames.append((event, data))
                        event, data = None, None
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()
            self.ended.set()

    def events(self, *kinds: str) -> list:
        return [(k, d) for k, d in list(self.frames) if not kinds or k in kinds]

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "frames"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout} s: {self.frames[-10:]}")

    def close(self):
        self._client.close()
        self._thread.join(5)


class WatchServer:
    def __init__(self, started):
        self.url, self.port, self.started = started.url, started.port, started.process
        self.data_dir = started.data_dir
        self.log = started.log
        initial = started.initial_password()
        response = httpx.post(
            f"{self.url}/api/auth/change-password",
            json={"username": "admin", "old_password": initial, "new_password": PASSWORD},
        )
        assert response.status_code == 200, response.text
        self.streams: list[Sse] = []

    def login(self) -> str:
        response = httpx.post(
            f"{self.url}/api/auth/login", json={"username": "admin", "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return response.json()["session_token"]

    def watch(self, token: str, prefix: str, *, cookie: bool = False, **params) -> Sse:
        query = urllib.parse.urlencode({"prefix": prefix, **params})
        headers = (
            {"Cookie": f"etcdmonitor_session={token}"}
            if cookie
            else {"Authorization": f"Bearer {token}"}
        )
        headers["Accept"] = "text/event-stream"  # what a browser's EventSource sends
        stream = Sse(self.url, f"/api/kv/v3/watch?{query}", headers)
        self.streams.append(stream)
        return stream

    def get(self, path: str, token: str):
        return httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"})

    def rss_kib(self) -> int:
        total = 0
        pids = [self.started.pid, *_children(self.started.pid)]
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total

    def close_streams(self):
        for stream in self.streams:
            stream.close()
        self.streams.clear()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _ready(stream: Sse) -> bool:
    return bool(stream.events("ready"))


@pytest.fixture(scope="module")
def watch_server(tmp_path_factory, etcd_cluster):
    """One server for the module: 2 Django threads (fewer than the streams the tests hold open),
    a 1 s heartbeat and a small per-stream buffer (for the slow client)."""
    directory = tmp_path_factory.mktemp("watch-server")
    endpoints = ",".join(etcd_cluster.client_urls)
    with runmonitors(
        directory,
        ETCD_ENDPOINTS=endpoints,
        WEB_THREADS="2",
        WATCH_HEARTBEAT_SECONDS="1",
        WATCH_BUFFER_BYTES=str(256 * 1024),
        JOURNAL_ENABLED="false",
    ) as start:
        yield WatchServer(start())


@pytest.fixture
def server(watch_server):
    yield watch_server
    watch_server.close_streams()


def test_events_arrive_in_order_with_their_values(server, kv_prefix):
    token = server.login()
    stream = server.watch(token, kv_prefix)
    assert stream.status == 200, stream.body
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "x-etcdmonitor-stream" not in stream.headers, "the internal ticket never leaves"
    stream.wait_for(_ready, what="ready")
    gateway = cluster_gateway()
    gateway.put(f"{kv_prefix}a".encode(), b"first", ttl=None)
    gateway.put(f"{kv_prefix}b".encode(), "zwei ü".encode(), ttl=None)
    gateway.put(f"{kv_prefix}bin".encode(), b"\xff\x00\xfe", ttl=None)
    gateway.delete(f"{kv_prefix}a".encode())
    gateway.put(b"/elsewhere-not-watched", b"x", ttl=None)
    stream.wait_for(lambda s: len(s.events("put", "delete")) >= 4, what="four events")
    time.sleep(0.5)
    events = stream.events("put", "delete")
    assert [(kind, data["key"]) for kind, data in events] == [
        ("put", f"{kv_prefix}a"),
        ("put", f"{kv_prefix}b"),
        ("put", f"{kv_prefix}bin"),
        ("delete", f"{kv_prefix}a"),
    ]
    revisions = [data["revision"] for _, data in events]
    assert revisions == sorted(revisions) and len(set(revisions)) == 4
    assert revisions[0] > stream.events("ready")[0][1]["revision"]
    assert events[0][1]["value"] == "first" and "encoding" not in events[0][1]
    assert events[1][1]["value"] == "zwei ü"
    assert events[2][1]["encoding"] == "base64"
    assert base64.b64decode(events[2][1]["value"]) == b"\xff\x00\xfe"
    assert events[3][1]["value"] == ""
    assert all(data["lease"] == 0 for _, data in events)
    gateway.delete(b"/elsewhere-not-watched")


def test_the_dashboard_cookie_opens_a_watch_too(server, kv_prefix):
    token = server.login()
    stream = server.watch(token, kv_prefix, cookie=True)
    assert stream.status == 200, stream.body
    stream.wait_for(_ready, what="ready")


def test_without_credentials_the_watch_is_401_json(server):
    response = httpx.get(f"{server.url}/api/kv/v3/watch?prefix=/x")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert "error" in response.json()


def test_someone_elses_or_unknown_cluster_is_404(server):
    token = server.login()
    stream = server.watch(token, "/x", cluster_id="999999")
    assert stream.status == 404
    body = json.loads(stream.body)
    assert body["error"] and body["code"]


def test_a_fifth_stream_is_429_and_a_closed_one_frees_its_place(server, kv_prefix):
    token = server.login()
    streams = [server.watch(token, kv_prefix) for _ in range(4)]
    for stream in streams:
        assert stream.status == 200, stream.body
    fifth = server.watch(token, kv_prefix)
    assert fifth.status == 429
    assert json.loads(fifth.body)["code"] == "too_many_watches"
    streams[0].close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the closed connection on its next read
        again = server.watch(token, kv_prefix)
        if again.status == 200:
            break
        assert time.monotonic() < deadline, "the closed stream's place was never freed"
        time.sleep(0.3)


def test_the_per_user_cap_holds_across_web_processes(tmp_path, etcd_cluster, kv_prefix):
    """With a broker, runmonitor serves from several processes; the cap is the user's, not each
    process's (six attempts spread over two workers: exactly four open)."""
    endpoints = ",".join(etcd_cluster.client_urls)
    with runmonitors(
        tmp_path,
        ETCD_ENDPOINTS=endpoints,
        CELERY_BROKER_URL=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        DJANGO_SECRET_KEY="x" * 50 + "-test-only-secret",
        WEB_CONCURRENCY="2",
    ) as start:
        server = WatchServer(start())
        token = server.login()
        attempts = [server.watch(token, kv_prefix) for _ in range(6)]
        statuses = sorted(stream.status for stream in attempts)
        server.close_streams()
        assert statuses == [200, 200, 200, 200, 429, 429]


def test_a_quiet_stream_carries_heartbeats(server, kv_prefix):
    stream = server.watch(server.login(), kv_prefix)
    stream.wait_for(
        lambda s: [d for k, d in s.events("comment") if d == "heartbeat"][1:],
        timeout=5,
        what="two heartbeats",
    )


def test_logout_ends_the_stream_within_5_seconds(server, kv_prefix):
    token = server.login()
    stream = server.watch(token, kv_prefix)
    stream.wait_for(_ready, what="ready")
    response = httpx.post(
        f"{server.url}/api/auth/logout", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    logged_out = time.monotonic()
    assert stream.ended.wait(10)
    assert time.monotonic() - logged_out < 5
    assert stream.events("error")[-1][1]["code"] == "session_ended"


def test_normal_requests_answer_while_more_streams_than_threads_are_open(server, kv_prefix):
    """The server has 2 Django threads; 4 open streams must hold none of them."""
    token = server.login()
    streams = [server.watch(token, kv_prefix) for _ in range(4)]
    for stream in streams:
        stream.wait_for(_ready, what="ready")
    other = server.login()
    for path in ["/api/members", "/api/kv/v3/separator", f"/api/kv/v3/list?prefix={kv_prefix}"]:
        for _ in range(3):
            response = server.get(path, other)
            assert response.status_code == 200, (path, response.text)
    assert all(not stream.ended.is_set() for stream in streams)


def test_a_client_that_never_reads_is_cut_off_not_buffered(server, kv_prefix):
    token = server.login()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    query = urllib.parse.urlencode({"prefix": kv_prefix})
    sock.sendall(
        f"GET /api/kv/v3/watch?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    sock.settimeout(15)
    head = b""
    while b"\r\n\r\n" not in head:  # the answer's head only: the rest stays unread
        head += sock.recv(512)
    assert head.startswith(b"HTTP/1.1 200"), head
    before = server.rss_kib()
    gateway = cluster_gateway()
    value = b"v" * (64 * 1024)
    written = 0
    for n in range(400):  # 25 MiB of events, 100 x the stream's buffer
        gateway.put(f"{kv_prefix}big/{n % 20}".encode(), value, ttl=None)
        written += len(value)
    time.sleep(3)
    grown = server.rss_kib() - before
    print(f"\nslow client: server RSS +{grown} KiB while {written // 1024} KiB were written")
    assert grown * 1024 < written / 4, f"server grew {grown} KiB for {written} bytes written"
    received = 0
    try:
        while chunk := sock.recv(65536):  # what was buffered, then the end
            received += len(chunk)
    except ConnectionResetError:
        pass  # the cut may reach us as a reset
    except TimeoutError:
        raise AssertionError(server.log.read_text()[-3000:]) from None
    sock.close()
    assert received < written / 2, "the stream was cut, not delivered in full"
    assert "ended: slow_client" in server.log.read_text()


def test_a_stream_ended_as_too_slow_closes_its_connection(server, kv_prefix):
    """One event larger than the stream's buffer ends it as `slow_client` at once, while the
    client still reads: the goodbye arrives, then the connection is closed, not kept alive
    (`keepalive` is 60 s) as after a response that ended normally."""
    token = server.login()
    sock = socket.create_connection(("127.0.0.1", server.port))
    query = urllib.parse.urlencode({"prefix": kv_prefix})
    sock.sendall(
        f"GET /api/kv/v3/watch?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    sock.settimeout(15)
    received = b""
    while b"event: ready" not in received:
        received += sock.recv(4096)
    cluster_gateway().put(f"{kv_prefix}huge".encode(), b"h" * (300 * 1024), ttl=None)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError("still open 15 s after the stream ended") from None
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    assert b'"code":"slow_client"' in received
    assert b"h" * 1024 not in received, "the event was not sent"


def test_a_session_that_expires_ends_its_stream(tmp_path, etcd_cluster, kv_prefix):
    endpoints = ",".join(etcd_cluster.client_urls)
    with runmonitors(
        tmp_path, ETCD_ENDPOINTS=endpoints, SESSION_TIMEOUT="6", JOURNAL_ENABLED="false"
    ) as start:
        server = WatchServer(start())
        token = server.login()
        logged_in = time.monotonic()
        stream = server.watch(token, kv_prefix)
        stream.wait_for(_ready, what="ready")
        assert stream.ended.wait(15)
        assert time.monotonic() - logged_in < 6 + 5
        assert stream.events("error")[-1][1]["code"] == "session_ended"
        stream.close()


@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_a_member_lost_under_the_watch_hands_it_to_another(tmp_path, etcd_cluster_factory, fault):
    """Decision: the stream resumes from the next revision on another member, no event lost or
    repeated. A killed member breaks the gRPC stream; a paused one keeps it open and silent,
    found by the unanswered progress request of a quiet heartbeat."""
    cluster = etcd_cluster_factory(3, point_settings=False)
    survivors = ClusterGateway(ClusterConfig(endpoints=tuple(cluster.client_urls[1:])))
    with runmonitors(
        tmp_path,
        ETCD_ENDPOINTS=",".join(cluster.client_urls),
        JOURNAL_ENABLED="false",
        WATCH_HEARTBEAT_SECONDS="1",
    ) as start:
        server = WatchServer(start())
        stream = server.watch(server.login(), "/k/")
        stream.wait_for(_ready, what="ready")
        try:
            for n in range(5):
                survivors.put(f"/k/{n}".encode(), str(n).encode(), ttl=None)
            stream.wait_for(lambda s: len(s.events("put")) >= 5, what="five puts")
            # The watch is on the first endpoint the gateway tried: the first, all being healthy.
            victim = cluster.members[0]
            if fault == "kill":
                cluster.kill_member(victim)
            else:
                cluster.pause_member(victim)
            for n in range(5, 10):
                survivors.put(f"/k/{n}".encode(), str(n).encode(), ttl=None)
            stream.wait_for(lambda s: len(s.events("put")) >= 10, timeout=30, what="ten puts")
            time.sleep(0.5)
            values = [data["value"] for _, data in stream.events("put")]
            assert values == [str(n) for n in range(10)]
            assert not stream.ended.is_set()
            log = server.log.read_text()
            assert "watch lost on" in log or "went silent" in log, "the stream did resume"
        finally:
            if fault == "pause":
                cluster.resume_member(cluster.members[0])
            stream.close()
            survivors.close()


def test_stopping_the_server_ends_open_streams_with_a_reason(tmp_path, etcd_cluster, kv_prefix):
    endpoints = ",".join(etcd_cluster.client_urls)
    with runmonitors(tmp_path, ETCD_ENDPOINTS=endpoints, JOURNAL_ENABLED="false") as start:
        started = start()
        server = WatchServer(started)
        stream = server.watch(server.login(), kv_prefix)
        stream.wait_for(_ready, what="ready")
        started.process.terminate()
        assert stream.ended.wait(15)
        assert stream.events("error")[-1][1]["code"] == "server_closing"
        stream.close()


def test_without_runmonitors_stream_layer_a_watch_is_refused(api):
    from etcdmonitor_site import streams

    response = api.get("/api/kv/v3/watch", {"prefix": "/x"})
    assert response.status_code == 503
    assert response.json()["code"] == "streams_unavailable"
    assert streams.HANDOFF_HEADER not in response


def test_a_ticket_never_handed_to_the_event_loop_gives_its_slot_back(api, user, kv_prefix):
    """A layer that marked the request but never claimed its ticket: the slot must not leak."""
    from etcdmonitor_site import streams

    api.credentials(HTTP_X_ETCDMONITOR_STREAMS="1")
    for _ in range(4):
        response = api.get("/api/kv/v3/watch", {"prefix": kv_prefix})
        assert response.status_code == 200
        assert response[streams.HANDOFF_HEADER]
    refused = api.get("/api/kv/v3/watch", {"prefix": kv_prefix})
    assert refused.status_code == 429
    assert refused.json()["code"] == "too_many_watches"
    denial = AuditLog.objects.filter(operation="kv_watch", success=False).get()
    assert (denial.username, denial.target) == (user.username, kv_prefix)
    assert streams.streams_open(user_id=user.pk) == 4
    streams.streams_sweep(unclaimed_after=0)
    assert streams.streams_open(user_id=user.pk) == 0
    assert api.get("/api/kv/v3/watch", {"prefix": kv_prefix}).status_code == 200
    streams.streams_sweep(unclaimed_after=0)
