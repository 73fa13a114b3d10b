"""The etcd gateway against a real cluster: members, status, failover, error mapping."""

import time

import grpc
import pytest
from pyetcd import etcdrpc

from etcdgateway import (
    ClusterConfig,
    EtcdInvalidRequest,
    EtcdTimeout,
    EtcdUnavailable,
    cluster_gateway,
)
from etcdgateway.errors import translate


def test_gateway_lists_three_members_with_decimal_ids(etcd_cluster):
    members = cluster_gateway().members()

    assert len(members) == 3
    assert {m.name for m in members} == {"m1", "m2", "m3"}
    assert {m.client_urls[0] for m in members} == set(etcd_cluster.client_urls)
    for member in members:
        assert member.id_str.isdigit() and int(member.id_str) == member.id
        assert member.is_learner is False


def test_status_of_each_member_agrees_on_one_leader(etcd_cluster):
    gateway = cluster_gateway()
    statuses = [gateway.client_for(url).status() for url in etcd_cluster.client_urls]

    assert len({s.member_id for s in statuses}) == 3
    assert len({s.leader_id for s in statuses}) == 1
    assert sum(s.is_leader for s in statuses) == 1
    for status in statuses:
        assert status.version.startswith("3.")
        assert status.db_size > 0 and status.raft_term >= 1
        # Fields newer than pyetcd's protos are recovered from the wire.
        assert status.raft_applied_index is not None and status.raft_applied_index > 0
        assert status.db_size_in_use is not None


def test_kv_round_trip_through_the_gateway(kv_prefix):
    gateway = cluster_gateway()
    gateway.kv(lambda c: c.put(f"{kv_prefix}a", b"1"))

    value, meta = gateway.kv(lambda c: c.get(f"{kv_prefix}a"))

    assert value == b"1" and meta.key == f"{kv_prefix}a".encode()


def test_gateway_fails_over_when_a_member_is_killed(etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    gateway = cluster_gateway()
    assert len(gateway.members()) == 3
    first = gateway._endpoints_in_order()[0]

    cluster.kill_member(next(m for m in cluster.members if m.client_url == first))

    for _ in range(5):  # every call succeeds, none raises, the dead endpoint is skipped
        assert len(gateway.members()) == 3
    assert gateway.health(max_age=0)[first].healthy is False
    assert sum(h.healthy for h in gateway.health(max_age=0).values()) == 2


def test_killed_member_is_used_again_after_restart(etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    victim = cluster.members[0]
    client = cluster_gateway().client_for(victim.client_url)
    cluster.kill_member(victim)
    with pytest.raises(EtcdUnavailable):
        client.status(timeout=1)

    cluster.start_member(victim)
    cluster.wait_healthy([victim])

    # pyetcd would refuse this node for 300 s after a failure; our clients recover at once.
    assert client.status(timeout=5).member_id != 0


def test_all_members_down_raises_unavailable_with_a_clear_message(etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    cluster.stop()
    gateway = cluster_gateway()

    with pytest.raises(EtcdUnavailable) as raised:
        gateway.members()

    assert raised.value.status_code == 503
    assert raised.value.message.startswith("etcd unavailable: ")
    assert gateway.is_available(max_age=0) is False


def test_hung_member_times_out_instead_of_blocking(etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    victim = cluster.members[1]
    cluster.pause_member(victim)
    client = cluster_gateway().client_for(victim.client_url, timeout=1)
    try:
        started = time.monotonic()
        # A fresh channel gives up connecting (503), an established one hits its deadline (504).
        with pytest.raises((EtcdTimeout, EtcdUnavailable)) as raised:
            client.status()
        assert raised.value.status_code in (503, 504)
        assert time.monotonic() - started < 3
    finally:
        cluster.resume_member(victim)


def test_grpc_error_codes_map_to_project_exceptions(kv_prefix):
    gateway = cluster_gateway()
    current = gateway.status().revision
    gateway.kv(lambda c: c.put(f"{kv_prefix}x", b"1"))
    gateway.kv(lambda c: c.compact(current))

    with pytest.raises(EtcdInvalidRequest) as raised:  # OUT_OF_RANGE: already compacted
        gateway.kv(lambda c: c.compact(current))
    assert raised.value.status_code == 400
    assert "compacted" in raised.value.message


def test_move_leader_on_a_follower_is_a_precondition_failure(etcd_cluster):
    gateway = cluster_gateway()
    statuses = {url: gateway.client_for(url).status() for url in etcd_cluster.client_urls}
    follower_url = next(url for url, s in statuses.items() if not s.is_leader)
    leader_id = next(s.member_id for s in statuses.values() if s.is_leader)

    with pytest.raises(Exception) as raised:
        gateway.client_for(follower_url).stub(
            "maintenancestub", "MoveLeader", etcdrpc.MoveLeaderRequest(targetID=leader_id)
        )
    assert raised.value.status_code == 409


def test_unknown_grpc_failure_never_leaks_as_raw_rpc_error():
    class FakeRpcError(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.PERMISSION_DENIED

        def details(self):
            return "etcdserver: permission denied"

    error = translate(FakeRpcError(), endpoint="http://x:1")
    assert error.status_code == 403 and "permission denied" in error.message


def test_cluster_config_rejects_bad_endpoints_and_half_mtls():
    with pytest.raises(ValueError):
        ClusterConfig(endpoints=("ftp://x:1",))
    with pytest.raises(ValueError):
        ClusterConfig(endpoints=("https://x:1",), client_cert="/c.pem")
    assert ClusterConfig(endpoints=("HTTP://Host:2379/",)).endpoints == ("http://host:2379",)


def test_lease_count_counts_live_leases(etcd_cluster_factory):
    cluster = etcd_cluster_factory(size=1)
    client = cluster_gateway().client_for(cluster.client_urls[0])
    assert client.lease_count() == 0

    leases = [client.call(lambda c: c.lease(60)) for _ in range(3)]
    client.call(lambda c: c.revoke_lease(leases[0].id))

    assert client.lease_count() == 2
