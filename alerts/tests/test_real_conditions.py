"""Rules fed by collected metrics and member versions, on real clusters: a fragmented database
after a mass delete (then defragmented), members running two etcd versions, and the unary gRPC
handling time of a member started with --metrics=extensive."""

import itertools
import os
import time
from pathlib import Path

import pytest

from alerts.tests.test_faults import _ids, _started
from devtools.localcluster import etcd_binary, etcd_version
from etcdgateway import cluster_gateway
from monitoring import timeseries
from monitoring.models import Sample
from monitoring.tests.expected_keys import extensive_key_names

REPO = Path(__file__).resolve().parents[2]
QUOTA = 16 * 1024 * 1024
SIZE, IN_USE = "etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_use_in_bytes"


def _collect_until_a_transition(monitor, gateway, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    for tick in itertools.count():
        gateway.put(b"/frag-tick", str(tick).encode(), ttl=None)
        monitor.collect()
        if transitions := monitor.round():
            return transitions
        assert time.monotonic() < deadline, "no transition within the timeout"
        time.sleep(0.2)


@pytest.mark.django_db
def test_a_mass_delete_fragments_the_database_until_it_is_defragmented(
    etcd_cluster_factory, monitor
):
    _started(etcd_cluster_factory, monitor, size=1, extra_args=[f"--quota-backend-bytes={QUOTA}"])
    monitor.set_rule("fragmentation", for_seconds=0)
    [member_id] = _ids(monitor.api).values()
    gateway = cluster_gateway()

    # 6 MiB of values: the file grows past a quarter of the 16 MiB quota while all is in use.
    value = b"v" * 32 * 1024
    for batch in range(6):  # 1 MiB per transaction, under etcd's request size limit
        keys = range(batch * 32, (batch + 1) * 32)
        gateway.put_all((f"/frag/{index:04}".encode(), value) for index in keys)
    monitor.collect()
    assert monitor.round() == []
    assert monitor.alert("fragmentation", member_id) is None

    # Delete (nearly) everything and compact the history away: the pages are free but the
    # file keeps its size.
    assert gateway.delete(b"/frag/", prefix=b"/frag/") == 192
    gateway.compact(gateway.status().revision, physical=True)
    # bbolt counts freed pages as free only after later transactions commit: write a little
    # until the collector sees the in-use size fall.
    [fired] = _collect_until_a_transition(monitor, gateway)
    assert (fired.rule, fired.status, fired.member_id) == ("fragmentation", "firing", member_id)
    alert = monitor.alert("fragmentation", member_id, "firing")
    assert alert["severity"] == "warning"
    values = alert["values"]
    assert values["db_quota_bytes"] == QUOTA
    assert values["quota_ratio"] > 0.25 and values["in_use_ratio"] < 0.5
    assert values["db_in_use_bytes"] < values["db_size_bytes"] / 2
    assert "fragmented" in alert["summary"]

    response = monitor.api.post("/api/ops/defragment", {"member_id": member_id}, format="json")
    assert response.status_code == 200, response.content
    [resolved] = _collect_until_a_transition(monitor, gateway)
    assert (resolved.rule, resolved.status) == ("fragmentation", "resolved")
    assert monitor.alert("fragmentation", member_id)["state"] == "resolved"


@pytest.mark.django_db
def test_a_mass_delete_on_a_database_small_for_its_quota_is_no_fragmentation(
    etcd_cluster_factory, monitor
):
    """The etcd mixin's fixed 100 MiB floor fires on small clusters (kube-prometheus#2470);
    ours needs the file above a quarter of the quota (2 GiB by default)."""
    _started(etcd_cluster_factory, monitor, size=1)
    monitor.set_rule("fragmentation", for_seconds=0)
    [member_id] = _ids(monitor.api).values()
    gateway = cluster_gateway()
    for batch in range(2):
        keys = range(batch * 32, (batch + 1) * 32)
        gateway.put_all((f"/frag/{index:04}".encode(), b"v" * 32 * 1024) for index in keys)
    gateway.delete(b"/frag/", prefix=b"/frag/")
    gateway.compact(gateway.status().revision, physical=True)

    # Until the collector sees most of the file free, then once more: nothing fires.
    time.sleep(1.1)
    deadline = time.monotonic() + 10
    while True:
        gateway.put(b"/frag-tick", b"x", ttl=None)
        monitor.collect()
        assert monitor.round() == []
        db = _stored(member_id, [SIZE, IN_USE])
        if db[IN_USE] < db[SIZE] / 2:  # fragmented: only the quota ratio keeps it quiet
            break
        assert time.monotonic() < deadline, "the freed pages never showed"
        time.sleep(1.1)  # one sample per second
    time.sleep(1.1)
    monitor.collect()
    assert monitor.round() == []
    assert monitor.alert("fragmentation", member_id) is None


def _another_etcd() -> tuple[str, str, str]:
    """(binary, its version, the default binary's version) of an etcd whose version differs
    from the one the fixtures start: the 3.5 download, or the system's 3.4 when the suite
    itself runs on 3.5 (`make test-etcd35`)."""
    default_version = etcd_version(etcd_binary())
    etcd35_dir = os.environ.get("ETCD35_DIR") or str(REPO / ".etcd35")
    for candidate in (os.path.join(etcd35_dir, "bin", "etcd"), "/usr/bin/etcd"):
        if os.access(candidate, os.X_OK):
            version = etcd_version(candidate)
            if version != default_version:
                return candidate, version, default_version
    pytest.skip(f"no etcd binary other than version {default_version} (run `make etcd35` for 3.5)")


@pytest.mark.django_db
def test_a_member_on_another_etcd_version_fires_version_skew(etcd_cluster_factory, monitor):
    other, other_version, version = _another_etcd()
    cluster = _started(etcd_cluster_factory, monitor, binaries=[None, None, other])
    odd = cluster.members[2]
    odd_id = _ids(monitor.api)[odd.client_url]
    monitor.set_rule("version_skew", for_seconds=0)

    [fired] = monitor.round()
    assert (fired.rule, fired.status, fired.severity) == ("version_skew", "firing", "info")
    alert = monitor.alert("version_skew", state="firing")
    assert alert["member_id"] is None  # one alert for the cluster
    versions = alert["values"]["versions"]
    assert sorted(versions.values()) == sorted([version, version, other_version])
    assert versions[odd_id] == other_version
    assert version in alert["summary"] and other_version in alert["summary"]

    # The rolling upgrade (or here: downgrade) completes: the member runs the common version.
    cluster.kill_member(odd)
    odd.binary = None
    cluster.start_member(odd)
    cluster.wait_healthy([odd])
    monitor.until(
        lambda: monitor.alert("version_skew", state="resolved"), what="version_skew resolved"
    )
    assert [(t.rule, t.status) for t in monitor.transitions] == [
        ("version_skew", "firing"),
        ("version_skew", "resolved"),
    ]


@pytest.mark.django_db
def test_members_on_one_version_are_no_version_skew(etcd_cluster_factory, monitor):
    _started(etcd_cluster_factory, monitor)
    monitor.set_rule("version_skew", for_seconds=0)
    assert monitor.round() == []
    assert monitor.alert("version_skew") is None


def _stored(member_id: str, names: list[str]) -> dict[str, float]:
    sample = Sample.objects.filter(member__member_id=member_id).order_by("-ts").first()
    slots = timeseries.slots_for(names)
    return {
        name: sample.vals[slot - 1]
        for name, slot in slots.items()
        if slot - 1 < len(sample.vals) and sample.vals[slot - 1] is not None
    }


@pytest.mark.django_db
def test_a_member_with_extensive_metrics_feeds_grpc_slow(etcd_cluster_factory, monitor):
    _started(etcd_cluster_factory, monitor, size=1, extra_args=["--metrics=extensive"])
    [member_id] = _ids(monitor.api).values()
    monitor.set_rule("grpc_slow", for_seconds=0)
    gateway = cluster_gateway()
    for index in range(20):
        gateway.put(f"/grpc/{index}".encode(), b"v", ttl=None)
    time.sleep(1.1)  # samples are per whole second: the next collection is a new one
    monitor.collect()

    stored = _stored(member_id, extensive_key_names())
    # Unary calls (our puts, the collector's Status and MemberList) were counted and timed.
    assert stored["grpc_server_unary_handling_seconds_count"] >= 20
    assert 0 < stored["grpc_server_unary_handling_seconds_p99"] < 0.15
    # A loopback member answers fast: evaluated, nothing slow.
    assert monitor.round() == []
    assert monitor.alert("grpc_slow") is None

    monitor.set_rule("grpc_slow", thresholds={"p99_seconds": 0.000001})
    [fired] = monitor.round()
    assert (fired.rule, fired.status, fired.member_id) == ("grpc_slow", "firing", member_id)
    assert fired.values["p99_seconds"] == pytest.approx(
        stored["grpc_server_unary_handling_seconds_p99"], rel=1e-3
    )
