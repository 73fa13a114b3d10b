"""A key's history, revert, recently deleted keys, restore and who changed what (issue 22,
items 3-5) through the API, against a private real etcd cluster with the journal worker
running in a thread, on the real database (transactional tests: the worker sees every commit).
"""

import base64
import threading
import time
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AccountProfile
from audit.models import AuditLog
from clusters.models import Cluster
from clusters.tests.conftest import add_tab
from etcdgateway import ClusterConfig, cluster_gateway
from journal.models import JournalEvent
from journal.selectors import journal_position
from journal.services import JournalPolicy
from journal.worker import ClusterJournal
from kvmanager import history
from tests.etcdctl import etcdctl

pytestmark = pytest.mark.django_db(transaction=True)

HISTORY = "/api/kv/v3/history"
DELETED = "/api/kv/v3/deleted"
KEEP_ALL = JournalPolicy(max_value_bytes=65536, exclude_prefixes=())


def _wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def journal_running(policy: JournalPolicy = KEEP_ALL, cluster_id: str = "default"):
    """The journal worker of a cluster (the default one unless named), in a thread, started."""
    stop = threading.Event()
    worker = ClusterJournal(cluster_id=cluster_id, stop=stop, policy=policy)
    # A daemon: should it ever fail to stop, the assertion below says so and the suite still ends.
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: journal_position(cluster_id=cluster_id), what="the journal's cursor")
        yield
    finally:
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive()


def caught_up(revision: int | None = None, cluster_id: str = "default") -> None:
    """Wait until the journal stored everything up to `revision` (default: etcd's current)."""
    if revision is None:
        revision = cluster_gateway().status().revision

    def reached():
        cursor = journal_position(cluster_id=cluster_id)
        return cursor is not None and cursor.revision >= revision

    _wait_for(reached, what=f"the journal to reach revision {revision}")


@pytest.fixture
def cluster(etcd_cluster_factory):
    """A private one-member cluster: its history is this test's alone, and it may be
    compacted."""
    return etcd_cluster_factory(size=1)


@pytest.fixture
def journal(cluster):
    with journal_running():
        yield


