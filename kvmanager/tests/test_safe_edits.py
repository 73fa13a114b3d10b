"""Safe edits (issue 22, item 1): the v3 put's `expected_mod_revision` compare-and-swap through
the API against the real session cluster — two writers, a key deleted meanwhile, create-only,
the lease kept, binary and near-limit values, and reference clients that never send the field.
"""

import base64
import json
import os
import threading

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import AccountProfile
from audit.models import AuditLog
from etcdgateway import EtcdRequestTooLarge, EtcdRevisionConflict, cluster_gateway
from kvmanager.tests.test_large_values import NEAR_LIMIT, _grpc_bytes_received
from tests.etcdctl import etcdctl

pytestmark = pytest.mark.django_db

PUT = "/api/kv/v3/put"


@pytest.fixture
def second_writer(db):
    """Another signed-in user editing the same keys (an operator: writes need it)."""
    user = get_user_model().objects.create_user(username="kvother", password="y" * 12)
    AccountProfile.objects.create(user=user, roles={"*": "operator"})
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def _loaded(api, key) -> dict:
    return api.get("/api/kv/v3/get", {"key": key}).json()["node"]


def _put(client, key, value, **fields):
    return client.put(PUT, {"key": key, "value": value, **fields}, format="json")


def test_the_second_of_two_writers_from_one_revision_gets_409_with_the_current_value(
    api, second_writer, kv_prefix, etcd
):
    key = f"{kv_prefix}config.json"
    etcd.put(key, '{"replicas": 1}')
    revision = _loaded(api, key)["modifiedIndex"]
    assert _loaded(second_writer, key)["modifiedIndex"] == revision  # both loaded the same

    first = _put(api, key, '{"replicas": 2}', expected_mod_revision=revision)
    second = _put(second_writer, key, '{"replicas": 3}', expected_mod_revision=revision)

    assert first.status_code == 200, first.json()
    new_revision = first.json()["node"]["modifiedIndex"]
    assert new_revision > revision
    assert second.status_code == 409
    body = second.json()
    assert body["code"] == "revision_conflict"
    assert body["error"] == body["message"]
    assert f"expected mod_revision {revision}, now {new_revision}" in body["error"]
    current = body["current"]
    assert current["key"] == key and current["value"] == '{"replicas": 2}'
    assert current["mod_revision"] == current["modifiedIndex"] == new_revision
    assert etcd.get(key)[0] == b'{"replicas": 2}'  # the second writer overwrote nothing
    # Saving again on the revision the conflict reported is the "overwrite" choice.
    third = _put(second_writer, key, '{"replicas": 3}', expected_mod_revision=new_revision)
    assert third.status_code == 200, third.json()
    assert etcd.get(key)[0] == b'{"replicas": 3}'


def test_a_refused_put_is_audited_as_a_failure_with_the_expected_revision(
    api, second_writer, kv_prefix, etcd
):
    key = f"{kv_prefix}k"
    etcd.put(key, "one")
    revision = _loaded(api, key)["modifiedIndex"]
    etcd.put(key, "changed elsewhere")

    response = _put(second_writer, key, "mine", expected_mod_revision=revision)

    assert response.status_code == 409
    entry = AuditLog.objects.filter(operation="put", target=key).latest("id")
    assert (entry.username, entry.success) == ("kvother", False)
    assert entry.result == response.json()["error"]
    assert json.loads(entry.params) == {
        "ttl": None,
        "value_size": 4,
        "expected_mod_revision": revision,
        "tab_id": "default",
    }
    assert "mine" not in entry.params + entry.result


def test_concurrent_compare_and_swaps_from_one_revision_let_exactly_one_through(kv_prefix, etcd):
    key = f"{kv_prefix}race"
    etcd.put(key, "start")
    revision = etcd.get(key)[1].mod_revision
    gateway = cluster_gateway()
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def writer(number: int) -> None:
        barrier.wait()
        try:
            gateway.put(
                key.encode(), f"w{number}".encode(), ttl=None, expected_mod_revision=revision
            )
            outcomes.append(f"w{number}")
        except EtcdRevisionConflict as exc:
            outcomes.append("conflict" if exc.current is not None else "gone")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [o for o in outcomes if o.startswith("w")]
    assert len(winners) == 1 and outcomes.count("conflict") == 7, outcomes
    value, meta = etcd.get(key)
    assert value.decode() == winners[0] and meta.version == 2


