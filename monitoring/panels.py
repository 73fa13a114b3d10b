"""The one source of truth for the dashboard's 27 panels and 11 overview cards.

The dashboard template and `/api/user/panel-config` both read these lists, so the server's
defaults and the settings dialog's "Reset" can never disagree (the reference kept two copies).
"""

from dataclasses import dataclass

MAX_VISIBLE_CARDS = 7

# Section order on the page (fixed; panels never move between sections). The order is the one an
# SRE checks a cluster in (the etcd mixin's dashboard): up and leader, RPC rate and failures, DB
# size against the quota, disk sync, peer round trips, proposals; the process runtime after.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("raft", "Cluster & Leader"),
    ("grpc", "gRPC Requests"),
    ("storage", "Database & MVCC"),
    ("disk", "Disk Sync"),
    ("network", "Network & Peers"),
    ("proposals", "Raft Proposals"),
    ("runtime", "Process & Runtime"),
    ("lease", "Lease Management"),
)


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    tag: str
    section: str
    default_order: int
    default_visible: bool


@dataclass(frozen=True)
class Card:
    id: str
    label: str
    default_visible: bool


# (id, title, tag, section, default visible), listed in default order: sections as above, the
# panel an SRE reads first first within each. Ids never change (saved layouts name them).
_PANEL_ROWS = (
    ("chartLeaderChanges", "Up, Leader & Elections", "Status", "raft", True),
    ("chartServerHealth", "Server Health & Quota", "Mixed", "raft", False),
    ("chartGRPC", "gRPC Request Rate", "Rate", "grpc", True),
    ("chartGRPCTraffic", "gRPC Client Traffic", "Rate", "grpc", True),
    ("chartDBSize", "Database Size vs Quota", "Gauge", "storage", True),
    ("chartFragmentationRatio", "Fragmentation Ratio", "Gauge", "storage", True),
    ("chartMVCCOps", "MVCC Operations", "Rate", "storage", True),
    ("chartMVCCCompaction", "MVCC Revisions & Compaction", "Mixed", "storage", True),
    ("chartWatcherEvents", "Watcher & Events", "Mixed", "storage", False),
    ("chartWALFsync", "WAL Fsync Duration", "Histogram", "disk", True),
    ("chartBackendCommit", "Backend Commit Duration", "Histogram", "disk", True),
    ("chartSnapshotDefrag", "Snapshot & Defrag Duration", "Histogram", "disk", False),
    ("chartBackendBreakdown", "Backend Commit Breakdown", "Histogram", "disk", False),
    ("chartPeerRTT", "Peer Round Trip Time", "Histogram", "network", True),
    ("chartPeerTraffic", "Peer Network Traffic", "Rate", "network", True),
    ("chartActivePeersGRPC", "Active Peers & gRPC Messages", "Mixed", "network", False),
    ("chartRaftProposals", "Raft Proposals", "Rate", "proposals", True),
    ("chartProposalFailedRate", "Proposal Failed Rate", "Rate", "proposals", True),
    ("chartProposalLag", "Proposal Commit-Apply Lag", "Gauge", "proposals", True),
    ("chartSlowOps", "Slow Operations", "Increase", "proposals", True),
    ("chartCPU", "CPU Usage", "Rate", "runtime", True),
    ("chartMemory", "Memory", "Gauge", "runtime", True),
    ("chartGoroutines", "Goroutines", "Gauge", "runtime", True),
    ("chartGC", "GC Duration", "Summary", "runtime", True),
    ("chartFDs", "File Descriptors", "Gauge", "runtime", True),
    ("chartMemSys", "Memory Sys", "Gauge", "runtime", True),
    ("chartLeaseActivity", "Lease Activity", "Rate", "lease", False),
)

PANELS: tuple[Panel, ...] = tuple(
    Panel(
        id=row[0], title=row[1], tag=row[2], section=row[3], default_order=i, default_visible=row[4]
    )
    for i, row in enumerate(_PANEL_ROWS)
)
PANELS_BY_ID = {panel.id: panel for panel in PANELS}

