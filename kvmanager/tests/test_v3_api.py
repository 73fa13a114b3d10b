"""The v3 KV API against the real session cluster: node shapes, TTL rules, boundaries, bytes."""

import base64
import json
import uuid

import pytest
from rest_framework.test import APIClient

from audit.models import AuditLog
from etcdgateway import cluster_gateway
from kvmanager import keyspace

pytestmark = pytest.mark.django_db


def test_connect_reports_version_leader_name_and_db_size(api):
    response = api.post("/api/kv/v3/connect")

    assert response.status_code == 200
    body = response.json()
    assert body["version"].startswith("3.")
    assert body["name"] in {"m1", "m2", "m3"}
    assert isinstance(body["size"], int) and body["size"] > 0
    assert body["size_str"].endswith(("B", "KB", "MB", "GB"))
    assert api.get("/api/kv/v3/connect").status_code == 200


def test_separator_is_the_configured_one(api, settings):
    assert api.get("/api/kv/v3/separator").json() == {"separator": "/"}
    settings.KV_SEPARATOR = ":"
    assert api.get("/api/kv/v3/separator").json() == {"separator": ":"}


def test_put_returns_the_reread_node_and_get_agrees(api, kv_prefix, etcd):
    key = f"{kv_prefix}cfg"
    response = api.put("/api/kv/v3/put", {"key": key, "value": "hello"}, format="json")

    assert response.status_code == 200
    node = response.json()["node"]
    assert node["key"] == key and node["value"] == "hello" and node["dir"] is False
    assert node["version"] == 1 and node["createdIndex"] == node["modifiedIndex"] > 0
    assert "ttl" not in node and "encoding" not in node
    assert etcd.get(key)[0] == b"hello"
    assert api.get("/api/kv/v3/get", {"key": key}).json() == {"node": node}


@pytest.mark.parametrize(
    "value",
    ["", "line one\nline two\r\n\ttabbed\n", "snow ☃ and NUL \x00 inside", "é" * 3000],
)
def test_text_values_round_trip_exactly(api, kv_prefix, etcd, value):
    key = f"{kv_prefix}text"
    assert api.put("/api/kv/v3/put", {"key": key, "value": value}, format="json").status_code == 200

    assert etcd.get(key)[0] == value.encode()
    node = api.get("/api/kv/v3/get", {"key": key}).json()["node"]
    assert node["value"] == value and "encoding" not in node


def test_large_json_value_round_trips(api, kv_prefix, etcd):
    document = json.dumps({f"k{i}": {"list": list(range(20)), "s": "x" * 50} for i in range(2000)})
    assert len(document) > 250_000
    key = f"{kv_prefix}big.json"

    assert (
        api.put("/api/kv/v3/put", {"key": key, "value": document}, format="json").status_code == 200
    )

    assert etcd.get(key)[0] == document.encode()
    assert api.get("/api/kv/v3/get", {"key": key}).json()["node"]["value"] == document


def test_binary_values_come_back_base64_and_can_be_written_back(api, kv_prefix, etcd):
    raw = bytes([0xFF, 0x00, 0xFE, 0x80]) + b"tail"
    etcd.put(f"{kv_prefix}bin", raw)

    node = api.get("/api/kv/v3/get", {"key": f"{kv_prefix}bin"}).json()["node"]
    assert node["encoding"] == "base64" and base64.b64decode(node["value"]) == raw

    written = api.put(
        "/api/kv/v3/put",
        {"key": f"{kv_prefix}copy", "value": node["value"], "encoding": "base64"},
        format="json",
    )
    assert written.status_code == 200
    assert written.json()["node"]["encoding"] == "base64"
    assert etcd.get(f"{kv_prefix}copy")[0] == raw


def test_ttl_creates_a_lease_and_get_reports_the_remaining_ttl(api, kv_prefix, etcd):
    key = f"{kv_prefix}ephemeral"
    node = api.put("/api/kv/v3/put", {"key": key, "value": "v", "ttl": 120}, format="json").json()[
        "node"
    ]

    assert 100 < node["ttl"] <= 120
    assert etcd.get(key)[1].lease_id != 0


def test_editing_without_ttl_keeps_the_existing_lease(api, kv_prefix, etcd):
    key = f"{kv_prefix}leased"
    lease = etcd.lease(300)
    etcd.put(key, "old", lease=lease)

    node = api.put("/api/kv/v3/put", {"key": key, "value": "new"}, format="json").json()["node"]

    value, meta = etcd.get(key)
    assert value == b"new" and meta.lease_id == lease.id
    assert 250 < node["ttl"] <= 300


