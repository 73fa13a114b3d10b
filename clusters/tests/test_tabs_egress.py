"""Connection tests must not be a port scanner (issue 15, medium 6).

Every service that accepts the connection but is not etcd gets the same answer, whatever it
sends and however it closes; link-local addresses are refused before any connection; the
optional CLUSTER_ENDPOINT_ALLOWLIST limits tab create / patch / test.
"""

import contextlib
import socket
import threading
import time

import pytest

from audit.models import AuditLog
from clusters.models import Cluster
from clusters.tests.conftest import add_tab, dead_url
from tests.servers import canned_http_server

pytestmark = pytest.mark.django_db

CAUSE_TEXTS = {
    "connection test failed: connection refused",
    "connection test failed: connection timed out",
    "connection test failed: TLS handshake failed",
    "connection test failed: not an etcd endpoint",
    "connection test failed: authentication failed",
}


class Listener:
    """A loopback TCP listener that records every connection and what it received, and
    answers with `behaviour(conn)`."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.received: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn, contextlib.suppress(OSError):
            self.behaviour(self, conn)

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


def close_at_once(listener, conn):
    pass


def record(listener, conn):
    """Read whatever arrives for a second (what an attacker's listener would log)."""
    conn.settimeout(1.0)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except OSError:
        pass
    listener.received.append(data)


@pytest.fixture
def listener_factory():
    made = []

    def make(behaviour):
        listener = Listener(behaviour)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


@pytest.fixture
def html_server():
    with canned_http_server(
        b"<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html"
    ) as url:
        yield url


def _test_fields(client, **fields):
    return client.post("/api/kv/tabs/test", fields, format="json")


def test_every_non_etcd_service_gets_the_same_answer(api_client, html_server, listener_factory):
    closer = listener_factory(close_at_once)
    targets = {
        "redis": "http://127.0.0.1:6379",
        "postgresql": "http://127.0.0.1:5432",
        "html": html_server,
        "closes": closer.url,
    }

    answers = {}
    for name, url in targets.items():
        response = _test_fields(api_client, endpoint=url)
        assert response.status_code == 400, (name, response.json())
        answers[name] = response.json()
        created = api_client.post("/api/kv/tabs", {"endpoint": url}, format="json")
        assert created.status_code == 400 and created.json() == answers[name], name

    first = answers["redis"]
    assert all(body == first for body in answers.values()), answers
    assert first["error"] in CAUSE_TEXTS and first["cause"] == "not_etcd"
    assert first["code"] == "KV_TAB_UNREACHABLE"
    assert not Cluster.objects.exclude(pk="default").exists()


def test_https_to_non_tls_services_is_always_tls_failed(api_client, html_server, listener_factory):
    closer = listener_factory(close_at_once)
    urls = ["https://127.0.0.1:6379", "https://127.0.0.1:5432", html_server, closer.url]
    bodies = [
        _test_fields(api_client, endpoint=url.replace("http://", "https://")).json() for url in urls
    ]

    assert all(body == bodies[0] for body in bodies), bodies
    assert bodies[0]["cause"] == "tls_failed"
    assert bodies[0]["error"] == "connection test failed: TLS handshake failed"


def test_refused_is_its_own_generic_cause(api_client):
    body = _test_fields(api_client, endpoint=dead_url()).json()

    assert body["cause"] == "refused"
    assert body["error"] == "connection test failed: connection refused"


def test_the_stored_tab_test_route_is_generic_too(api_client, remote_url, listener_factory):
    tab = add_tab(api_client, remote_url)
    closer = listener_factory(close_at_once)
    Cluster.objects.filter(pk=tab["id"]).update(endpoints=[closer.url])

    response = api_client.post(f"/api/kv/tabs/{tab['id']}/test", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "connection test failed: not an etcd endpoint"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://169.254.169.254",
        "http://169.254.169.254:80",
        "https://169.254.10.1:2379",
        "http://[fe80::1]:2379",
        "http://[fd00:ec2::254]",
        "http://[::ffff:169.254.169.254]:80",
    ],
)
def test_link_local_endpoints_are_refused_before_any_connection(api_client, endpoint):
    started = time.monotonic()
    tested = _test_fields(api_client, endpoint=endpoint)
    created = api_client.post("/api/kv/tabs", {"endpoint": endpoint}, format="json")
    elapsed = time.monotonic() - started

    for response in (tested, created):
        assert response.status_code == 400, response.json()
        assert response.json()["code"] == "KV_TAB_ENDPOINT_NOT_ALLOWED"
        assert "link-local" in response.json()["error"]
    assert elapsed < 1.0  # no connect attempt (a connect to 169.254/16 here takes the timeout)
    assert not Cluster.objects.exclude(pk="default").exists()
    denial = AuditLog.objects.get(operation="kv_tab_create")
    assert denial.success is False


