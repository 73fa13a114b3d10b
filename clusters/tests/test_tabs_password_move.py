"""A tab's stored etcd password never goes to a new host (issue 15, medium 5).

Changing the endpoint, scheme, TLS fields or username drops the stored password unless the
same PATCH supplies one; the connection test then runs without it. The new endpoint is a real
etcd with auth on (same user and password, the attacker's best case) behind a loopback relay
that records every byte the server sends it.
"""

import contextlib
import socket
import threading

import pytest

from audit.models import AuditLog
from clusters.models import Cluster
from clusters.tests.conftest import add_tab
from tests.etcdctl import etcdctl

pytestmark = pytest.mark.django_db


class RecordingRelay:
    """127.0.0.1:<port> → target, keeping a copy of everything the client sends."""

    def __init__(self, target_url: str):
        host, port = target_url.split("://", 1)[1].rsplit(":", 1)
        self.target = (host, int(port))
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source, sink, record):
        try:
            while chunk := source.recv(65536):
                if record:
                    with self.lock:
                        self.sent.extend(chunk)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self):
        self.closing = True
        self.server.close()


@pytest.fixture
def clusters(etcd_cluster_factory):
    """(old, new): two one-member clusters with auth on, both root / rootpw."""
    made = []
    for _ in range(2):
        cluster = etcd_cluster_factory(size=1, point_settings=False)
        url = cluster.client_urls[0]
        etcdctl(url, "user", "add", "root:rootpw")
        etcdctl(url, "auth", "enable")
        made.append(cluster)
    return made


@pytest.fixture
def relay(clusters):
    relay = RecordingRelay(clusters[1].client_urls[0])
    yield relay
    relay.close()


def test_moving_the_endpoint_does_not_send_the_stored_password(api_client, clusters, relay):
    tab = add_tab(api_client, clusters[0].client_urls[0], username="root", password="rootpw")

    moved = api_client.patch(f"/api/kv/tabs/{tab['id']}", {"endpoint": relay.url}, format="json")

    assert moved.status_code == 400, moved.json()
    assert moved.json()["status"] == "auth_failed"
    assert b"rootpw" not in bytes(relay.sent)
    assert len(relay.sent) > 0, "the test did reach the new endpoint"
    row = Cluster.objects.get(pk=tab["id"])
    assert row.endpoint == clusters[0].client_urls[0]  # a failed PATCH changes nothing


def test_moving_the_endpoint_with_a_new_password_uses_only_that(api_client, clusters, relay):
    tab = add_tab(api_client, clusters[0].client_urls[0], username="root", password="rootpw")

    moved = api_client.patch(
        f"/api/kv/tabs/{tab['id']}",
        {"endpoint": relay.url, "password": "rootpw"},
        format="json",
    )

    assert moved.status_code == 200, moved.json()
    assert moved.json()["tab"]["has_password"] is True


@pytest.mark.parametrize(
    "change",
    [{"username": "other"}, {"insecure_skip_verify": True}, {"ca_cert": ""}],
    ids=["username", "insecure_skip_verify", "ca_cert_cleared"],
)
def test_changing_username_or_tls_drops_the_stored_password(api_client, clusters, change):
    url = clusters[0].client_urls[0]
    tab = add_tab(api_client, url, username="root", password="rootpw", ca_cert="")
    if change == {"ca_cert": ""}:
        # Clearing an already-empty bundle is no change: the password stays.
        response = api_client.patch(f"/api/kv/tabs/{tab['id']}", change, format="json")
        assert response.status_code == 200 and response.json()["tab"]["has_password"] is True
        return

    response = api_client.patch(f"/api/kv/tabs/{tab['id']}", change, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["tab"]["has_password"] is False
    update = AuditLog.objects.filter(operation="kv_tab_update").latest("id")
    assert "password=(cleared)" in update.params


def test_renaming_keeps_the_stored_password(api_client, clusters):
    tab = add_tab(api_client, clusters[0].client_urls[0], username="root", password="rootpw")

    response = api_client.patch(f"/api/kv/tabs/{tab['id']}", {"name": "prod"}, format="json")

    assert response.json()["tab"]["has_password"] is True
    got = api_client.get(f"/api/kv/v3/getpath?key=/&tab_id={tab['id']}")
    assert got.status_code == 200