CARDS: tuple[Card, ...] = (
    Card("cardLeader", "Leader Status", True),
    Card("cardLeaderChanges", "Leader Changes", True),
    Card("cardMemberSize", "Members", True),
    Card("cardRaftTerm", "Raft Term", True),
    Card("cardRaftIndex", "Raft Index", True),
    Card("cardWAL", "WAL Fsync P99", True),
    Card("cardFragmentationRatio", "Fragmentation Ratio", True),
    Card("cardPending", "Proposals Pending", False),
    Card("cardLag", "Commit-Apply Lag", False),
    Card("cardFailedRate", "Proposal Failed Rate", False),
    Card("cardRevision", "Current Revision", False),
)
CARDS_BY_ID = {card.id: card for card in CARDS}


def default_panels() -> list[dict]:
    return [{"id": p.id, "visible": p.default_visible, "order": p.default_order} for p in PANELS]


def default_cards() -> list[dict]:
    return [{"id": c.id, "visible": c.default_visible, "order": i} for i, c in enumerate(CARDS)]


def default_panel_config() -> dict:
    """The layout of a user who never saved one."""
    return {"panels": default_panels(), "cards": default_cards()}


def _merge(saved, known: dict, default_visible, *, max_visible: int | None = None) -> list[dict]:
    """Keep the first occurrence of each known id in saved order, drop unknown/duplicate ids or
    malformed entries, then append the missing ids with their default visibility."""
    merged: list[dict] = []
    seen: set[str] = set()
    for entry in saved if isinstance(saved, list) else []:
        if not isinstance(entry, dict):
            continue
        item_id = entry.get("id")
        if not isinstance(item_id, str) or item_id not in known or item_id in seen:
            continue
        seen.add(item_id)
        merged.append({"id": item_id, "visible": entry.get("visible") is True, "order": 0})
    visible = sum(1 for entry in merged if entry["visible"])
    for item_id in known:
        if item_id in seen:
            continue
        show = default_visible(item_id)
        # A card added later must not push a saved layout over the visible-card limit.
        if show and max_visible is not None and visible >= max_visible:
            show = False
        visible += show
        merged.append({"id": item_id, "visible": show, "order": 0})
    for index, entry in enumerate(merged):
        entry["order"] = index
    return merged


def merge_panel_config(saved: dict | None) -> dict:
    """A stored layout merged with the registry (§3.4): always every panel and every card once.

    Saved order is kept (orders are renumbered 0..n in that order); sorting by `order` within the
    fixed sections is the dashboard's job, exactly as with the reference.
    """
    saved = saved if isinstance(saved, dict) else {}
    panels = saved.get("panels")
    if isinstance(panels, list):
        panels = sorted(
            (p for p in panels if isinstance(p, dict)),
            key=lambda p: p.get("order") if isinstance(p.get("order"), int) else 1 << 30,
        )
    cards = saved.get("cards")
    if isinstance(cards, list):
        cards = sorted(
            (c for c in cards if isinstance(c, dict)),
            key=lambda c: c.get("order") if isinstance(c.get("order"), int) else 1 << 30,
        )
    return {
        "panels": _merge(panels, PANELS_BY_ID, lambda i: PANELS_BY_ID[i].default_visible),
        "cards": _merge(
            cards,
            CARDS_BY_ID,
            lambda i: CARDS_BY_ID[i].default_visible,
            max_visible=MAX_VISIBLE_CARDS,
        ),
    }


# --- what each panel draws (§3.2) ---------------------------------------------------------------
# Units: count, per_second, duration (seconds), bytes, bytes_per_second, percent. A series is
# (metric, label) or (metric, label, *options): "area", "right" (second y axis, `right_unit`),
# "increase" (a stored cumulative counter drawn as its increase from one point to the next).
# Every metric here is a name the collector stores, so a chart never asks for a missing series.
#
# No panel draws a cumulative counter as it is (a total since the member started says nothing
# about now, and drops to zero on every restart): busy counters are drawn as the per-second
# rates the collector derives from float64 scrapes (`*_rate`); rare events (leader changes, slow
# applies) as integer increases per point, which is what an SRE counts ("2 elections at 14:05"):
# as a rate they would read 0.0033/s. monitoring/tests/test_panels.py holds every panel to this.

