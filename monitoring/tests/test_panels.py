"""The panel registry draws what an SRE can read (issue 17, item 4): rates instead of cumulative
counters, the mixin's panel order, the quota on the DB-size chart, and saved layouts still load."""

import pytest

from monitoring.panels import (
    PANEL_CHARTS,
    PANELS,
    SECTIONS,
    dashboard_registry,
    merge_panel_config,
)
from monitoring.tests.expected_keys import stored_key_names

# etcd's Prometheus counters with a `_total` name that are in fact gauges (etcd_debugging_mvcc_*).
GAUGES_NAMED_TOTAL = {
    "etcd_mvcc_keys_total",
    "etcd_mvcc_watch_stream_total",
    "etcd_mvcc_watcher_total",
    "etcd_mvcc_slow_watcher_total",
    "etcd_mvcc_pending_events_total",
}
# Counters without `_total` in the name.
OTHER_COUNTERS = {"etcd_server_health_failures", "etcd_server_health_success"}
PANELS_BY_SECTION = {p.id: p.section for p in PANELS}


def _is_cumulative_counter(metric: str) -> bool:
    if metric.endswith("_rate") or metric in GAUGES_NAMED_TOTAL:
        return False
    return metric.endswith("_total") or metric in OTHER_COUNTERS


def _series():
    for panel in dashboard_registry()["panels"]:
        for series in panel["series"]:
            yield panel["id"], series


def test_no_panel_draws_a_cumulative_counter_as_a_total():
    drawn_as_increase = set()
    for panel_id, series in _series():
        if _is_cumulative_counter(series["metric"]):
            assert series["derive"] == "increase", (panel_id, series["metric"])
            drawn_as_increase.add(series["metric"])
    # Rare events are counted per interval; the busy counters come as stored per-second rates.
    assert drawn_as_increase == {
        "etcd_server_leader_changes_seen_total",
        "etcd_server_slow_apply_total",
        "etcd_server_slow_read_indexes_total",
    }
    proposals = {s["metric"]: s for p, s in _series() if p == "chartRaftProposals"}
    assert "etcd_server_proposals_committed_total_rate" in proposals
    assert proposals["etcd_server_proposals_committed_total_rate"]["unit"] == "per_second"
    assert proposals["etcd_server_proposals_pending"]["unit"] == "count"


def test_every_series_is_a_stored_name_and_has_its_own_unit():
    stored = set(stored_key_names())
    for panel_id, series in _series():
        metric = series["metric"]
        # Client request rates are keyed by the API version the scrape reports.
        assert metric in stored or metric.startswith("etcd_server_client_requests_"), metric
        assert series["unit"] in (
            "count",
            "per_second",
            "duration",
            "bytes",
            "bytes_per_second",
            "percent",
        ), (panel_id, series)
    traffic = {s["label"]: s for p, s in _series() if p == "chartPeerTraffic"}
    # Failures per second never share the bytes/s axis.
    assert traffic["Send Failures / s"]["axis"] == 1
    assert traffic["Send Failures / s"]["unit"] == "per_second"
    assert traffic["Sent"]["unit"] == "bytes_per_second"


def test_default_panels_follow_the_mixins_order_runtime_after():
    visible = [p.id for p in sorted(PANELS, key=lambda p: p.default_order) if p.default_visible]
    assert visible[:10] == [
        "chartLeaderChanges",  # up / leader / elections
        "chartGRPC",  # RPC rate and failures
        "chartGRPCTraffic",
        "chartDBSize",  # DB size vs quota
        "chartFragmentationRatio",
        "chartMVCCOps",
        "chartMVCCCompaction",
        "chartWALFsync",  # disk sync
        "chartBackendCommit",
        "chartPeerRTT",  # peer round trips
    ]
    assert visible.index("chartRaftProposals") > visible.index("chartPeerRTT")
    runtime = [i for i, pid in enumerate(visible) if PANELS_BY_SECTION[pid] == "runtime"]
    assert runtime == list(range(len(visible) - len(runtime), len(visible)))
    # The page draws sections in SECTIONS order: the default order must agree with it.
    section_rank = {sid: i for i, (sid, _) in enumerate(SECTIONS)}
    ranks = [section_rank[p.section] for p in sorted(PANELS, key=lambda p: p.default_order)]
    assert ranks == sorted(ranks)


def test_db_size_chart_carries_the_quota_lines():
    chart = PANEL_CHARTS["chartDBSize"]
    assert chart["unit"] == "bytes"
    assert [q["fraction"] for q in chart["quota_lines"]] == [0.8, 1.0]


@pytest.mark.parametrize(
    "saved",
    [
        # A layout saved before the reorder: the old default order, Slow Ops first, CPU hidden.
        {
            "panels": [
                {"id": "chartSlowOps", "visible": True, "order": 0},
                {"id": "chartRaftProposals", "visible": True, "order": 1},
                {"id": "chartLeaderChanges", "visible": False, "order": 2},
                {"id": "chartCPU", "visible": False, "order": 3},
            ],
            "cards": [],
        },
    ],
)
def test_saved_layouts_keep_their_choices(saved):
    merged = merge_panel_config(saved)
    panels = merged["panels"]
    assert [p["id"] for p in panels[:4]] == [
        "chartSlowOps",
        "chartRaftProposals",
        "chartLeaderChanges",
        "chartCPU",
    ]
    by_id = {p["id"]: p for p in panels}
    assert by_id["chartLeaderChanges"]["visible"] is False  # the user's choice, not the new default
    assert by_id["chartCPU"]["visible"] is False
    assert len(panels) == len(PANELS) and [p["order"] for p in panels] == list(range(len(PANELS)))
    # Panels the user never saw are appended with their registry defaults.
    assert (
        by_id["chartDBSize"]["visible"] is True and by_id["chartLeaseActivity"]["visible"] is False
    )


def test_default_layout_of_a_new_user_is_the_registry_order():
    merged = merge_panel_config(None)
    assert [p["id"] for p in merged["panels"]] == [p.id for p in PANELS]