def test_a_key_deleted_meanwhile_is_409_with_current_null_and_stays_deleted(api, kv_prefix, etcd):
    key = f"{kv_prefix}gone"
    etcd.put(key, "v")
    revision = _loaded(api, key)["modifiedIndex"]
    api.post("/api/kv/v3/delete", {"key": key}, format="json")

    response = _put(api, key, "edited", expected_mod_revision=revision)

    assert response.status_code == 409
    assert response.json()["code"] == "revision_conflict"
    assert response.json()["current"] is None
    assert "deleted" in response.json()["error"]
    assert etcd.get(key)[0] is None  # not silently re-created


def test_expected_revision_zero_creates_only(api, kv_prefix, etcd):
    key = f"{kv_prefix}new"

    created = _put(api, key, "first", expected_mod_revision=0)
    again = _put(api, key, "second", expected_mod_revision=0)

    assert created.status_code == 200 and created.json()["node"]["value"] == "first"
    assert again.status_code == 409
    assert again.json()["current"]["value"] == "first"
    assert "already exists" in again.json()["error"]
    assert etcd.get(key)[0] == b"first"


def test_a_compare_and_swap_put_keeps_the_keys_lease(api, kv_prefix, etcd):
    key = f"{kv_prefix}leased"
    lease = etcd.lease(300)
    etcd.put(key, "old", lease=lease)
    revision = _loaded(api, key)["modifiedIndex"]

    response = _put(api, key, "new", expected_mod_revision=revision)

    assert response.status_code == 200, response.json()
    value, meta = etcd.get(key)
    assert value == b"new" and meta.lease_id == lease.id
    assert 250 < response.json()["node"]["ttl"] <= 300


@pytest.mark.parametrize("ttl", [0, 120])
def test_a_compare_and_swap_put_with_ttl_sets_or_drops_the_lease(api, kv_prefix, etcd, ttl):
    key = f"{kv_prefix}leased"
    lease = etcd.lease(300)
    etcd.put(key, "old", lease=lease)
    revision = _loaded(api, key)["modifiedIndex"]

    response = _put(api, key, "new", ttl=ttl, expected_mod_revision=revision)

    assert response.status_code == 200, response.json()
    meta = etcd.get(key)[1]
    if ttl == 0:
        assert meta.lease_id == 0 and "ttl" not in response.json()["node"]
    else:
        assert meta.lease_id not in (0, lease.id)
        assert 100 < response.json()["node"]["ttl"] <= 120


def test_a_refused_put_with_ttl_leaves_no_lease_behind(api, kv_prefix, etcd):
    key = f"{kv_prefix}k"
    etcd.put(key, "v")
    stale = etcd.get(key)[1].mod_revision
    etcd.put(key, "v2")
    gateway = cluster_gateway()
    leases_before = gateway.call(lambda client: client.lease_count())

    response = _put(api, key, "mine", ttl=600, expected_mod_revision=stale)

    assert response.status_code == 409
    # The lease granted for the put is revoked, not left to live out its 10 minutes.
    assert gateway.call(lambda client: client.lease_count()) == leases_before
    assert etcd.get(key)[1].lease_id == 0


def test_a_put_without_the_field_overwrites_as_before(api, second_writer, kv_prefix, etcd):
    key = f"{kv_prefix}plain"
    etcd.put(key, "v")
    _loaded(api, key)
    etcd.put(key, "changed elsewhere")

    response = _put(second_writer, key, "last writer wins")

    assert response.status_code == 200, response.json()
    assert etcd.get(key)[0] == b"last writer wins"
    entry = AuditLog.objects.filter(operation="put", target=key).latest("id")
    params = json.loads(entry.params)
    assert params == {
        "ttl": None,
        "value_size": 16,
        "revision": response.json()["node"]["modifiedIndex"],  # joined with the journal
        "tab_id": "default",
    }


def test_null_expected_revision_is_the_same_as_none(api, kv_prefix, etcd):
    key = f"{kv_prefix}plain"
    etcd.put(key, "v")

    response = _put(api, key, "w", expected_mod_revision=None)

    assert response.status_code == 200 and etcd.get(key)[0] == b"w"


