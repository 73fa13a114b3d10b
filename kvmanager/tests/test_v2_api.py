"""The v2 KV API: real directories, TTL, recursive delete, and availability without --enable-v2."""

import contextlib

import pytest

from etcdgateway import EtcdNotFound, cluster_gateway
from etcdgateway.v2 import V2Keys

pytestmark = pytest.mark.django_db


@pytest.fixture
def v2_prefix(kv_prefix):
    """A v2 directory of this test's own (the v2 keyspace is separate from v3's)."""
    yield kv_prefix.rstrip("/")
    with contextlib.suppress(EtcdNotFound):  # the test may have deleted it already
        V2Keys(cluster_gateway()).delete(kv_prefix.rstrip("/"), dir=True)


def test_connect_answers_with_v3_cluster_info(api):
    body = api.post("/api/kv/v2/connect").json()

    assert body["version"].startswith("3.") and body["name"] in {"m1", "m2", "m3"}
    assert api.get("/api/kv/v2/separator").json() == {"separator": "/"}


def test_put_get_and_real_directories(api, v2_prefix):
    made = api.put("/api/kv/v2/put", {"key": f"{v2_prefix}/conf", "dir": True}, format="json")
    assert made.status_code == 200 and made.json()["node"]["dir"] is True

    node = api.put(
        "/api/kv/v2/put", {"key": f"{v2_prefix}/conf/a", "value": "x\ny"}, format="json"
    ).json()["node"]
    assert node["key"] == f"{v2_prefix}/conf/a" and node["value"] == "x\ny"
    assert node["createdIndex"] > 0 and node["modifiedIndex"] > 0 and "version" not in node

    got = api.get("/api/kv/v2/get", {"key": f"{v2_prefix}/conf/a"}).json()["node"]
    assert got["value"] == "x\ny" and got["dir"] is False
    tree = api.get("/api/kv/v2/getpath", {"key": v2_prefix}).json()["node"]
    (conf,) = tree["nodes"]
    assert conf["key"] == f"{v2_prefix}/conf" and conf["dir"] is True
    assert conf["nodes"][0]["value"] == "x\ny"


def test_empty_directory_has_no_nodes_and_empty_value_is_kept(api, v2_prefix):
    api.put("/api/kv/v2/put", {"key": f"{v2_prefix}/empty", "dir": True}, format="json")
    api.put("/api/kv/v2/put", {"key": f"{v2_prefix}/blank", "value": ""}, format="json")

    tree = api.get("/api/kv/v2/getpath", {"key": v2_prefix}).json()["node"]

    nodes = {n["key"]: n for n in tree["nodes"]}
    assert "nodes" not in nodes[f"{v2_prefix}/empty"]
    assert nodes[f"{v2_prefix}/blank"]["value"] == ""


def test_ttl_is_set_kept_on_edit_and_removed_with_zero(api, v2_prefix):
    key = f"{v2_prefix}/t"
    node = api.put("/api/kv/v2/put", {"key": key, "value": "1", "ttl": 300}, format="json").json()[
        "node"
    ]
    assert 250 < node["ttl"] <= 300

    edited = api.put("/api/kv/v2/put", {"key": key, "value": "2"}, format="json").json()["node"]
    assert edited["value"] == "2" and 250 < edited["ttl"] <= 300

    cleared = api.put("/api/kv/v2/put", {"key": key, "value": "3", "ttl": 0}, format="json").json()[
        "node"
    ]
    assert "ttl" not in cleared
    assert "ttl" not in V2Keys(cluster_gateway()).get(key)