_P = ("p50", "p90", "p99")

PANEL_CHARTS: dict[str, dict] = {
    "chartRaftProposals": {
        "unit": "per_second",
        "right_unit": "count",
        "series": [
            ("etcd_server_proposals_committed_total_rate", "Committed / s", "area"),
            ("etcd_server_proposals_applied_total_rate", "Applied / s"),
            ("etcd_server_proposals_failed_rate", "Failed / s"),
            ("etcd_server_proposals_pending", "Pending", "right"),
        ],
    },
    "chartLeaderChanges": {
        # Up (the collector reached the member: 1/0), has a leader (1/0) and leader elections.
        "unit": "count",
        "series": [
            ("collector_up", "Up"),
            ("etcd_server_has_leader", "Has Leader"),
            ("etcd_server_leader_changes_seen_total", "Leader Changes", "increase"),
        ],
    },
    "chartSlowOps": {
        "unit": "count",
        "series": [
            ("etcd_server_slow_apply_total", "Slow Applies", "increase"),
            ("etcd_server_slow_read_indexes_total", "Slow Read Indexes", "increase"),
        ],
    },
    "chartProposalLag": {
        "unit": "count",
        "series": [("etcd_server_proposals_commit_apply_lag", "Commit-Apply Lag")],
    },
    "chartProposalFailedRate": {
        "unit": "per_second",
        "series": [("etcd_server_proposals_failed_rate", "Failed / s")],
    },
    "chartServerHealth": {
        "unit": "per_second",
        "series": [
            ("etcd_server_client_requests_35_rate", "Client Requests (v3.5)"),
            ("etcd_server_client_requests_34_rate", "Client Requests (v3.4)"),
            ("etcd_server_client_requests_unknown_rate", "Client Requests (unknown)"),
            ("etcd_server_heartbeat_send_failures_total_rate", "Heartbeat Failures"),
            ("etcd_server_health_failures_rate", "Health Failures"),
            ("etcd_server_read_indexes_failed_total_rate", "Read Index Failures"),
        ],
    },
    "chartWALFsync": {
        "unit": "duration",
        "series": [(f"etcd_disk_wal_fsync_duration_seconds_{p}", p.upper()) for p in _P],
        "bands": [
            {"from": 0, "to": 0.01, "color": "green", "label": "< 10 ms"},
            {"from": 0.01, "to": 0.05, "color": "orange", "label": "10-50 ms"},
            {"from": 0.05, "to": None, "color": "red", "label": ">= 50 ms"},
        ],
    },
    "chartBackendCommit": {
        "unit": "duration",
        "series": [(f"etcd_disk_backend_commit_duration_seconds_{p}", p.upper()) for p in _P],
        "mark_lines": [{"value": 0.025, "label": "target 25 ms", "color": "orange"}],
    },
    "chartSnapshotDefrag": {
        "unit": "duration",
        "series": [
            ("etcd_disk_backend_defrag_duration_seconds_p99", "Defrag P99"),
            ("etcd_disk_backend_snapshot_duration_seconds_p99", "Backend Snapshot P99"),
            ("etcd_snap_db_fsync_duration_seconds_p99", "Snap DB Fsync P99"),
            ("etcd_snap_db_save_total_duration_seconds_p99", "Snap DB Save P99"),
        ],
    },
    "chartBackendBreakdown": {
        "unit": "duration",
        "series": [
            (f"etcd_disk_commit_{phase}_duration_seconds_{p}", f"{phase.title()} {p.upper()}")
            for phase in ("rebalance", "spill", "write")
            for p in ("p50", "p99")
        ],
    },
    "chartDBSize": {
        "unit": "bytes",
        "series": [
            ("etcd_mvcc_db_total_size_in_bytes", "Total Size", "area"),
            ("etcd_mvcc_db_total_size_in_use_in_bytes", "In Use"),
        ],
        # Fractions of the latest etcd_server_quota_backend_bytes (from /api/current). The axis
        # always reaches the quota (100 % on the right axis), so the lines are never off-scale;
        # 80 % is where the cluster health model turns degraded.
        "quota_lines": [
            {"fraction": 0.8, "label": "80 % of quota", "color": "orange"},
            {"fraction": 1.0, "label": "quota", "color": "red"},
        ],
    },
    "chartFragmentationRatio": {
        "unit": "percent",
        # Derived in the browser from the two series joined on timestamp (not array index).
        "derived": "fragmentation",
        "series": [
            ("etcd_mvcc_db_total_size_in_bytes", "Total Size"),
            ("etcd_mvcc_db_total_size_in_use_in_bytes", "In Use"),
        ],
        "y_max": 100,
        "mark_lines": [
            {"value": 30, "label": "warning 30%", "color": "yellow"},
            {"value": 40, "label": "caution 40%", "color": "orange"},
            {"value": 60, "label": "critical 60%", "color": "red"},
        ],
    },
    "chartMVCCOps": {
        "unit": "per_second",
        "series": [
            (f"etcd_mvcc_{op}_total_rate", op.title()) for op in ("put", "delete", "txn", "range")
        ],
    },
    "chartMVCCCompaction": {
        "unit": "count",
        "right_unit": "duration",
        "series": [
            # Revisions are positions (a gauge in etcd), read as levels; the gap between them is
            # the history compaction has not removed yet.
            ("etcd_mvcc_current_revision", "Current Revision"),
            ("etcd_mvcc_compact_revision", "Compact Revision"),
            ("etcd_mvcc_db_compaction_keys_total_rate", "Compaction Keys / s", "per_second"),
            ("etcd_mvcc_db_compaction_pause_duration_p99", "Compaction Pause P99", "right"),
            ("etcd_mvcc_db_compaction_total_duration_p99", "Compaction Total P99", "right"),
        ],
        "right_mark_lines": [
            {"value": 0.1, "label": "warning 100 ms", "color": "orange"},
            {"value": 0.5, "label": "critical 500 ms", "color": "red"},
        ],
    },
    "chartWatcherEvents": {
        "unit": "count",
        "right_unit": "per_second",
        "series": [
            ("etcd_mvcc_events_total_rate", "Events / s", "right"),
            ("etcd_mvcc_pending_events_total", "Pending Events"),
            ("etcd_mvcc_watch_stream_total", "Watch Streams"),
            ("etcd_mvcc_watcher_total", "Watchers"),
            ("etcd_mvcc_slow_watcher_total", "Slow Watchers"),
        ],
    },
    "chartPeerTraffic": {
        "unit": "bytes_per_second",
        "right_unit": "per_second",
        "series": [
            ("etcd_network_peer_sent_bytes_total_rate", "Sent", "area"),
            ("etcd_network_peer_received_bytes_total_rate", "Received", "area"),
            ("etcd_network_peer_sent_failures_total_rate", "Send Failures / s", "right"),
            ("etcd_network_peer_received_failures_total_rate", "Receive Failures / s", "right"),
        ],
    },
    "chartPeerRTT": {
        "unit": "duration",
        "series": [(f"etcd_network_peer_round_trip_time_seconds_{p}", p.upper()) for p in _P],
    },
    "chartActivePeersGRPC": {
        "unit": "count",
        "right_unit": "per_second",
        "series": [
            ("etcd_network_active_peers", "Active Peers"),
            ("grpc_server_msg_received_total_rate", "gRPC Msg Received / s", "right"),
            ("grpc_server_msg_sent_total_rate", "gRPC Msg Sent / s", "right"),
        ],
    },
    "chartGRPC": {
        "unit": "per_second",
        "series": [
            ("grpc_server_handled_total_rate", "Total"),
            ("grpc_server_handled_ok_total_rate", "OK", "area"),
            ("grpc_server_handled_error_total_rate", "Error"),
            ("grpc_server_started_total_rate", "Started"),
        ],
    },
    "chartGRPCTraffic": {
        "unit": "bytes_per_second",
        "series": [
            ("etcd_network_client_grpc_sent_bytes_total_rate", "Sent"),
            ("etcd_network_client_grpc_received_bytes_total_rate", "Received"),
        ],
    },
    "chartCPU": {"unit": "percent", "series": [("process_cpu_usage_percent", "CPU")]},
    "chartMemory": {
        "unit": "bytes",
        "series": [
            ("process_resident_memory_bytes", "Resident"),
            ("go_memstats_alloc_bytes", "Heap Alloc"),
        ],
    },
    "chartGoroutines": {"unit": "count", "series": [("go_goroutines", "Goroutines")]},
    "chartGC": {
        "unit": "duration",
        "series": [
            ("go_gc_duration_seconds_q05", "P50"),
            ("go_gc_duration_seconds_q075", "P75"),
            ("go_gc_duration_seconds_q1", "Max"),
        ],
    },
    "chartFDs": {"unit": "count", "series": [("process_open_fds", "Open FDs")]},
    "chartMemSys": {"unit": "bytes", "series": [("go_memstats_sys_bytes", "Sys")]},
    "chartLeaseActivity": {
        "unit": "per_second",
        "series": [
            (f"etcd_lease_{what}_total_rate", what.title())
            for what in ("granted", "revoked", "renewed", "expired")
        ],
    },
}