def _put(api, key, value, **fields):
    response = api.put("/api/kv/v3/put", {"key": key, "value": value, **fields}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["node"]["modifiedIndex"]


def _delete(api, key, **fields):
    response = api.post("/api/kv/v3/delete", {"key": key, **fields}, format="json")
    assert response.status_code == 200, response.json()
    return cluster_gateway().status().revision


def _history(api, key, **params):
    response = api.get(HISTORY, {"key": key, **params})
    assert response.status_code == 200, response.json()
    return response.json()


def _summary(body):
    return [(r["revision"], r["type"], r["value"]) for r in body["revisions"]]


def _error(response, status, code):
    assert response.status_code == status, response.json()
    body = response.json()
    assert body["code"] == code and body["error"] == body["message"], body
    return body


def test_history_lists_puts_and_the_delete_newest_first_with_who_and_when(
    api, user, cluster, journal
):
    key = "/app/config"
    first = _put(api, key, "one")
    second = _put(api, key, "two", ttl=600)
    deleted = _delete(api, key)
    caught_up(deleted)

    body = _history(api, key)

    assert body["key"] == key and body["gaps"] == []
    assert _summary(body) == [
        (deleted, "delete", None),
        (second, "put", "two"),
        (first, "put", "one"),
    ]
    delete, put_two, put_one = body["revisions"]
    assert put_two["lease"] == JournalEvent.objects.get(revision=second).lease != 0
    assert put_one["lease"] == 0 and put_one["value_size"] == 3
    assert delete["restorable"] is True and delete["deleted_value_size"] == 3
    for entry in body["revisions"]:
        assert entry["changed_by"] == {"via": "etcdmonitor", "username": user.username}
        assert entry["source"] == "journal"
        assert abs(entry["timestamp"] - time.time()) < 60
        assert "encoding" not in entry


def test_a_binary_value_is_base64_and_an_oversized_one_is_null_with_its_size(
    api, cluster, etcd_cluster_factory
):
    key = "/bin/blob"
    raw = b"\xff\x00\x10binary"
    big = "x" * 2048
    with journal_running(JournalPolicy(max_value_bytes=1024, exclude_prefixes=())):
        binary = _put(api, key, base64.b64encode(raw).decode(), encoding="base64")
        large = _put(api, key, big)
        caught_up(large)

    entries = {e["revision"]: e for e in _history(api, key)["revisions"]}

    assert entries[binary]["encoding"] == "base64"
    assert base64.b64decode(entries[binary]["value"]) == raw
    assert entries[binary]["value_size"] == len(raw)
    assert entries[large]["value"] is None and entries[large]["value_size"] == 2048
    # The exact revision: the journal kept no copy, etcd still holds it.
    assert entries[large]["source"] == "journal"
    one = _history(api, key, revision=binary)
    assert one["key"] == key and one["revision"] == binary
    assert base64.b64decode(one["value"]) == raw and one["encoding"] == "base64"


def test_revision_n_answers_that_revisions_value_or_404(api, cluster, journal):
    key = "/app/rev"
    first = _put(api, key, "first")
    _put(api, key, "second")
    caught_up()

    one = _history(api, key, revision=first)
    missing = api.get(HISTORY, {"key": key, "revision": first + 1000})

    assert one["revision"] == first and one["value"] == "first" and one["type"] == "put"
    assert one["changed_by"]["via"] == "etcdmonitor"
    _error(missing, 404, "revision_not_found")


def test_an_etcdctl_change_is_outside_and_ours_names_the_user(api, user, cluster, journal):
    key = "/who/k"
    ours = _put(api, key, "through the product")
    etcdctl(cluster.client_urls[0], "put", key, "from etcdctl")
    theirs = cluster_gateway().get(key.encode()).mod_revision
    caught_up(theirs)

    body = _history(api, key)

    by = {e["revision"]: e["changed_by"] for e in body["revisions"]}
    assert by == {
        theirs: {"via": "outside", "username": None},
        ours: {"via": "etcdmonitor", "username": user.username},
    }
    put = AuditLog.objects.get(operation="put", target=key)
    assert put.params.endswith(f'"revision": {ours}, "tab_id": "default"}}')


def test_a_directory_delete_names_the_user_on_every_key_it_removed(api, user, cluster, journal):
    _put(api, "/dir/a", "1")
    _put(api, "/dir/b", "2")
    deleted = _delete(api, "/dir", dir=True)
    caught_up(deleted)

    page = api.get(DELETED, {"prefix": "/dir/"}).json()

    assert [(e["key"], e["revision"], e["value"]) for e in page["entries"]] == [
        ("/dir/a", deleted, "1"),
        ("/dir/b", deleted, "2"),
    ]
    assert {e["changed_by"]["username"] for e in page["entries"]} == {user.username}


def test_history_before_the_journal_started_comes_from_etcd_without_timestamps(api, cluster):
    key = "/old/k"
    gateway = cluster_gateway()
    older = gateway.put(key.encode(), b"v1", ttl=None)
    old = gateway.put(key.encode(), b"v2", ttl=None)
    with journal_running():
        newer = _put(api, key, "v3")
        caught_up(newer)

        body = _history(api, key)

    assert _summary(body) == [(newer, "put", "v3"), (old, "put", "v2"), (older, "put", "v1")]
    assert [e["source"] for e in body["revisions"]] == ["journal", "etcd", "etcd"]
    assert [e["timestamp"] is None for e in body["revisions"]] == [False, True, True]
    assert body["revisions"][1]["changed_by"]["via"] == "outside"


def test_an_excluded_keys_history_is_etcds_own(api, cluster, settings):
    settings.JOURNAL_EXCLUDE_PREFIXES = ["/noise/"]
    with journal_running(JournalPolicy(max_value_bytes=65536, exclude_prefixes=(b"/noise/",))):
        caught_up(_put(api, "/kept", "journaled before the excluded key's changes"))
        first = _put(api, "/noise/k", "1")
        second = _put(api, "/noise/k", "2")
        caught_up(second)

        body = _history(api, "/noise/k")

    assert not JournalEvent.objects.filter(key=b"/noise/k").exists()
    assert _summary(body) == [(second, "put", "2"), (first, "put", "1")]
    assert {e["source"] for e in body["revisions"]} == {"etcd"}


def test_a_change_the_journal_has_not_stored_yet_is_read_from_etcd(api, cluster):
    key = "/lag/k"
    with journal_running():
        stored = _put(api, key, "stored")
        caught_up(stored)
    # The journal is stopped: etcd alone has the newest change.
    pending = _put(api, key, "pending")

    body = _history(api, key)

    assert _summary(body) == [(pending, "put", "pending"), (stored, "put", "stored")]
    assert body["revisions"][0]["source"] == "etcd"
    assert body["revisions"][0]["changed_by"]["via"] == "etcdmonitor"


def test_gaps_are_shown_after_a_compaction_the_journal_missed(api, cluster):
    key = "/gap/k"
    gateway = cluster_gateway()
    with journal_running():
        seen = _put(api, key, "seen")
        caught_up(seen)
    missed = gateway.put(key.encode(), b"missed", ttl=None)
    compacted_at = gateway.put(b"/gap/other", b"x", ttl=None)
    gateway.compact(compacted_at, physical=True)
    with journal_running():
        after = _put(api, key, "after")
        caught_up(after)

        body = _history(api, key)

    assert body["gaps"] == [[missed, compacted_at - 1]]
    assert _summary(body) == [(after, "put", "after"), (seen, "put", "seen")]
    gone = api.get(HISTORY, {"key": key, "revision": missed})
    _error(gone, 404, "revision_not_found")


def test_revert_writes_the_old_value_back_as_a_compare_and_swap(api, user, cluster, journal):
    key = "/rev/k"
    first = _put(api, key, '{"v": 1}')
    current = _put(api, key, '{"v": 2}', ttl=600)
    lease = cluster_gateway().get(key.encode()).lease
    caught_up(current)

    response = api.post(
        "/api/kv/v3/revert",
        {"key": key, "revision": first, "expected_mod_revision": current},
        format="json",
    )

    assert response.status_code == 200, response.json()
    node = response.json()["node"]
    assert node["value"] == '{"v": 1}' and node["modifiedIndex"] > current
    assert cluster_gateway().get(key.encode()).lease == lease  # the lease stays
    audit = AuditLog.objects.get(operation="revert")
    assert audit.success and audit.username == user.username and audit.target == key
    assert f'"from_revision": {first}' in audit.params
    assert audit.params.endswith(f'"revision": {node["modifiedIndex"]}, "tab_id": "default"}}')
    caught_up(node["modifiedIndex"])
    newest = _history(api, key)["revisions"][0]
    assert newest["changed_by"] == {"via": "etcdmonitor", "username": user.username}


def test_revert_is_409_when_the_key_changed_meanwhile(api, cluster, journal):
    key = "/rev/race"
    first = _put(api, key, "one")
    seen = _put(api, key, "two")
    etcdctl(cluster.client_urls[0], "put", key, "someone else")
    caught_up()

    response = api.post(
        "/api/kv/v3/revert",
        {"key": key, "revision": first, "expected_mod_revision": seen},
        format="json",
    )

    body = _error(response, 409, "revision_conflict")
    assert body["current"]["value"] == "someone else"
    assert cluster_gateway().get(key.encode()).value == b"someone else"
    audit = AuditLog.objects.get(operation="revert")
    assert not audit.success and "tab_id" in audit.params


def test_revert_to_a_delete_or_an_unknown_revision_is_refused(api, cluster, journal):
    key = "/rev/bad"
    _put(api, key, "one")
    deleted = _delete(api, key)
    caught_up(deleted)

    to_delete = api.post("/api/kv/v3/revert", {"key": key, "revision": deleted}, format="json")
    unknown = api.post("/api/kv/v3/revert", {"key": key, "revision": 10**9}, format="json")
    bad = api.post("/api/kv/v3/revert", {"key": key, "revision": "3"}, format="json")

    _error(to_delete, 400, "invalid_request")
    _error(unknown, 404, "revision_not_found")
    _error(bad, 400, "invalid_request")
    assert AuditLog.objects.filter(operation="revert", success=False).count() == 2


def test_delete_then_restore_and_409_once_the_key_exists_again(api, user, cluster, journal):
    key = "/restore/k"
    _put(api, key, "precious")
    deleted = _delete(api, key)
    caught_up(deleted)

    restored = api.post("/api/kv/v3/restore", {"key": key, "revision": deleted}, format="json")
    again = api.post("/api/kv/v3/restore", {"key": key, "revision": deleted}, format="json")

    assert restored.status_code == 200, restored.json()
    assert restored.json()["node"]["value"] == "precious"
    assert cluster_gateway().get(key.encode()).value == b"precious"
    body = _error(again, 409, "revision_conflict")
    assert body["current"]["value"] == "precious"
    audits = list(AuditLog.objects.filter(operation="restore").order_by("id"))
    assert [a.success for a in audits] == [True, False]
    assert audits[0].username == user.username
    assert f'"deleted_revision": {deleted}' in audits[0].params


def test_restore_refuses_an_unknown_delete_and_a_value_not_kept(api, cluster):
    with journal_running(JournalPolicy(max_value_bytes=4, exclude_prefixes=())):
        _put(api, "/restore/big", "too large to keep")
        big_deleted = _delete(api, "/restore/big")
        _put(api, "/restore/small", "ok")
        caught_up(big_deleted)

    not_kept = api.post(
        "/api/kv/v3/restore", {"key": "/restore/big", "revision": big_deleted}, format="json"
    )
    unknown = api.post(
        "/api/kv/v3/restore", {"key": "/restore/small", "revision": big_deleted}, format="json"
    )
    entry = api.get(DELETED, {"prefix": "/restore/"}).json()["entries"][0]

    _error(not_kept, 400, "value_not_kept")
    _error(unknown, 404, "revision_not_found")
    assert entry["value"] is None and entry["value_size"] == len("too large to keep")


def test_deleted_keys_page_by_keyset_cursor_newest_first(api, cluster, journal):
    gateway = cluster_gateway()
    for n in range(7):
        gateway.put(f"/page/k{n}".encode(), f"v{n}".encode(), ttl=None)
    revisions = [gateway.remove(f"/page/k{n}".encode()).revision for n in range(5)]
    gateway.put(b"/pagex/not-under", b"x", ttl=None)
    gateway.remove(b"/pagex/not-under")
    gateway.remove(b"/page/k5", prefix=b"/page/k6")  # one revision, two keys
    both = gateway.status().revision
    caught_up(both)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"prefix": "/page/", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get(DELETED, params).json()
        pages += 1
        seen += [(e["key"], e["revision"]) for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    expected = [("/page/k5", both), ("/page/k6", both)] + [
        (f"/page/k{n}", revisions[n]) for n in reversed(range(5))
    ]
    assert seen == expected and pages == 4
    entry = api.get(DELETED, {"prefix": "/page/k4"}).json()["entries"][0]
    assert entry["value"] == "v4" and entry["value_size"] == 2
    assert entry["changed_by"] == {"via": "outside", "username": None}
    assert abs(entry["deleted_at"] - time.time()) < 60
    _error(api.get(DELETED, {"cursor": "not-a-cursor"}), 400, "invalid_request")


def test_another_users_cluster_is_404_and_an_own_unjournaled_one_reads_etcd(
    api, cluster, journal, bearer_client, etcd_cluster_factory
):
    bob = get_user_model().objects.create_user(username="bob", password="b" * 12)
    AccountProfile.objects.create(user=bob, roles={"*": "operator"})  # adding a tab needs it
    bob_client = bearer_client(bob)
    bobs_etcd = etcd_cluster_factory(size=1, point_settings=False)
    tab = add_tab(bob_client, bobs_etcd.client_urls[0])
    bobs_gateway = cluster_gateway(ClusterConfig(endpoints=tuple(bobs_etcd.client_urls)))
    revision = bobs_gateway.put(b"/tab/k", b"v", ttl=None)

    for response in (
        api.get(HISTORY, {"key": "/tab/k", "cluster_id": tab["id"]}),
        api.get(DELETED, {"cluster_id": tab["id"]}),
        api.post(
            "/api/kv/v3/restore",
            {"key": "/tab/k", "revision": revision, "cluster_id": tab["id"]},
            format="json",
        ),
        api.post(
            "/api/kv/v3/revert",
            {"key": "/tab/k", "revision": revision, "cluster_id": tab["id"]},
            format="json",
        ),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "CLUSTER_NOT_FOUND"
    own = bob_client.get(HISTORY, {"key": "/tab/k", "cluster_id": tab["id"]})
    assert own.status_code == 200, own.json()
    assert _summary(own.json()) == [(revision, "put", "v")]
    assert own.json()["revisions"][0]["source"] == "etcd"


def test_a_shared_clusters_history_and_restore_name_who_changed_it(
    api, user, cluster, etcd_cluster_factory
):
    """A cluster record journaled under its own id: the join uses its audit targets
    (`[tab=<id>] key`) and never the default cluster's rows."""
    other = etcd_cluster_factory(size=1, point_settings=False)
    now = timezone.now()
    record = Cluster.objects.create(
        id="shared-history",
        name="shared",
        endpoints=other.client_urls,
        monitored=True,
        created_at=now,
        updated_at=now,
    )
    gateway = cluster_gateway(ClusterConfig(endpoints=tuple(other.client_urls)))
    on_record = {"cluster_id": record.id}
    with journal_running(cluster_id=record.id):
        ours = _put(api, "/svc/conf", "mine", **on_record)
        etcdctl(other.client_urls[0], "put", "/svc/conf", "theirs")
        response = api.post("/api/kv/v3/delete", {"key": "/svc/conf", **on_record}, format="json")
        assert response.status_code == 200, response.json()
        deleted = gateway.range_page(b"/svc/conf").revision
        caught_up(deleted, cluster_id=record.id)

        body = _history(api, "/svc/conf", **on_record)
        page = api.get(DELETED, {"prefix": "/svc/", **on_record}).json()
        restored = api.post(
            "/api/kv/v3/restore",
            {"key": "/svc/conf", "revision": deleted, **on_record},
            format="json",
        )

    by = [(e["revision"], e["type"], e["changed_by"]["username"]) for e in body["revisions"]]
    assert by == [
        (deleted, "delete", user.username),
        (deleted - 1, "put", None),  # etcdctl
        (ours, "put", user.username),
    ]
    assert [(e["key"], e["value"]) for e in page["entries"]] == [("/svc/conf", "theirs")]
    assert restored.status_code == 200, restored.json()
    assert gateway.get(b"/svc/conf").value == b"theirs"
    audit = AuditLog.objects.get(operation="restore")
    assert audit.target == "[tab=shared-history] /svc/conf"
    assert audit.params.endswith('"tab_id": "shared-history"}')
    # The default cluster knows none of it.
    assert _history(api, "/svc/conf")["revisions"] == []


def test_contract_error_bodies_for_bad_queries(api, cluster):
    cases = [
        (api.get(HISTORY), 400, "invalid_request"),
        (api.get(HISTORY, {"key": "/k", "revision": "x"}), 400, "invalid_request"),
        (api.get(HISTORY, {"key": "/k", "revision": 0}), 400, "invalid_request"),
        (api.get(HISTORY, {"key": "/k", "limit": 5000}), 400, "invalid_request"),
        (api.post("/api/kv/v3/restore", {"key": "/k"}, format="json"), 400, "invalid_request"),
        (api.post("/api/kv/v3/revert", [], format="json"), 400, "invalid_request"),
    ]
    for response, status, code in cases:
        _error(response, status, code)
    assert APIClient().get(HISTORY, {"key": "/k"}).status_code == 401


def test_the_audit_join_ignores_failed_writes_other_clusters_and_other_keys(db):
    AuditLog.objects.create(
        timestamp="2026-01-01T00:00:00Z",
        username="alice",
        operation="put",
        target="[tab=other] /k",
        params=history.audit_revision_params({}, cluster_id="other", revision=5),
    )
    AuditLog.objects.create(
        timestamp="2026-01-01T00:00:00Z",
        username="mallory",
        operation="put",
        target="/k",
        params=history.audit_revision_params({}, cluster_id="default", revision=5),
        success=False,
    )
    AuditLog.objects.create(
        timestamp="2026-01-01T00:00:00Z",
        username="carol",
        operation="put",
        target="/k",
        params=history.audit_revision_params({}, cluster_id="default", revision=55),
    )

    assert history._audited_writes(cluster_id="default", changes=[("/k", 5), ("/k", 55)]) == {
        55: "carol"
    }
    assert history._audited_writes(cluster_id="other", changes=[("/k", 5)]) == {5: "alice"}
    assert history._audited_writes(cluster_id="default", changes=[("/j", 55)]) == {}