def test_recursive_delete_removes_a_directory_and_plain_delete_refuses(api, v2_prefix):
    api.put("/api/kv/v2/put", {"key": f"{v2_prefix}/d/x/y", "value": "1"}, format="json")

    refused = api.post("/api/kv/v2/delete", {"key": f"{v2_prefix}/d"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]

    deleted = api.post("/api/kv/v2/delete", {"key": f"{v2_prefix}/d", "dir": True}, format="json")
    assert deleted.status_code == 200 and deleted.json() == {"message": "ok"}
    missing = api.get("/api/kv/v2/get", {"key": f"{v2_prefix}/d"})
    assert missing.status_code == 404 and missing.json()["code"] == "key_not_found"


def test_count_says_how_many_keys_a_directory_delete_removes(api, v2_prefix):
    for key in ("d/x/y", "d/x/z", "d/k", "other"):
        api.put("/api/kv/v2/put", {"key": f"{v2_prefix}/{key}", "value": "1"}, format="json")
    api.put("/api/kv/v2/put", {"key": f"{v2_prefix}/d/empty", "dir": True}, format="json")

    counted = api.get("/api/kv/v2/count", {"key": f"{v2_prefix}/d"})

    assert counted.status_code == 200
    assert counted.json() == {"key": f"{v2_prefix}/d", "count": 3}
    assert api.get("/api/kv/v2/count", {"key": f"{v2_prefix}/none"}).json()["count"] == 0
    missing = api.get("/api/kv/v2/count")
    assert missing.status_code == 400 and missing.json()["error"]
    escaping = api.get("/api/kv/v2/count", {"key": f"{v2_prefix}/../../version"})
    assert escaping.status_code == 400 and escaping.json()["error"]


def test_getpath_of_a_missing_key_is_an_empty_directory(api, v2_prefix):
    node = api.get("/api/kv/v2/getpath", {"key": f"{v2_prefix}/none"}).json()["node"]

    assert node == {"key": f"{v2_prefix}/none", "dir": True}


def test_keys_strips_values_and_list_pages_one_level(api, v2_prefix):
    for name in ("a", "b", "c"):
        api.put("/api/kv/v2/put", {"key": f"{v2_prefix}/{name}", "value": "secret"}, format="json")
    api.put("/api/kv/v2/put", {"key": f"{v2_prefix}/sub/deep", "value": "secret"}, format="json")

    keys = api.get("/api/kv/v2/keys")
    assert keys.status_code == 200 and "secret" not in keys.content.decode()

    first = api.get("/api/kv/v2/list", {"prefix": v2_prefix, "limit": 3}).json()
    assert [n["key"].rsplit("/", 1)[1] for n in first["nodes"]] == ["a", "b", "c"]
    second = api.get(
        "/api/kv/v2/list", {"prefix": v2_prefix, "limit": 3, "cursor": first["next_cursor"]}
    ).json()
    assert second["nodes"] == [
        {
            "key": f"{v2_prefix}/sub",
            "dir": True,
            **{k: second["nodes"][0][k] for k in ("createdIndex", "modifiedIndex")},
        }
    ]
    assert second["next_cursor"] is None


def test_v2_rejects_binary_values(api, v2_prefix):
    response = api.put(
        "/api/kv/v2/put",
        {"key": f"{v2_prefix}/bin", "value": "/w==", "encoding": "base64"},
        format="json",
    )

    assert response.status_code == 400 and "UTF-8" in response.json()["error"]


def test_writes_are_audited(api, v2_prefix):
    from audit.models import AuditLog

    api.put("/api/kv/v2/put", {"key": f"{v2_prefix}/a", "value": "v", "ttl": 5}, format="json")
    api.post("/api/kv/v2/delete", {"key": f"{v2_prefix}/missing"}, format="json")

    put = AuditLog.objects.get(operation="put", target=f"{v2_prefix}/a")
    assert put.success and '"dir": false' in put.params and '"ttl": 5' in put.params
    failed = AuditLog.objects.get(operation="delete", target=f"{v2_prefix}/missing")
    assert failed.success is False and "Key not found" in failed.result


def test_cluster_without_v2_answers_503_and_recovery_is_noticed(api, etcd_cluster_factory):
    cluster = etcd_cluster_factory(size=1, enable_v2=False)

    for response in (
        api.post("/api/kv/v2/connect"),
        api.get("/api/kv/v2/keys"),
        api.get("/api/kv/v2/get", {"key": "/x"}),
        api.put("/api/kv/v2/put", {"key": "/x", "value": "1"}, format="json"),
    ):
        assert response.status_code == 503
        assert response.json() == {
            "error": "etcd v2 API is not available (requires --enable-v2=true)",
            "code": "v2_unavailable",
            "message": "etcd v2 API is not available (requires --enable-v2=true)",
        }
    assert api.post("/api/kv/v3/connect").status_code == 200  # v3 is unaffected

    # Same endpoint restarted with v2 on: the very next call sees it (nothing was latched).
    cluster.stop()
    cluster.enable_v2 = True
    cluster.start()
    assert api.post("/api/kv/v2/connect").status_code == 200
    assert api.put("/api/kv/v2/put", {"key": "/x", "value": "1"}, format="json").status_code == 200