def test_a_binary_value_conflict_returns_the_current_value_as_base64(api, kv_prefix, etcd):
    key = f"{kv_prefix}bin"
    etcd.put(key, b"\xff\x00\xfe")
    revision = _loaded(api, key)["modifiedIndex"]
    etcd.put(key, b"\x80\x81 other")
    mine = base64.b64encode(b"\x00\x01").decode()

    stale = _put(api, key, mine, encoding="base64", expected_mod_revision=revision)
    current = stale.json()["current"]

    assert stale.status_code == 409
    assert current["encoding"] == "base64"
    assert base64.b64decode(current["value"]) == b"\x80\x81 other"
    fresh = _put(api, key, mine, encoding="base64", expected_mod_revision=current["mod_revision"])
    assert fresh.status_code == 200 and etcd.get(key)[0] == b"\x00\x01"


def test_a_near_limit_value_is_swapped_with_the_value_sent_once(api, kv_prefix, etcd, etcd_cluster):
    key = f"{kv_prefix}big"
    etcd.put(key, "small")
    revision = _loaded(api, key)["modifiedIndex"]
    value = os.urandom(NEAR_LIMIT)
    etcdctl(etcd_cluster.client_urls[0], "put", f"{kv_prefix}by-etcdctl", stdin=value)
    body = base64.b64encode(value).decode()

    before = _grpc_bytes_received(etcd_cluster)
    response = _put(api, key, body, encoding="base64", expected_mod_revision=revision)
    sent = _grpc_bytes_received(etcd_cluster) - before

    assert response.status_code == 200, response.json()
    assert etcd.get(key)[0] == value
    assert NEAR_LIMIT < sent < NEAR_LIMIT + 64 * 1024, sent
    # The loser of a race on a near-limit key is told the whole current value.
    conflict = _put(api, key, "small again", expected_mod_revision=revision)
    assert conflict.status_code == 409
    assert base64.b64decode(conflict.json()["current"]["value"]) == value


def test_a_value_over_etcds_limit_is_413_not_a_conflict(api, kv_prefix, etcd):
    key = f"{kv_prefix}huge"
    etcd.put(key, "small")
    revision = _loaded(api, key)["modifiedIndex"]

    response = _put(api, key, "v" * int(1.6 * 1024 * 1024), expected_mod_revision=revision)

    assert response.status_code == 413
    assert response.json()["code"] == "etcd_request_too_large"
    assert etcd.get(key)[0] == b"small"


@pytest.mark.parametrize("bad", ["5", True, 1.5, -1, 2**63])
def test_a_malformed_expected_revision_is_400(api, kv_prefix, bad):
    response = _put(api, f"{kv_prefix}k", "v", expected_mod_revision=bad)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "expected_mod_revision" in response.json()["error"]


def test_the_v2_put_refuses_expected_revision_rather_than_ignoring_it(api, kv_prefix):
    response = api.put(
        "/api/kv/v2/put",
        {"key": f"{kv_prefix}v2", "value": "v", "expected_mod_revision": 3},
        format="json",
    )

    assert response.status_code == 400
    assert "v3 field" in response.json()["error"]


def _largest_accepted(put, low: int, high: int) -> int:
    """The largest value size `put(size)` accepts, by bisection in [low, high)."""
    while high - low > 1:
        middle = (low + high) // 2
        try:
            put(middle)
            low = middle
        except EtcdRequestTooLarge:
            high = middle
    return low


def test_the_compare_and_swap_costs_etcds_request_limit_only_a_few_bytes(kv_prefix, etcd):
    key = f"{kv_prefix}limit".encode()
    gateway = cluster_gateway()
    gateway.put(key, b"seed", ttl=0)

    def plain(size: int) -> None:
        gateway.put(key, b"p" * size, ttl=0)  # a bare Put: the most etcd accepts

    def swapped(size: int) -> None:
        revision = gateway.get(key).mod_revision
        gateway.put(key, b"c" * size, ttl=None, expected_mod_revision=revision)

    limit = 1536 * 1024  # etcd's default --max-request-bytes
    plain_max = _largest_accepted(plain, limit - 4096, limit + 1)
    swapped_max = _largest_accepted(swapped, limit - 4096, limit + 1)

    print(f"largest value: plain put {plain_max} B, compare-and-swap put {swapped_max} B")
    assert limit - 256 < plain_max < limit
    # The value travels once: the compare and the failure branch's range add only key-sized bytes.
    assert plain_max - 2 * len(key) - 64 <= swapped_max <= plain_max
    revision = gateway.get(key).mod_revision
    with pytest.raises(EtcdRequestTooLarge):
        gateway.put(key, b"x" * (swapped_max + 1), ttl=None, expected_mod_revision=revision)
    assert gateway.get(key).mod_revision == revision