def test_ttl_zero_removes_the_lease(api, kv_prefix, etcd):
    key = f"{kv_prefix}leased"
    etcd.put(key, "old", lease=etcd.lease(300))

    node = api.put("/api/kv/v3/put", {"key": key, "value": "v", "ttl": 0}, format="json").json()[
        "node"
    ]

    assert "ttl" not in node
    assert etcd.get(key)[1].lease_id == 0


def test_new_key_without_ttl_has_no_lease(api, kv_prefix, etcd):
    key = f"{kv_prefix}plain"
    api.put("/api/kv/v3/put", {"key": key, "value": "v"}, format="json")

    assert etcd.get(key)[1].lease_id == 0


def test_value_over_the_size_limit_is_413_and_not_written(api, kv_prefix, etcd, settings):
    settings.KV_MAX_VALUE_SIZE = 16
    key = f"{kv_prefix}big"

    response = api.put("/api/kv/v3/put", {"key": key, "value": "x" * 17}, format="json")

    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "value_too_large" and body["error"] == body["message"]
    assert "16" in body["error"]
    assert etcd.get(key)[0] is None
    entry = AuditLog.objects.get(operation="put", target=key)
    assert entry.success is False and "limit" in entry.result
    assert (
        api.put("/api/kv/v3/put", {"key": key, "value": "x" * 16}, format="json").status_code == 200
    )


def test_get_of_a_missing_key_is_404_key_not_found(api, kv_prefix):
    response = api.get("/api/kv/v3/get", {"key": f"{kv_prefix}nope"})

    assert response.status_code == 404
    assert response.json() == {
        "error": f"key not found: {kv_prefix}nope",
        "code": "key_not_found",
        "message": f"key not found: {kv_prefix}nope",
    }


def test_dir_delete_removes_the_subtree_but_never_prefix_siblings(api, kv_prefix, etcd):
    for key in ("a", "a/x", "a/y/z", "ab", "abc/x", "a-b"):
        etcd.put(f"{kv_prefix}{key}", "1")

    response = api.post("/api/kv/v3/delete", {"key": f"{kv_prefix}a", "dir": True}, format="json")

    assert response.status_code == 200 and response.json()["message"] == "ok"
    assert response.json()["deleted"] == 3
    assert etcd.keys(kv_prefix) == sorted(f"{kv_prefix}{k}" for k in ("ab", "abc/x", "a-b"))


def test_count_says_how_many_keys_a_dir_delete_removes(api, kv_prefix, etcd):
    for key in ("a", "a/x", "a/y/z", "ab", "abc/x", "a-b"):
        etcd.put(f"{kv_prefix}{key}", "1")

    counted = api.get("/api/kv/v3/count", {"key": f"{kv_prefix}a"})

    assert counted.status_code == 200
    assert counted.json() == {"key": f"{kv_prefix}a", "count": 3}
    assert api.get("/api/kv/v3/count", {"key": f"{kv_prefix}none"}).json()["count"] == 0
    deleted = api.post("/api/kv/v3/delete", {"key": f"{kv_prefix}a", "dir": True}, format="json")
    assert deleted.json()["deleted"] == counted.json()["count"]
    assert api.get("/api/kv/v3/count").status_code == 400


def test_plain_delete_removes_only_the_exact_key(api, kv_prefix, etcd):
    etcd.put(f"{kv_prefix}a", "1")
    etcd.put(f"{kv_prefix}a/child", "2")

    api.post("/api/kv/v3/delete", {"key": f"{kv_prefix}a"}, format="json")

    assert etcd.keys(kv_prefix) == [f"{kv_prefix}a/child"]
    # Deleting a key that does not exist succeeds, as in the reference.
    missing = api.post("/api/kv/v3/delete", {"key": f"{kv_prefix}gone"}, format="json")
    assert missing.status_code == 200 and missing.json()["deleted"] == 0


