"""Listing, search and the full tree over 30 k keys: paged ranges, never one giant response."""

import json

import pytest
from pyetcd import etcdrpc

from etcdgateway import ClusterConfig, cluster_gateway

pytestmark = pytest.mark.django_db

FLAT = 30_000


def bulk_put(gateway, keys: list[str], value: bytes = b"v") -> None:
    """Load keys 128 per transaction (etcd's default --max-txn-ops)."""
    for start in range(0, len(keys), 128):
        ops = [
            etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=k.encode(), value=value))
            for k in keys[start : start + 128]
        ]
        request = etcdrpc.TxnRequest(success=ops)
        gateway.call(lambda client, r=request: client.stub("kvstub", "Txn", r))


@pytest.fixture(scope="module")
def big_prefix(etcd_cluster):
    """30 k leaf keys in one directory, plus directories of 5 000, 1 and 2 keys beside it."""
    prefix = "/etcdmonitor-big/"
    keys = [f"{prefix}flat/item-{i:06d}" for i in range(FLAT)]
    keys += [f"{prefix}dirs/big/k{i:05d}" for i in range(5000)]
    keys += [f"{prefix}dirs/one/k", f"{prefix}dirs/two/a", f"{prefix}dirs/two/b/c"]
    keys += [f"{prefix}dirs/leaf", f"{prefix}dirs/zz"]
    # Explicit config: a module fixture may run before the autouse fixture re-points settings.
    gateway = cluster_gateway(ClusterConfig(endpoints=tuple(etcd_cluster.client_urls)))
    bulk_put(gateway, keys)
    yield prefix
    gateway.kv(lambda client: client.delete_prefix(prefix))


def test_list_pages_through_thirty_thousand_children(api, big_prefix):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"prefix": f"{big_prefix}flat", "limit": 5000}
        if cursor:
            params["cursor"] = cursor
        response = api.get("/api/kv/v3/list", params)
        assert response.status_code == 200
        body = response.json()
        assert len(body["nodes"]) <= 5000
        seen += [node["key"] for node in body["nodes"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert pages == 6
    assert seen == [f"{big_prefix}flat/item-{i:06d}" for i in range(FLAT)]


def test_list_shows_child_directories_once_with_their_key_counts(api, big_prefix):
    body = api.get("/api/kv/v3/list", {"prefix": f"{big_prefix}dirs"}).json()

    assert [(n["key"], n["dir"], n.get("count")) for n in body["nodes"]] == [
        (f"{big_prefix}dirs/big", True, 5000),
        (f"{big_prefix}dirs/leaf", False, None),
        (f"{big_prefix}dirs/one", True, 1),
        (f"{big_prefix}dirs/two", True, 2),
        (f"{big_prefix}dirs/zz", False, None),
    ]
    assert body["next_cursor"] is None
    assert body["nodes"][0]["prefix"] == f"{big_prefix}dirs/big/"
    top = api.get("/api/kv/v3/list", {"prefix": big_prefix}).json()["nodes"]
    assert [(n["key"], n["count"]) for n in top] == [
        (f"{big_prefix}dirs", 5005),
        (f"{big_prefix}flat", FLAT),
    ]


def test_list_cursor_resumes_after_a_directory(api, big_prefix):
    first = api.get("/api/kv/v3/list", {"prefix": f"{big_prefix}dirs/", "limit": 1}).json()
    assert [n["key"] for n in first["nodes"]] == [f"{big_prefix}dirs/big"]
    second = api.get(
        "/api/kv/v3/list",
        {"prefix": f"{big_prefix}dirs/", "limit": 2, "cursor": first["next_cursor"]},
    ).json()

    assert [n["key"] for n in second["nodes"]] == [
        f"{big_prefix}dirs/leaf",
        f"{big_prefix}dirs/one",
    ]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "%%%"}, "invalid_cursor"),
        ({"cursor": "L290aGVy"}, "invalid_cursor"),  # "/other": not under this prefix
        ({"limit": 0}, "invalid_request"),
        ({"limit": "many"}, "invalid_request"),
        ({"limit": 10**6}, "invalid_request"),
    ],
)
def test_bad_list_parameters_are_400(api, big_prefix, params, code):
    response = api.get("/api/kv/v3/list", {"prefix": f"{big_prefix}flat", **params})

    assert response.status_code == 400 and response.json()["code"] == code


def test_search_stops_at_the_limit_and_says_it_was_cut(api, big_prefix):
    body = api.get(
        "/api/kv/v3/search", {"prefix": big_prefix, "q": "ITEM-0012", "limit": 50}
    ).json()

    assert [n["key"] for n in body["nodes"]] == [
        f"{big_prefix}flat/item-{i:06d}" for i in range(1200, 1250)
    ]
    assert body["truncated"] is True and body["next_cursor"]
    rest = api.get(
        "/api/kv/v3/search",
        {"prefix": big_prefix, "q": "item-0012", "limit": 1000, "cursor": body["next_cursor"]},
    ).json()
    assert len(rest["nodes"]) == 50 and rest["truncated"] is False


def test_search_requires_a_query(api):
    response = api.get("/api/kv/v3/search", {"prefix": "/"})

    assert response.status_code == 400 and "q" in response.json()["error"]


def test_full_keys_tree_holds_every_key(api, big_prefix):
    response = api.get("/api/kv/v3/keys")
    tree = json.loads(b"".join(response.streaming_content))["node"]

    (big,) = [n for n in tree["nodes"] if n["key"] == big_prefix.rstrip("/")]
    flat, dirs = sorted(big["nodes"], key=lambda n: n["key"])[::-1]
    assert flat["key"] == f"{big_prefix}flat" and len(flat["nodes"]) == FLAT
    assert {n["key"] for n in dirs["nodes"]} >= {f"{big_prefix}dirs/big", f"{big_prefix}dirs/zz"}


def test_list_of_the_root_shows_bare_keys_and_the_separator_directory(api, kv_prefix, etcd):
    bare = f"etcdmonitor-bare-{kv_prefix.split('/')[2]}"
    etcd.put(f"{bare}/x", "1")
    etcd.put(f"{kv_prefix}k", "1")
    try:
        nodes, cursor = [], None
        while True:
            body = api.get(
                "/api/kv/v3/list", {"limit": 5000, **({"cursor": cursor} if cursor else {})}
            ).json()
            nodes += body["nodes"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
    finally:
        cluster_gateway().kv(lambda c: c.delete_prefix(bare))
    by_key = {n["key"]: n for n in nodes}
    assert by_key["/"]["dir"] is True and by_key["/"]["prefix"] == "/"
    assert by_key[bare] == {"key": bare, "dir": True, "count": 1, "prefix": f"{bare}/"}
    inner = api.get("/api/kv/v3/list", {"prefix": "/", "limit": 5000}).json()["nodes"]
    assert "/etcdmonitor-test" in {n["key"] for n in inner}
