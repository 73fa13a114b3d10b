"""KV prefix scopes (issue 21) against a real etcd: a scoped user sees only keys inside their
read prefixes (trees, listings, search, get, count, history, deleted keys, the live watch) and
writes only inside their write prefixes; a refusal is 403 `permission_denied`, audited."""

import json
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import AccountProfile
from audit.models import AuditLog
from audit.services import Actor
from etcdgateway import cluster_gateway
from kvmanager import scopes
from kvmanager.tests.test_history import caught_up, cluster, journal  # noqa: F401 - fixtures
from kvmanager.watch import WatchStream


def _scoped_client(prefix: str, *, username: str = "scoped") -> APIClient:
    user = get_user_model().objects.create_user(username=username, password="x" * 12)
    AccountProfile.objects.create(
        user=user,
        roles={"*": "operator"},
        kv_scopes={"default": {"read": [f"{prefix}app/"], "write": [f"{prefix}app/config/"]}},
    )
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def keyspace(kv_prefix):
    """Keys inside the read prefix (one writable), a sibling sharing its start, and others."""
    gateway = cluster_gateway()
    for key in ("app/config/db", "app/readme", "apple/core", "secret/token", "zeta/x"):
        gateway.put(f"{kv_prefix}{key}".encode(), f"value of {key}".encode(), ttl=None)
    return kv_prefix


def _keys(node: dict) -> list[str]:
    found = [node["key"]]
    for child in node.get("nodes") or []:
        found += _keys(child)
    return found


def _denied(response, text: str):
    assert response.status_code == 403, response.json()
    body = response.json()
    assert body == {"error": body["error"], "code": "permission_denied", "message": body["error"]}
    assert text in body["error"]


@pytest.mark.django_db
def test_the_tree_shows_only_the_path_down_to_the_prefix(keyspace):
    client = _scoped_client(keyspace)

    response = client.get("/api/kv/v3/keys")
    tree = json.loads(b"".join(response.streaming_content))["node"]
    getpath = client.get("/api/kv/v3/getpath", {"key": keyspace.rstrip("/")}).json()["node"]

    mine = [k for k in _keys(tree) if k.startswith(keyspace.rstrip("/"))]
    assert mine == [
        keyspace.rstrip("/"),
        f"{keyspace}app",
        f"{keyspace}app/config",
        f"{keyspace}app/config/db",
        f"{keyspace}app/readme",
    ]
    assert not [k for k in _keys(tree) if "secret" in k or "apple" in k or "zeta" in k]
    # Nothing outside the scope at all, from any other test's keys either.
    assert all(f"{keyspace}app/".startswith(k) or k.startswith(f"{keyspace}app/") or k == "/"
               for k in _keys(tree))  # fmt: skip
    assert _keys(getpath)[1:] == mine[1:]
    assert "value" in getpath["nodes"][0]["nodes"][1]  # values of what it may read


@pytest.mark.django_db
def test_an_unscoped_operator_still_sees_everything(keyspace, api):
    tree = api.get("/api/kv/v3/getpath", {"key": keyspace.rstrip("/")}).json()["node"]

    assert {f"{keyspace}apple", f"{keyspace}secret", f"{keyspace}zeta"} <= set(_keys(tree))


@pytest.mark.django_db
def test_keys_outside_are_invisible_to_list_search_get_and_count(keyspace):
    client = _scoped_client(keyspace)

    top = client.get("/api/kv/v3/list", {"prefix": keyspace}).json()["nodes"]
    inside = client.get("/api/kv/v3/list", {"prefix": f"{keyspace}app/"}).json()["nodes"]
    search = client.get("/api/kv/v3/search", {"prefix": keyspace, "q": "READ"}).json()
    get_in = client.get("/api/kv/v3/get", {"key": f"{keyspace}app/readme"})
    get_out = client.get("/api/kv/v3/get", {"key": f"{keyspace}secret/token"})
    count_all = client.get("/api/kv/v3/count", {"key": keyspace.rstrip("/")}).json()["count"]
    count_out = client.get("/api/kv/v3/count", {"key": f"{keyspace}secret"}).json()["count"]

    assert [(n["key"], n["dir"], n.get("count")) for n in top] == [(f"{keyspace}app", True, 2)]
    assert [n["key"] for n in inside] == [f"{keyspace}app/config", f"{keyspace}app/readme"]
    assert [n["key"] for n in search["nodes"]] == [f"{keyspace}app/readme"]
    assert search["scanned"] == 2
    assert get_in.status_code == 200 and get_in.json()["node"]["value"] == "value of app/readme"
    assert get_out.status_code == 404 and get_out.json()["code"] == "key_not_found"
    assert (count_all, count_out) == (2, 0)


