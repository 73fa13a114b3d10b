"""`cluster_id` on the KV and ops routes (issue 19): two real clusters side by side, the default
when absent, `tab_id` as the KV alias, other users' clusters unknown, a dead cluster isolated."""

import pytest

from audit.models import AuditLog
from clusters.models import Cluster
from clusters.tests.conftest import add_tab, remote_get
from etcdgateway import ClusterConfig
from etcdgateway import cluster_gateway as settings_gateway


@pytest.fixture
def shared(api_client, remote_url) -> str:
    """A shared cluster record on the second cluster; its id."""
    response = api_client.post("/api/clusters", {"endpoints": remote_url}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def remote(url: str):
    return settings_gateway(ClusterConfig(endpoints=(url,)))


def default_get(key: str):
    return settings_gateway().kv(lambda c: c.get(key))[0]


def test_a_kv_write_reaches_only_the_named_cluster(
    api_client, bob_client, shared, remote_url, kv_prefix
):
    key = f"{kv_prefix}where"

    # Any signed-in user may use a shared cluster; the id may come in the body of a write.
    put = bob_client.put(
        "/api/kv/v3/put", {"key": key, "value": "remote", "cluster_id": shared}, format="json"
    )
    read = api_client.get("/api/kv/v3/get", {"key": key, "cluster_id": shared})
    absent = api_client.get("/api/kv/v3/get", {"key": key})
    alias = api_client.get("/api/kv/v3/get", {"key": key, "tab_id": shared})

    assert put.status_code == 200, put.json()
    assert remote_get(remote_url, key) == b"remote"
    assert default_get(key) is None, "the default cluster never saw the key"
    assert read.status_code == 200 and read.json()["node"]["value"] == "remote"
    assert absent.status_code == 404 and absent.json()["code"] == "key_not_found"
    assert alias.json() == read.json()
    entry = AuditLog.objects.get(operation="put")
    assert entry.username == "bob" and entry.target == f"[tab={shared}] {key}"
    assert f'"tab_id": "{shared}"' in entry.params
    remote(remote_url).kv(lambda c: c.delete_prefix(kv_prefix))


def test_without_cluster_id_the_default_cluster_is_used(api_client, shared, kv_prefix):
    key = f"{kv_prefix}here"

    put = api_client.put("/api/kv/v3/put", {"key": key, "value": "home"}, format="json")
    explicit = api_client.get("/api/kv/v3/get", {"key": key, "cluster_id": "default"})

    assert put.status_code == 200
    assert default_get(key) == b"home"
    assert explicit.json()["node"]["value"] == "home"
    assert AuditLog.objects.get(operation="put").target == key


def test_an_ops_route_acts_on_the_named_cluster(api_client, shared, remote_url):
    remote_ids = {m.id_str for m in remote(remote_url).members()}
    default_ids = {m.id_str for m in settings_gateway().members()}
    remote_revision = remote(remote_url).status().revision

    hashkv = api_client.post("/api/ops/hashkv", {"cluster_id": shared}, format="json")
    revision = api_client.get("/api/ops/compact/revision", {"cluster_id": shared})
    default_hashkv = api_client.post("/api/ops/hashkv", {}, format="json")

    assert hashkv.status_code == 200, hashkv.json()
    assert {r["member_id"] for r in hashkv.json()["results"]} == remote_ids
    assert revision.json()["revision"] >= remote_revision
    assert {r["member_id"] for r in default_hashkv.json()["results"]} == default_ids
    named, plain = AuditLog.objects.filter(operation="hashkv").order_by("id")
    assert named.target == f"[cluster={shared}] cluster" and plain.target == "cluster"


def test_ops_defragment_targets_a_member_of_the_named_cluster(api_client, shared, remote_url):
    (member,) = remote(remote_url).members()

    on_default = api_client.post("/api/ops/defragment", {"member_id": member.id_str}, format="json")
    on_shared = api_client.post(
        f"/api/ops/defragment?cluster_id={shared}", {"member_id": member.id_str}, format="json"
    )

    assert on_default.status_code == 400 and on_default.json() == {"error": "member not found"}
    assert on_shared.status_code == 200, on_shared.json()
    assert on_shared.json()["member_id"] == member.id_str
    (entry,) = AuditLog.objects.filter(operation="defragment")
    assert entry.target.startswith(f"[cluster={shared}] ")


def test_a_tab_is_a_cluster_id_too(bob_client, remote_url, kv_prefix):
    tab = add_tab(bob_client, remote_url)
    key = f"{kv_prefix}tab"

    put = bob_client.put(
        f"/api/kv/v3/put?cluster_id={tab['id']}", {"key": key, "value": "t"}, format="json"
    )
    alarms = bob_client.get("/api/ops/alarms", {"cluster_id": tab["id"]})

    assert put.status_code == 200 and remote_get(remote_url, key) == b"t"
    assert alarms.status_code == 200 and alarms.json() == {"alarms": []}
    remote(remote_url).kv(lambda c: c.delete_prefix(kv_prefix))


def test_another_users_cluster_is_404_on_kv_and_ops_routes(
    api_client, bob_client, remote_url, kv_prefix
):
    bobs = add_tab(bob_client, remote_url)

    responses = {
        "kv": api_client.get("/api/kv/v3/get", {"key": "/x", "cluster_id": bobs["id"]}),
        "kv-unknown": api_client.get("/api/kv/v3/get", {"key": "/x", "cluster_id": "nope"}),
        "kv-alias": api_client.get("/api/kv/v3/get", {"key": "/x", "tab_id": bobs["id"]}),
        "ops": api_client.post("/api/ops/hashkv", {"cluster_id": bobs["id"]}, format="json"),
        "ops-unknown": api_client.get("/api/ops/alarms", {"cluster_id": "nope"}),
    }

    not_found = {"error": "cluster not found", "code": "CLUSTER_NOT_FOUND"}
    assert responses["kv"].status_code == 404
    assert responses["kv"].json() == {**not_found, "message": "cluster not found"}
    assert responses["kv-unknown"].json() == responses["kv"].json()
    assert responses["kv-alias"].status_code == 404
    assert responses["kv-alias"].json()["code"] == "KV_TAB_NOT_FOUND"  # the tab API's answer
    assert responses["ops"].status_code == 404 and responses["ops"].json() == not_found
    assert responses["ops-unknown"].json() == not_found
    attempts = AuditLog.objects.filter(operation="kv_tab_cross_user_attempt")
    assert attempts.count() == 3 and {e.username for e in attempts} == {"admin"}
    assert not AuditLog.objects.filter(operation="hashkv").exists()


def test_cluster_id_and_tab_id_must_agree(api_client, shared):
    response = api_client.get(
        "/api/kv/v3/get", {"key": "/x", "cluster_id": shared, "tab_id": "default"}
    )
    typed = api_client.post("/api/ops/hashkv", {"cluster_id": 7}, format="json")

    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    assert typed.status_code == 400 and typed.json() == {"error": "cluster_id must be a string"}


def test_a_dead_cluster_is_unavailable_without_touching_the_default(
    api_client, etcd_cluster_factory, kv_prefix
):
    doomed = etcd_cluster_factory(size=1, point_settings=False)
    created = api_client.post("/api/clusters", {"endpoints": doomed.client_urls[0]}, format="json")
    assert created.status_code == 201, created.json()
    dead_id = created.json()["id"]
    doomed.kill_member(doomed.members[0])

    kv = api_client.get("/api/kv/v3/get", {"key": "/x", "cluster_id": dead_id})
    ops = api_client.get("/api/ops/alarms", {"cluster_id": dead_id})
    home = api_client.put(
        "/api/kv/v3/put", {"key": f"{kv_prefix}alive", "value": "1"}, format="json"
    )
    home_ops = api_client.get("/api/ops/alarms")

    assert kv.status_code == 503 and kv.json()["error"].startswith("etcd unavailable")
    assert ops.status_code == 503 and ops.json()["error"].startswith("etcd unavailable")
    assert kv.json()["code"] == ops.json()["code"] == "etcd_unavailable"
    assert Cluster.objects.get(pk=dead_id).last_status == "error"  # the KV request saw it
    assert home.status_code == 200 and default_get(f"{kv_prefix}alive") == b"1"
    assert home_ops.status_code == 200


def test_the_v2_routes_take_cluster_id_too(api_client, shared, kv_prefix):
    key = f"{kv_prefix}v2"

    put = api_client.put(
        "/api/kv/v2/put", {"key": key, "value": "two", "cluster_id": shared}, format="json"
    )
    there = api_client.get("/api/kv/v2/get", {"key": key, "cluster_id": shared})
    here = api_client.get("/api/kv/v2/get", {"key": key})

    assert put.status_code == 200, put.json()
    assert there.status_code == 200 and there.json()["node"]["value"] == "two"
    assert here.status_code == 404
    delete = api_client.post(f"/api/kv/v2/delete?cluster_id={shared}", {"key": key}, format="json")
    assert delete.status_code == 200
    assert api_client.get("/api/kv/v2/get", {"key": key, "cluster_id": shared}).status_code == 404


def test_the_default_cluster_costs_no_query_and_a_record_one(api_client, shared, kv_prefix):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cluster_queries(params: dict) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            response = api_client.get("/api/kv/v3/get", {"key": f"{kv_prefix}q", **params})
        assert response.status_code == 404  # no such key: the cluster answered
        return [q["sql"] for q in captured.captured_queries if "clusters_cluster" in q["sql"]]

    api_client.get("/api/kv/v3/get", {"key": f"{kv_prefix}q", "cluster_id": shared})  # warm

    assert cluster_queries({}) == []
    assert cluster_queries({"cluster_id": "default"}) == []
    assert len(cluster_queries({"cluster_id": shared})) == 1  # the record, owner joined
