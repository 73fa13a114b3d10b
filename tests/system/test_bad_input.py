"""Hand-written hostile input on every kind of endpoint: always a 4xx JSON error, never a 500.

Huge bodies, invalid JSON, wrong types, unicode and NUL in keys, path-traversal-looking keys
(opaque etcd keys, stored and read back exactly), and out-of-range ttl, range, page_size,
retain_count and limit. Runs in the normal suite against the session cluster.
"""

import json

import pytest
from django.conf import settings
from django.urls import URLPattern, get_resolver

pytestmark = pytest.mark.django_db

HUGE = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024  # beyond the request-body limit


def _client_error(response) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert "Traceback" not in json.dumps(body)
    return body


def _write_routes() -> list[tuple[str, str]]:
    """Every POST/PUT route under /api/ whose URL has no parameter, from the resolver."""
    from tests.test_auth_sweep import ROUTES

    return [(path, method) for (path, method), _ in ROUTES if method in ("post", "put")]


def test_write_routes_are_found():
    routes = set(_write_routes())
    assert {("/api/kv/v3/put", "put"), ("/api/ops/compact", "post")} <= routes
    assert len(routes) >= 12
    assert any(isinstance(p, URLPattern) for p in get_resolver().url_patterns)


@pytest.fixture
def ops_on(settings):
    settings.OPS_ENABLED = True


# Routes that read a JSON body; the others (logout, connect, hashkv, ...) ignore it.
BODY_ROUTES = {
    "/api/auth/login",
    "/api/auth/change-password",
    "/api/user/panel-config",
    "/api/kv/v3/put",
    "/api/kv/v3/delete",
    "/api/kv/v2/put",
    "/api/kv/v2/delete",
    "/api/ops/defragment",
    "/api/ops/move-leader",
    "/api/ops/compact",
    "/api/ops/alarms/disarm",
}


@pytest.mark.parametrize(("path", "method"), _write_routes(), ids=str)
def test_invalid_json_is_a_400_on_every_write_route(api_client, ops_on, path, method):
    response = getattr(api_client, method)(
        path, b'{"key": "/x", "value": ', content_type="application/json"
    )

    assert response.status_code < 500, response.content[:300]
    if path in BODY_ROUTES:
        assert response.status_code == 400
        _client_error(response)


@pytest.mark.parametrize(("path", "method"), _write_routes(), ids=str)
def test_a_huge_body_is_refused_on_every_write_route(api_client, ops_on, path, method):
    body = json.dumps({"key": "/huge", "value": "x" * HUGE, "retain_count": 1})

    response = getattr(api_client, method)(path, body, content_type="application/json")

    assert response.status_code < 500, response.content[:300]
    if path in BODY_ROUTES:
        assert response.status_code in (400, 413)
        _client_error(response)


