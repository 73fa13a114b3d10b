"""KV tabs on a separate etcd cluster with auth enabled: credentials tested, stored encrypted,
never returned or logged."""

import logging

from audit.models import AuditLog
from clusters.connection import tab_config
from clusters.models import Cluster
from clusters.tests.conftest import add_tab, remote_get
from etcdgateway import ClusterGateway
from tests.etcdctl import etcdctl


def test_create_refuses_missing_or_wrong_credentials_with_auth_failed(api_client, auth_cluster):
    url = auth_cluster.client_urls[0]

    for body in ({}, {"username": "root", "password": "wrong-pw"}):
        response = api_client.post("/api/kv/tabs", {"endpoint": url, **body}, format="json")
        assert response.status_code == 400, "never 401: the dashboard session is fine"
        assert response.json()["code"] == "KV_TAB_AUTH_FAILED"
        assert response.json()["status"] == "auth_failed"
    assert not Cluster.objects.exclude(pk="default").exists()
    failures = AuditLog.objects.filter(operation="kv_tab_create", success=False)
    assert [e.result.split(":")[0] for e in failures] == ["auth_failed", "auth_failed"]
    assert all("wrong-pw" not in e.params + e.result for e in failures)


def test_credentials_give_access_and_the_password_never_leaves_the_server(
    api_client, auth_cluster, caplog
):
    url = auth_cluster.client_urls[0]
    caplog.set_level(logging.DEBUG)

    response = api_client.post(
        "/api/kv/tabs",
        {"endpoint": url, "username": "root", "password": "rootpw"},
        format="json",
    )

    assert response.status_code == 201
    tab = response.json()["tab"]
    assert tab["username"] == "root" and tab["has_password"] is True
    row = Cluster.objects.get(pk=tab["id"])
    assert b"rootpw" not in bytes(row.password_cipher)
    assert len(bytes(row.password_cipher)) == len("rootpw") + 28
    put = api_client.put(
        f"/api/kv/v3/put?tab_id={tab['id']}", {"key": "/t", "value": "1"}, format="json"
    )
    assert put.status_code == 200
    assert remote_get(url, "/t", username="root", password="rootpw") == b"1"
    listed = api_client.get("/api/kv/tabs")
    assert "rootpw" not in listed.content.decode()
    create = AuditLog.objects.get(operation="kv_tab_create")
    assert create.params == f"scheme=http endpoint={url} username=root password=***"
    assert not any("rootpw" in e.params + e.result + e.target for e in AuditLog.objects.all())
    assert "rootpw" not in caplog.text


def test_test_route_tries_given_credentials_or_the_stored_ones(api_client, auth_cluster):
    tab = add_tab(api_client, auth_cluster.client_urls[0], username="root", password="rootpw")
    path = f"/api/kv/tabs/{tab['id']}/test"

    stored = api_client.post(path)
    wrong = api_client.post(path, {"password": "nope"}, format="json")
    other_user = api_client.post(path, {"username": "ghost", "password": "x"}, format="json")

    assert (stored.status_code, stored.json()) == (200, {"status": "ok"})
    assert wrong.status_code == 400 and wrong.json()["status"] == "auth_failed"
    assert other_user.json()["status"] == "auth_failed"
    assert "nope" not in wrong.json()["error"]


def test_clearing_the_stored_password_locks_the_tab_out(api_client, auth_cluster):
    tab = add_tab(api_client, auth_cluster.client_urls[0], username="root", password="rootpw")

    patched = api_client.patch(
        f"/api/kv/tabs/{tab['id']}", {"clear_password": True}, format="json"
    ).json()["tab"]

    assert patched["has_password"] is False and patched["last_status"] == "unknown"
    result = api_client.post(f"/api/kv/tabs/{tab['id']}/test").json()
    assert result["status"] == "auth_failed"
    keys = api_client.get(f"/api/kv/v3/keys?tab_id={tab['id']}")
    assert keys.status_code == 403
    row = Cluster.objects.get(pk=tab["id"])
    assert row.last_status == "error" and row.last_error.startswith("auth_failed: ")


def test_a_user_limited_to_a_prefix_passes_the_connection_test(
    api_client, auth_cluster, etcd_server_version
):
    url = auth_cluster.client_urls[0]
    etcdctl(url, "role", "add", "app-role", user="root:rootpw")
    etcdctl(url, "role", "grant-permission", "app-role", "--prefix=true", "readwrite", "/allowed/",
            user="root:rootpw")  # fmt: skip
    etcdctl(url, "user", "add", "app:apppw", user="root:rootpw")
    etcdctl(url, "user", "grant-role", "app", "app-role", user="root:rootpw")

    tab = add_tab(api_client, url, username="app", password="apppw")["id"]

    allowed = api_client.put(f"/api/kv/v3/put?tab_id={tab}", {"key": "/allowed/a"}, format="json")
    denied = api_client.put(f"/api/kv/v3/put?tab_id={tab}", {"key": "/other"}, format="json")
    assert allowed.status_code == 200
    assert (denied.status_code, denied.json()["code"]) == (403, "permission_denied")
    assert Cluster.objects.get(pk=tab).last_status == "ok", "a denied key is not a dead tab"

    # etcd 3.5 answers Status to root only: connect still names the version, and leaves what
    # only Status knows (leader, DB size) unknown rather than guessed.
    info = api_client.post(f"/api/kv/v3/connect?tab_id={tab}")
    assert info.status_code == 200, info.json()
    assert info.json()["version"] == etcd_server_version
    if etcd_server_version.startswith("3.4"):
        assert info.json()["name"] and info.json()["size"] > 0
    else:
        assert info.json() | {"version": ""} == {
            "version": "", "name": "", "size": None, "size_str": ""
        }  # fmt: skip
    # The health probe counts a denied Status as a live member, so failover keeps using it.
    config = tab_config(
        endpoint=url, username="app", password="apppw", ca_cert="", insecure_skip_verify=False
    )
    gateway = ClusterGateway(config)
    try:
        assert [h.healthy for h in gateway.probe().values()] == [True]
    finally:
        gateway.close()