# card id → (metric, unit) read from /api/current; None metric = computed in the browser.
CARD_METRICS: dict[str, tuple[str | None, str]] = {
    "cardLeader": ("etcd_server_has_leader", "bool"),
    "cardLeaderChanges": ("etcd_server_leader_changes_seen_total", "count"),
    "cardMemberSize": (None, "count"),
    "cardRaftTerm": ("raft_term", "integer"),
    "cardRaftIndex": ("raft_index", "integer"),
    "cardWAL": ("etcd_disk_wal_fsync_duration_seconds_p99", "duration"),
    "cardFragmentationRatio": (None, "percent"),
    "cardPending": ("etcd_server_proposals_pending", "count"),
    "cardLag": ("etcd_server_proposals_commit_apply_lag", "count"),
    "cardFailedRate": ("etcd_server_proposals_failed_rate", "per_second"),
    "cardRevision": ("etcd_mvcc_current_revision", "integer"),
}


UNITS = ("count", "per_second", "duration", "bytes", "bytes_per_second", "percent")


def _series_dict(row: tuple, chart: dict) -> dict:
    options = row[2:] if len(row) > 2 else ()
    axis = 1 if "right" in options else 0
    # A series' own unit (tooltip) is its axis' unit unless an option names another one.
    unit = next((o for o in options if o in UNITS), None)
    if unit is None:
        unit = chart["right_unit"] if axis else chart["unit"]
    return {
        "metric": row[0],
        "label": row[1],
        "area": "area" in options,
        "axis": axis,
        "unit": unit,
        "derive": "increase" if "increase" in options else None,
    }


def dashboard_registry() -> dict:
    """Everything the dashboard page needs to draw panels and cards, as plain JSON data."""
    panels = []
    for panel in PANELS:
        chart = PANEL_CHARTS[panel.id]
        panels.append(
            {
                "id": panel.id,
                "title": panel.title,
                "tag": panel.tag,
                "section": panel.section,
                "default_order": panel.default_order,
                "default_visible": panel.default_visible,
                **{k: v for k, v in chart.items() if k != "series"},
                "series": [_series_dict(row, chart) for row in chart["series"]],
            }
        )
    cards = [
        {
            "id": card.id,
            "label": card.label,
            "default_visible": card.default_visible,
            "metric": CARD_METRICS[card.id][0],
            "unit": CARD_METRICS[card.id][1],
        }
        for card in CARDS
    ]
    return {
        "sections": [{"id": sid, "title": title} for sid, title in SECTIONS],
        "panels": panels,
        "cards": cards,
        "max_visible_cards": MAX_VISIBLE_CARDS,
    }