def test_patching_a_tab_to_link_local_is_refused(api_client, remote_url):
    tab = add_tab(api_client, remote_url)

    response = api_client.patch(
        f"/api/kv/tabs/{tab['id']}", {"endpoint": "http://169.254.169.254"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "KV_TAB_ENDPOINT_NOT_ALLOWED"
    assert Cluster.objects.get(pk=tab["id"]).endpoint == remote_url


def test_allowlist_refuses_other_targets_before_connecting(
    api_client, settings, listener_factory, remote_url
):
    tab = add_tab(api_client, remote_url)
    recorder = listener_factory(record)
    settings.CLUSTER_ENDPOINT_ALLOWLIST = ["10.0.0.0/8", "etcd.example.internal"]

    responses = [
        _test_fields(api_client, endpoint=recorder.url),
        api_client.post("/api/kv/tabs", {"endpoint": recorder.url}, format="json"),
        api_client.patch(f"/api/kv/tabs/{tab['id']}", {"endpoint": recorder.url}, format="json"),
        api_client.post(f"/api/kv/tabs/{tab['id']}/test", {}, format="json"),
    ]

    for response in responses:
        assert response.status_code == 400, response.json()
        assert response.json()["code"] == "KV_TAB_ENDPOINT_NOT_ALLOWED"
        assert "CLUSTER_ENDPOINT_ALLOWLIST" in response.json()["error"]
    time.sleep(0.3)
    assert recorder.connections == 0


def test_allowlist_admits_listed_networks_and_names(api_client, settings, remote_cluster):
    port = remote_cluster.client_urls[0].rsplit(":", 1)[1]

    settings.CLUSTER_ENDPOINT_ALLOWLIST = ["127.0.0.0/8"]
    assert _test_fields(api_client, endpoint=f"http://127.0.0.1:{port}").status_code == 200

    settings.CLUSTER_ENDPOINT_ALLOWLIST = ["localhost"]
    assert _test_fields(api_client, endpoint=f"http://localhost:{port}").status_code == 200
    refused = _test_fields(api_client, endpoint=f"http://127.0.0.1:{port}")
    assert refused.status_code == 400
    assert refused.json()["code"] == "KV_TAB_ENDPOINT_NOT_ALLOWED"


def test_a_host_name_tab_connects_to_the_checked_address(api_client, remote_cluster):
    port = remote_cluster.client_urls[0].rsplit(":", 1)[1]
    tab = add_tab(api_client, f"http://localhost:{port}")

    listed = api_client.get(f"/api/kv/v3/getpath?key=/&tab_id={tab['id']}")

    assert listed.status_code == 200
    assert tab["endpoint"] == f"http://localhost:{port}"  # the user's name is what is stored


def test_an_invalid_allowlist_is_a_system_check_error_and_allows_nothing(
    api_client, settings, remote_url
):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.CLUSTER_ENDPOINT_ALLOWLIST = ["10.0.0.0/33"]

    with pytest.raises(SystemCheckError, match=r"etcdgateway\.E001"):
        call_command("check")
    response = _test_fields(api_client, endpoint=remote_url)
    assert response.status_code == 400
    assert response.json()["code"] == "KV_TAB_ENDPOINT_NOT_ALLOWED"


def test_a_name_that_does_not_resolve_is_unreachable_not_forbidden(api_client):
    response = _test_fields(api_client, endpoint="http://no-such-host.invalid:2379")

    assert response.status_code == 400
    assert response.json()["code"] == "KV_TAB_UNREACHABLE"
    assert response.json()["cause"] == "unresolvable"
    assert response.json()["error"] == "connection test failed: host name does not resolve"
