"""Latency quantiles over a trailing window, on real quiet clusters through the API."""

import time

import httpx
import pytest
from django.core import checks

from etcdgateway import cluster_gateway
from monitoring import services
from monitoring.checks import quantile_window_seconds

pytestmark = pytest.mark.usefixtures("fresh_slot_cache")

WAL_P99 = "etcd_disk_wal_fsync_duration_seconds_p99"
COMMIT_P99 = "etcd_disk_backend_commit_duration_seconds_p99"


def _fsyncs(cluster) -> float:
    """WAL fsyncs of every member so far (etcd's own counter)."""
    total = 0.0
    for url in cluster.client_urls:
        for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
            if line.startswith("etcd_disk_wal_fsync_duration_seconds_count "):
                total += float(line.split()[1])
    return total


def _cycle(api) -> dict:
    time.sleep(1.1)  # sample timestamps are whole seconds: one cycle per second at most
    services.collect_cluster()
    return api.get("/api/current").json()


def _chart(api, name) -> list[float]:
    body = api.get(f"/api/range?metrics={name}&range=10m").json()
    return [point["value"] for point in (body["metrics"] or {}).get(name, [])]


@pytest.mark.django_db
def test_a_quiet_cluster_keeps_its_disk_p99s_and_charts_show_the_window_only(
    api, etcd_cluster_factory
):
    cluster = etcd_cluster_factory(size=3)
    settled = None
    while settled != (settled := _fsyncs(cluster)):  # the members' start-up writes are over
        time.sleep(0.5)
    quiet = [_cycle(api) for _ in range(3)]
    fsyncs_before = _fsyncs(cluster)
    quiet.append(_cycle(api))
    assert _fsyncs(cluster) == fsyncs_before, "the cluster was not quiet"

    for current in quiet:  # started members fsynced: since-start p99s, said so
        for name in (WAL_P99, COMMIT_P99):
            assert current["metrics"][name] > 0, name
            assert current["basis"][name] == "cumulative"
    assert _chart(api, WAL_P99) == []  # no window value yet: the charts have no point

    cluster_gateway().kv(lambda c: c.put("/quantile/one", "write"))
    after = [_cycle(api) for _ in range(3)]

    for current in after:  # one write stays in the 300 s window across quiet cycles
        assert current["metrics"][WAL_P99] > 0
        assert current["basis"][WAL_P99] == "window"
    assert len(_chart(api, WAL_P99)) == 3


@pytest.mark.django_db
def test_after_the_window_passes_current_falls_back_to_the_cumulative_p99(
    api, etcd_cluster_factory, settings
):
    settings.COLLECTOR_INTERVAL = 1
    settings.QUANTILE_WINDOW_SECONDS = 2
    etcd_cluster_factory(size=1)
    _cycle(api)
    cluster_gateway().kv(lambda c: c.put("/quantile/one", "write"))

    seen = [_cycle(api)["basis"][WAL_P99] for _ in range(5)]

    assert seen[0] == "window"
    assert seen[-1] == "cumulative", seen
    latest = api.get("/api/current").json()["metrics"]
    assert latest[WAL_P99] > 0
    chart = _chart(api, WAL_P99)
    assert 1 <= len(chart) < 5  # the quiet cycles after the window add no chart points


def test_a_window_shorter_than_two_intervals_is_raised_and_warned_about(settings):
    settings.COLLECTOR_INTERVAL = 30
    settings.QUANTILE_WINDOW_SECONDS = 45

    warnings = [m for m in checks.run_checks() if m.id == "monitoring.W001"]

    assert quantile_window_seconds() == 60
    assert len(warnings) == 1 and "60 s is used" in warnings[0].msg
    settings.QUANTILE_WINDOW_SECONDS = 300
    assert quantile_window_seconds() == 300
    assert not [m for m in checks.run_checks() if m.id == "monitoring.W001"]