def test_getpath_respects_the_separator_boundary_and_carries_values_and_ttl(api, kv_prefix, etcd):
    base = f"{kv_prefix}a"
    etcd.put(base, "root value")
    etcd.put(f"{base}/x", "")
    etcd.put(f"{base}/y/z", "deep", lease=etcd.lease(600))
    etcd.put(f"{kv_prefix}ab", "sibling")
    etcd.put(f"{kv_prefix}abc/x", "sibling child")

    node = api.get("/api/kv/v3/getpath", {"key": base}).json()["node"]

    assert node["key"] == base and node["dir"] is True and node["value"] == "root value"
    children = {child["key"]: child for child in node["nodes"]}
    assert set(children) == {f"{base}/x", f"{base}/y"}
    assert children[f"{base}/x"] == {
        "key": f"{base}/x",
        "value": "",
        "dir": False,
        **{k: children[f"{base}/x"][k] for k in ("createdIndex", "modifiedIndex", "version")},
    }
    virtual = children[f"{base}/y"]
    assert virtual["dir"] is True and "value" not in virtual and "createdIndex" not in virtual
    (leaf,) = virtual["nodes"]
    assert leaf["key"] == f"{base}/y/z" and leaf["value"] == "deep" and 500 < leaf["ttl"] <= 600


def test_getpath_of_a_missing_path_is_an_empty_directory(api, kv_prefix):
    node = api.get("/api/kv/v3/getpath", {"key": f"{kv_prefix}none"}).json()["node"]

    assert node == {"key": f"{kv_prefix}none", "dir": True}


def test_keys_tree_is_keys_only_and_shows_keys_without_a_leading_separator(api, kv_prefix, etcd):
    bare = f"etcdmonitor-bare-{uuid.uuid4().hex[:8]}"
    etcd.put(f"{kv_prefix}k1", "secret-1")
    etcd.put(f"{kv_prefix}d/k2", "secret-2")
    etcd.put(f"{bare}/child", "v")
    try:
        response = api.get("/api/kv/v3/keys")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        text = b"".join(response.streaming_content).decode()
    finally:
        cluster_gateway().kv(lambda c: c.delete_prefix(bare))
    tree = json.loads(text)["node"]
    assert tree["key"] == "/" and tree["dir"] is True
    assert "secret" not in text

    def find(node, key):
        if node["key"] == key:
            return node
        for child in node.get("nodes", []):
            found = find(child, key)
            if found:
                return found
        return None

    bare_dir = find(tree, bare)
    assert bare_dir is not None and bare_dir["dir"] is True
    assert [c["key"] for c in bare_dir["nodes"]] == [f"{bare}/child"]
    assert find(tree, f"{kv_prefix}d")["nodes"][0]["key"] == f"{kv_prefix}d/k2"
    k1 = find(tree, f"{kv_prefix}k1")
    assert k1["dir"] is False and "value" not in k1 and k1["version"] == 1


def test_tree_and_search_read_the_same_across_small_pages(api, kv_prefix, etcd, monkeypatch):
    names = [f"{kv_prefix}d/k{i}" for i in range(7)] + [f"{kv_prefix}x{i}" for i in range(3)]
    for name in names:
        etcd.put(name, "v")

    def tree_and_searches():
        node = api.get("/api/kv/v3/getpath", {"key": kv_prefix.rstrip("/")}).json()["node"]
        query = {"prefix": kv_prefix, "q": "K", "limit": 4}
        first = api.get("/api/kv/v3/search", query).json()
        rest = api.get("/api/kv/v3/search", {**query, "cursor": first["next_cursor"]}).json()
        return node, first, rest

    whole = tree_and_searches()
    monkeypatch.setattr(keyspace, "KEYS_PAGE", 2)  # pages end inside the match run and at it
    monkeypatch.setattr(keyspace, "VALUES_PAGE", 3)
    paged = tree_and_searches()

    assert paged == whole
    node, first, rest = whole
    assert [c["key"] for c in node["nodes"][0]["nodes"]] == names[:7]
    assert [c["key"] for c in node["nodes"][1:]] == names[7:]
    assert [n["key"] for n in first["nodes"]] == names[:4] and first["scanned"] == 4
    assert first["truncated"] is True and rest["truncated"] is False
    assert [n["key"] for n in rest["nodes"]] == names[4:7] and rest["scanned"] == 6
    assert all(n["modifiedIndex"] and n["version"] == 1 for n in first["nodes"] + rest["nodes"])


def test_dir_delete_of_a_bare_directory_removes_what_the_tree_showed(api, etcd):
    bare = f"etcdmonitor-bare-{uuid.uuid4().hex[:8]}"
    etcd.put(f"{bare}/a", "1")
    etcd.put(f"{bare}/b/c", "2")
    etcd.put(f"{bare}x", "sibling")
    try:
        api.post("/api/kv/v3/delete", {"key": bare, "dir": True}, format="json")
        assert etcd.keys(bare) == [f"{bare}x"]
    finally:
        cluster_gateway().kv(lambda c: c.delete_prefix(bare))