@pytest.mark.django_db
def test_writes_outside_the_write_prefixes_are_refused_and_audited(keyspace):
    client = _scoped_client(keyspace)
    gateway = cluster_gateway()

    put_in = client.put(
        "/api/kv/v3/put", {"key": f"{keyspace}app/config/db", "value": "new"}, format="json"
    )
    put_read_only = client.put(
        "/api/kv/v3/put", {"key": f"{keyspace}app/readme", "value": "new"}, format="json"
    )
    put_out = client.put(
        "/api/kv/v3/put", {"key": f"{keyspace}secret/token", "value": "new"}, format="json"
    )
    delete_dir = client.post(
        "/api/kv/v3/delete", {"key": f"{keyspace}app", "dir": True}, format="json"
    )
    revert = client.post(
        "/api/kv/v3/revert", {"key": f"{keyspace}secret/token", "revision": 1}, format="json"
    )
    restore = client.post(
        "/api/kv/v3/restore", {"key": f"{keyspace}zeta/x", "revision": 1}, format="json"
    )
    # The directory node `…/app/config` is itself a key outside `…/app/config/`: refused whole.
    delete_parent = client.post(
        "/api/kv/v3/delete", {"key": f"{keyspace}app/config", "dir": True}, format="json"
    )
    delete_in = client.post(
        "/api/kv/v3/delete", {"key": f"{keyspace}app/config/db", "dir": True}, format="json"
    )

    assert put_in.status_code == 200, put_in.json()
    for refused in (put_read_only, put_out, delete_dir, revert, restore, delete_parent):
        _denied(refused, "is outside your write prefixes")
    assert delete_in.status_code == 200 and delete_in.json()["deleted"] == 1
    assert gateway.get(f"{keyspace}app/readme".encode()).value == b"value of app/readme"
    assert gateway.get(f"{keyspace}secret/token".encode()).value == b"value of secret/token"
    assert gateway.get(f"{keyspace}app/config/db".encode()) is None
    rows = AuditLog.objects.filter(username="scoped").order_by("pk")
    assert [(r.operation, r.success) for r in rows] == [
        ("put", True),
        ("put", False),
        ("put", False),
        ("delete", False),
        ("revert", False),
        ("restore", False),
        ("delete", False),
        ("delete", True),
    ]
    assert all("outside your write prefixes" in r.result for r in rows if not r.success)


@pytest.mark.django_db
def test_v2_is_refused_to_a_scoped_user_and_audited(keyspace):
    client = _scoped_client(keyspace)

    read = client.get("/api/kv/v2/get", {"key": f"{keyspace}app/readme"})
    write = client.put(
        "/api/kv/v2/put", {"key": f"{keyspace}app/config/x", "value": "v"}, format="json"
    )

    _denied(read, "v2 keys are not available")
    _denied(write, "v2 keys are not available")
    rows = AuditLog.objects.filter(username="scoped", success=False).order_by("pk")
    assert [r.operation for r in rows] == ["kv_get", "put"]


@pytest.mark.django_db
def test_the_live_watch_delivers_only_events_inside_the_read_prefixes(keyspace):
    """The stream's reader on a real etcd watch (the ASGI side is test_live_watch's)."""
    user = get_user_model().objects.create_user(username="watcher", password="x" * 12)
    AccountProfile.objects.create(
        user=user, kv_scopes={"default": {"read": [f"{keyspace}app/"], "write": []}}
    )
    scope = scopes.scope_for(Actor(username="watcher", user=user))
    stream = WatchStream(
        gateway=cluster_gateway(), prefix=keyspace, user_id=user.pk, session_id=None, scope=scope
    )
    frames: list[bytes] = []
    stream._push = lambda chunk, force=False: frames.append(chunk) or True
    reader = threading.Thread(target=stream._read)
    reader.start()
    gateway = cluster_gateway()
    gateway.put(f"{keyspace}secret/token".encode(), b"hidden", ttl=None)
    gateway.put(f"{keyspace}apple/core".encode(), b"hidden", ttl=None)
    gateway.put(f"{keyspace}app/readme".encode(), b"seen", ttl=None)
    deadline = time.monotonic() + 10
    while not frames and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    stream.close("finished")
    reader.join(10)

    events = [chunk for chunk in frames if chunk]
    assert len(events) == 1 and f"{keyspace}app/readme".encode() in events[0]
    assert b"hidden" not in b"".join(events)


@pytest.mark.django_db(transaction=True)
def test_history_and_deleted_keys_hide_what_lies_outside(cluster, journal):  # noqa: F811
    client = _scoped_client("/h/")
    gateway = cluster_gateway()
    gateway.put(b"/h/app/config/k", b"one", ttl=None)
    gateway.put(b"/h/secret/k", b"two", ttl=None)
    gateway.remove(b"/h/app/config/k")
    gateway.remove(b"/h/secret/k")
    caught_up()

    inside = client.get("/api/kv/v3/history", {"key": "/h/app/config/k"})
    outside = client.get("/api/kv/v3/history", {"key": "/h/secret/k"})
    one = client.get("/api/kv/v3/history", {"key": "/h/secret/k", "revision": 3})
    deleted = client.get("/api/kv/v3/deleted", {"prefix": "/h/"}).json()["entries"]

    assert [r["type"] for r in inside.json()["revisions"]] == ["delete", "put"]
    assert outside.status_code == 404 and outside.json()["code"] == "key_not_found"
    assert one.status_code == 404 and one.json()["code"] == "key_not_found"
    assert [e["key"] for e in deleted] == ["/h/app/config/k"]


def test_the_scope_validator_keeps_writes_within_reads():
    from django.core.exceptions import ValidationError

    from accounts.validators import validate_kv_scopes

    validate_kv_scopes({"c1": {"read": ["/app/"], "write": ["/app/config/"]}, "*": {"read": []}})
    for bad in (
        {"c1": {"read": ["/app/"], "write": ["/other/"]}},
        {"c1": {"read": "/app/"}},
        {"c1": {"read": [""]}},
        {"c1": {"reed": ["/app/"]}},
        {"not a cluster!": {"read": ["/a/"]}},
        [],
    ):
        with pytest.raises(ValidationError):
            validate_kv_scopes(bad)


def test_scope_ranges_cut_a_range_to_the_read_prefixes():
    scope = scopes.Scope(read=scopes._normalized(["/b/", "/a/", "/a/x/"]), write=())

    assert scope.read == (b"/a/", b"/b/")
    assert scope.ranges(b"\x00", b"\x00") == [(b"/a/", b"/a0"), (b"/b/", b"/b0")]
    assert scope.ranges(b"/a/m", b"/b/c") == [(b"/a/m", b"/a0"), (b"/b/", b"/b/c")]
    assert scope.ranges(b"/c/", b"/c0") == []