def test_a_huge_body_is_a_413_with_a_clear_message(api_client):
    body = json.dumps({"key": "/huge", "value": "x" * HUGE})

    response = api_client.put("/api/kv/v3/put", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {"error": "request body too large", "code": "body_too_large"}


@pytest.mark.parametrize(
    "payload",
    [
        {"key": 5, "value": "v"},
        {"key": ["/a"], "value": "v"},
        {"key": None, "value": "v"},
        {"key": {"k": 1}, "value": "v"},
        {"key": "/k", "value": 12},
        {"key": "/k", "value": ["v"]},
        {"key": "/k", "value": "v", "ttl": "60"},
        {"key": "/k", "value": "v", "ttl": True},
        {"key": "/k", "value": "v", "ttl": 1.5},
        {"key": "/k", "value": "v", "ttl": -1},
        {"key": "/k", "value": "v", "ttl": 2**63},
        {"key": "/k", "value": "v", "ttl": 10**100},
        {"key": "/k", "value": "v", "dir": "yes"},
        {"key": "/k", "value": "v", "encoding": "rot13"},
        {"key": "", "value": "v"},
        ["/k", "v"],
        "just a string",
    ],
    ids=repr,
)
@pytest.mark.parametrize("version", ["v3", "v2"])
def test_wrong_types_and_ranges_on_kv_put_are_400(api_client, payload, version):
    response = api_client.put(f"/api/kv/{version}/put", payload, format="json")

    assert response.status_code == 400
    _client_error(response)


@pytest.mark.parametrize(
    "suffix",
    [
        "../../etc/passwd",
        "..",
        "a/../b",
        "./.",
        "..%2f..%2fetc",
        "ünïcødé/键/😀",
        "tab\tand\nnewline",
        "\u202eright-to-left",
        "%00percent-nul",
    ],
    ids=repr,
)
def test_odd_keys_are_opaque_and_read_back_exactly(api_client, kv_prefix, suffix):
    key = kv_prefix + suffix

    put = api_client.put("/api/kv/v3/put", {"key": key, "value": "v"}, format="json")
    got = api_client.get("/api/kv/v3/get", {"key": key})

    assert put.status_code == 200, put.content
    assert got.status_code == 200 and got.json()["node"]["key"] == key
    assert got.json()["node"]["value"] == "v"
    deleted = api_client.post("/api/kv/v3/delete", {"key": key}, format="json")
    assert deleted.status_code == 200


@pytest.mark.parametrize("version", ["v3", "v2"])
def test_a_nul_in_a_key_is_refused_or_stored_exactly_never_a_500(api_client, kv_prefix, version):
    key = kv_prefix + "nul\x00byte"

    put = api_client.put(f"/api/kv/{version}/put", {"key": key, "value": "v"}, format="json")

    assert put.status_code < 500, put.content
    if put.status_code >= 400:
        _client_error(put)
    else:
        got = api_client.get(f"/api/kv/{version}/get", {"key": key})
        assert got.status_code == 200 and got.json()["node"]["key"] == key
    query = api_client.get(f"/api/kv/{version}/get", {"key": key})
    assert query.status_code < 500


@pytest.mark.parametrize(
    "params",
    [
        {"metrics": "collector_up", "range": "99999999999d"},
        {"metrics": "collector_up", "range": "abc"},
        {"metrics": "collector_up", "range": "1e309h"},
        {"metrics": "collector_up", "range": "nanh"},
        {"metrics": "collector_up", "start": "yesterday", "end": "today"},
        {"metrics": "collector_up", "start": 10**30, "end": 10**31},
        {"metrics": "collector_up", "start": 100, "end": 50},
        {"metrics": ",".join(f"m{i}" for i in range(501))},
        {"metrics": "collector_up", "member_id": "-1"},
        {"metrics": "collector_up", "member_id": "1" * 40},
        {"range": "1h"},
    ],
    ids=repr,
)
def test_bad_range_queries_are_client_errors(api_client, etcd_cluster, params):
    from monitoring.services import collect_cluster

    collect_cluster()

    response = api_client.get("/api/range", params)

    _client_error(response)


@pytest.mark.parametrize(
    "params",
    [
        {"metrics": "collector_up", "range": "-1h"},  # the reference: an empty window
        {"metrics": "collector_up", "range": "0s"},
        {"metrics": "collector_up", "start": "yesterday"},  # start without end: ignored
        {"metrics": "x" * 10000},  # unknown names: no series
    ],
    ids=repr,
)
def test_lenient_range_queries_answer_an_empty_or_default_window(api_client, etcd_cluster, params):
    from monitoring.services import collect_cluster

    collect_cluster()

    response = api_client.get("/api/range", params)

    assert response.status_code == 200
    assert set(response.json()) == {"start", "end", "member_id", "metrics", "not_exported"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"page_size": -1}, 200),
        ({"page_size": 10**30}, (200, 400)),
        ({"page_size": "ten"}, 400),
        ({"page": 10**30}, 400),
        ({"page": -5}, 200),
        ({"success": "maybe"}, 400),
        ({"operation": "o" * 1000}, 400),
        ({"format": "xml"}, 400),
    ],
    ids=repr,
)
def test_audit_log_paging_is_lenient_or_a_400(api_client, ops_on, params, expected):
    response = api_client.get("/api/ops/audit-logs", params)

    assert response.status_code in (expected if isinstance(expected, tuple) else (expected,))
    if response.status_code == 400:
        _client_error(response)
    else:
        assert response.json()["page_size"] <= 500


@pytest.mark.parametrize(
    "retain_count", [0, -1, 2**64, "5", True, 1.5, None, [1], {"n": 1}], ids=repr
)
def test_bad_retain_count_is_400_and_compacts_nothing(api_client, ops_on, retain_count):
    before = api_client.get("/api/ops/compact/revision").json()

    response = api_client.post("/api/ops/compact", {"retain_count": retain_count}, format="json")

    assert response.status_code == 400
    _client_error(response)
    after = api_client.get("/api/ops/compact/revision").json()
    assert after.get("compact_revision") == before.get("compact_revision")


@pytest.mark.parametrize("limit", [0, -1, 10**30, "many"], ids=repr)
def test_bad_list_limits_are_400(api_client, kv_prefix, limit):
    response = api_client.get("/api/kv/v3/list", {"prefix": kv_prefix, "limit": limit})

    assert response.status_code == 400
    _client_error(response)


@pytest.mark.parametrize(
    "body",
    [
        {"member_id": "not-a-number"},
        {"member_id": -1},
        {"member_id": 2**70},
        {"member_id": None},
        {},
    ],
    ids=repr,
)
@pytest.mark.parametrize("path", ["/api/ops/defragment", "/api/ops/move-leader"])
def test_bad_member_ids_on_ops_are_client_errors(api_client, ops_on, path, body):
    if path.endswith("move-leader"):
        body = {"target_member_id": body["member_id"]} if body else {}

    response = api_client.post(path, body, format="json")

    _client_error(response)


def test_panel_config_refuses_non_objects_and_huge_configs(api_client):
    for body in (["a"], "s", 5, {"panels": "x" * (100 * 1024)}):
        response = api_client.put("/api/user/panel-config", body, format="json")
        assert response.status_code in (400, 413), body if len(str(body)) < 50 else "huge"
        _client_error(response)