def test_writes_are_audited_with_key_and_size_but_never_the_value(api, kv_prefix, user):
    key = f"{kv_prefix}audited"
    put_response = api.put(
        "/api/kv/v3/put", {"key": key, "value": "top-secret", "ttl": 60}, format="json"
    )
    api.post("/api/kv/v3/delete", {"key": key, "dir": True}, format="json")
    deleted_at = cluster_gateway().range_page(key.encode()).revision  # a linearizable read

    put, delete = AuditLog.objects.filter(target=key).order_by("id")
    assert (put.operation, put.username, put.success, put.result) == ("put", "kvadmin", True, "ok")
    # The revision each write produced: the change journal's events are joined on it.
    revision = put_response.json()["node"]["modifiedIndex"]
    assert json.loads(put.params) == {
        "ttl": 60,
        "value_size": 10,
        "revision": revision,
        "tab_id": "default",
    }
    assert "top-secret" not in put.params + put.result
    assert put.client_ip == "127.0.0.1"
    assert delete.operation == "delete" and json.loads(delete.params) == {
        "dir": True,
        "revision": deleted_at,
        "tab_id": "default",
    }
    api.get("/api/kv/v3/get", {"key": key})
    api.get("/api/kv/v3/getpath", {"key": key})
    assert AuditLog.objects.filter(target=key).count() == 2  # reads are not audited


def test_unauthenticated_requests_are_401():
    client = APIClient()
    for method, path in [
        ("post", "/api/kv/v3/connect"),
        ("get", "/api/kv/v3/keys"),
        ("get", "/api/kv/v3/get?key=/x"),
        ("put", "/api/kv/v3/put"),
        ("post", "/api/kv/v3/delete"),
        ("get", "/api/kv/v3/list"),
        ("get", "/api/kv/v2/keys"),
    ]:
        assert getattr(client, method)(path).status_code == 401, path


@pytest.mark.parametrize(
    ("method", "path", "body", "fragment"),
    [
        ("get", "/api/kv/v3/get", None, "key is required"),
        ("put", "/api/kv/v3/put", {"value": "v"}, "key"),
        ("put", "/api/kv/v3/put", {"key": ""}, "key"),
        ("put", "/api/kv/v3/put", {"key": 5}, "key"),
        ("put", "/api/kv/v3/put", {"key": "/a\x00b"}, "NUL"),
        ("put", "/api/kv/v3/put", {"key": "/k", "value": 5}, "value"),
        ("put", "/api/kv/v3/put", {"key": "/k", "ttl": "5"}, "ttl"),
        ("put", "/api/kv/v3/put", {"key": "/k", "ttl": True}, "ttl"),
        ("put", "/api/kv/v3/put", {"key": "/k", "ttl": 1.5}, "ttl"),
        ("put", "/api/kv/v3/put", {"key": "/k", "ttl": -1}, "ttl"),
        ("put", "/api/kv/v3/put", {"key": "/k", "ttl": 10**12}, "ttl"),
        ("put", "/api/kv/v3/put", {"key": "/k", "value": "***", "encoding": "base64"}, "base64"),
        ("put", "/api/kv/v3/put", {"key": "/k", "encoding": "rot13"}, "encoding"),
        ("put", "/api/kv/v3/put", ["not", "an", "object"], "object"),
        ("post", "/api/kv/v3/delete", {"key": "/k", "dir": "yes"}, "dir"),
        ("post", "/api/kv/v3/delete", {}, "key"),
    ],
)
def test_bad_input_is_400_with_the_kv_error_body(api, method, path, body, fragment):
    response = (
        getattr(api, method)(path, body, format="json") if body is not None else api.get(path)
    )

    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["code"] == "invalid_request"
    assert fragment in payload["error"] and payload["message"] == payload["error"]


def test_invalid_json_body_is_400_invalid_request_body(api):
    response = api.generic("PUT", "/api/kv/v3/put", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid request body",
        "code": "invalid_request",
        "message": "invalid request body",
    }


def test_lone_surrogate_values_are_rejected_not_mangled(api, kv_prefix):
    response = api.generic(
        "PUT",
        "/api/kv/v3/put",
        json.dumps({"key": f"{kv_prefix}s", "value": "\ud800"}),
        content_type="application/json",
    )

    assert response.status_code == 400 and "UTF-8" in response.json()["error"]


def test_unknown_tab_is_404(api):
    response = api.get("/api/kv/v3/keys", {"tab_id": "7f7e"})

    assert response.status_code == 404 and response.json()["code"] == "KV_TAB_NOT_FOUND"
