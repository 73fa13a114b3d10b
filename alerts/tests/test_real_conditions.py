"""Rules fed by collected metrics and member versions, on real clusters: a fragmented database
after a mass delete (then defragmented), and members running two etcd versions."""

import itertools
import time

import pytest

from alerts.tests.test_faults import _ids, _started
from etcdgateway import cluster_gateway

QUOTA = 16 * 1024 * 1024


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
