"""https tabs verify the server certificate unless the tab explicitly opts out."""

import stat
from pathlib import Path

import pytest
from django.conf import settings

from clusters.models import Cluster
from devtools.localcluster import LocalEtcdCluster, make_test_certificates


class ServerTlsCluster(LocalEtcdCluster):
    """TLS on the client URL without client-certificate auth (etcd 3.4 demands a client
    certificate whenever --trusted-ca-file is given, and tabs carry none)."""

    def _tls_args(self) -> list[str]:
        return ["--cert-file", str(self.tls.server_cert), "--key-file", str(self.tls.server_key)]


@pytest.fixture
def tls_cluster(tmp_path, etcd_cluster):
    """A one-member https cluster whose certificate is signed by a private CA."""
    files = make_test_certificates(tmp_path / "pki")
    cluster = ServerTlsCluster(tmp_path / "etcd-tls", size=1, tls=files).start()
    yield cluster.client_urls[0], files
    cluster.remove()


def test_an_untrusted_certificate_is_refused_by_default(api_client, tls_cluster):
    url, _ = tls_cluster

    response = api_client.post("/api/kv/tabs", {"endpoint": url}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "KV_TAB_UNREACHABLE"
    assert not Cluster.objects.exclude(pk="default").exists()


def test_the_tabs_ca_bundle_makes_the_certificate_trusted(api_client, tls_cluster, kv_prefix):
    url, files = tls_cluster

    response = api_client.post(
        "/api/kv/tabs", {"endpoint": url, "ca_cert": files.ca.read_text()}, format="json"
    )

    assert response.status_code == 201
    tab = response.json()["tab"]
    assert tab["has_ca_cert"] is True and tab["insecure_skip_verify"] is False
    assert "BEGIN CERTIFICATE" not in response.content.decode()
    put = api_client.put(
        f"/api/kv/v3/put?tab_id={tab['id']}", {"key": f"{kv_prefix}k", "value": "v"}, format="json"
    )
    assert put.status_code == 200
    v2 = api_client.post(f"/api/kv/v2/connect?tab_id={tab['id']}")
    assert v2.status_code == 200, "the https (v2) path trusts the same bundle"
    (bundle,) = (Path(settings.DATA_DIR) / "kv-tab-ca").glob("*.pem")
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert stat.S_IMODE(bundle.parent.stat().st_mode) == 0o700


def test_skip_verify_is_an_explicit_per_tab_choice(api_client, tls_cluster):
    url, _ = tls_cluster

    response = api_client.post(
        "/api/kv/tabs", {"endpoint": url, "insecure_skip_verify": True}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["tab"]["insecure_skip_verify"] is True
    tab = response.json()["tab"]["id"]
    assert api_client.post(f"/api/kv/tabs/{tab}/test").json() == {"status": "ok"}
    off = api_client.patch(f"/api/kv/tabs/{tab}", {"insecure_skip_verify": False}, format="json")
    assert off.json()["tab"]["last_status"] == "unknown"
    assert api_client.post(f"/api/kv/tabs/{tab}/test").json()["status"] == "unreachable"


def test_a_tab_named_by_host_connects_to_the_checked_address_and_verifies_the_name(
    api_client, tls_cluster, kv_prefix
):
    """`https://localhost:…` is resolved once and pinned to 127.0.0.1 (issue 15); gRPC and
    the v2 HTTP client still verify the certificate against "localhost"."""
    from clusters import connection

    url, files = tls_cluster
    by_name = url.replace("127.0.0.1", "localhost")
    config = connection.tab_config(
        endpoint=by_name, username="", password="", ca_cert="", insecure_skip_verify=False
    )
    assert config.endpoints == (url,) and config.server_name == "localhost"

    response = api_client.post(
        "/api/kv/tabs", {"endpoint": by_name, "ca_cert": files.ca.read_text()}, format="json"
    )

    assert response.status_code == 201, response.json()
    tab = response.json()["tab"]
    assert tab["endpoint"] == by_name
    put = api_client.put(
        f"/api/kv/v3/put?tab_id={tab['id']}", {"key": f"{kv_prefix}n", "value": "v"}, format="json"
    )
    assert put.status_code == 200
    assert api_client.post(f"/api/kv/v2/connect?tab_id={tab['id']}").status_code == 200
