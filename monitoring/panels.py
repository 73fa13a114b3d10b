"""The one source of truth for the dashboard's 27 panels and 11 overview cards.

The dashboard template and `/api/user/panel-config` both read these lists, so the server's
defaults and the settings dialog's "Reset" can never disagree (the reference kept two copies).
"""

from dataclasses import dataclass

MAX_VISIBLE_CARDS = 7

# Section order on the page (fixed; panels never move between sections).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("raft", "Raft & Server"),
    ("disk", "Disk Performance"),
    ("storage", "MVCC & Storage"),
    ("network", "Network & Peers"),
    ("grpc", "gRPC Requests"),
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


# (id, title, tag, section, default visible), listed in default order (§3.3).
_PANEL_ROWS = (
    ("chartRaftProposals", "Raft Proposals", "Counter", "raft", True),
    ("chartLeaderChanges", "Leader Changes", "Counter", "raft", False),
    ("chartSlowOps", "Slow Operations", "Counter", "raft", True),
    ("chartProposalLag", "Proposal Commit-Apply Lag", "Gauge", "raft", True),
    ("chartProposalFailedRate", "Proposal Failed Rate", "Rate", "raft", True),
    ("chartWALFsync", "WAL Fsync Duration", "Histogram", "disk", True),
    ("chartBackendCommit", "Backend Commit Duration", "Histogram", "disk", True),
    ("chartDBSize", "Database Size", "Gauge", "storage", True),
    ("chartMVCCOps", "MVCC Operations", "Counter", "storage", True),
    ("chartPeerTraffic", "Peer Network Traffic", "Counter", "network", True),
    ("chartPeerRTT", "Peer Round Trip Time", "Histogram", "network", True),
    ("chartGRPC", "gRPC Request Rate", "Counter", "grpc", True),
    ("chartGRPCTraffic", "gRPC Client Traffic", "Counter", "grpc", True),
    ("chartCPU", "CPU Usage", "Rate", "runtime", True),
    ("chartMemory", "Memory", "Gauge", "runtime", True),
    ("chartGoroutines", "Goroutines", "Gauge", "runtime", True),
    ("chartGC", "GC Duration", "Summary", "runtime", True),
    ("chartFDs", "File Descriptors", "Gauge", "runtime", True),
    ("chartMemSys", "Memory Sys", "Gauge", "runtime", True),
    ("chartServerHealth", "Server Health & Quota", "Mixed", "raft", False),
    ("chartSnapshotDefrag", "Snapshot & Defrag Duration", "Histogram", "disk", False),
    ("chartBackendBreakdown", "Backend Commit Breakdown", "Histogram", "disk", False),
    ("chartMVCCCompaction", "MVCC Revisions & Compaction", "Mixed", "storage", True),
    ("chartWatcherEvents", "Watcher & Events", "Mixed", "storage", False),
    ("chartLeaseActivity", "Lease Activity", "Counter", "lease", False),
    ("chartActivePeersGRPC", "Active Peers & gRPC Messages", "Mixed", "network", False),
    ("chartFragmentationRatio", "Fragmentation Ratio", "Gauge", "storage", True),
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
# (metric, label) or (metric, label, options) with options "area" and/or "right" (second y axis).
# Every metric here is a name the collector stores, so a chart never asks for a missing series.

_P = ("p50", "p90", "p99")

PANEL_CHARTS: dict[str, dict] = {
    "chartRaftProposals": {
        "unit": "count",
        "series": [
            ("etcd_server_proposals_committed_total", "Committed", "area"),
            ("etcd_server_proposals_applied_total", "Applied"),
            ("etcd_server_proposals_pending", "Pending"),
            ("etcd_server_proposals_failed_total", "Failed"),
        ],
    },
    "chartLeaderChanges": {
        "unit": "count",
        "series": [("etcd_server_leader_changes_seen_total", "Leader Changes")],
    },
    "chartSlowOps": {
        "unit": "count",
        "series": [
            ("etcd_server_slow_apply_total", "Slow Apply"),
            ("etcd_server_slow_read_indexes_total", "Slow Read Index"),
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
        # Fractions of the latest etcd_server_quota_backend_bytes (from /api/current).
        "quota_lines": [
            {"fraction": 0.75, "label": "warning 75% quota", "color": "orange"},
            {"fraction": 0.9, "label": "critical 90% quota", "color": "red"},
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
            ("etcd_mvcc_current_revision", "Current Revision"),
            ("etcd_mvcc_compact_revision", "Compact Revision"),
            ("etcd_mvcc_db_compaction_keys_total_rate", "Compaction Keys / s"),
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
        "series": [
            ("etcd_mvcc_events_total_rate", "Events / s"),
            ("etcd_mvcc_pending_events_total", "Pending Events"),
            ("etcd_mvcc_watch_stream_total", "Watch Streams"),
            ("etcd_mvcc_watcher_total", "Watchers"),
            ("etcd_mvcc_slow_watcher_total", "Slow Watchers"),
        ],
    },
    "chartPeerTraffic": {
        "unit": "bytes_per_second",
        "series": [
            ("etcd_network_peer_sent_bytes_total_rate", "Sent", "area"),
            ("etcd_network_peer_received_bytes_total_rate", "Received", "area"),
            ("etcd_network_peer_sent_failures_total_rate", "Send Failures"),
            ("etcd_network_peer_received_failures_total_rate", "Receive Failures"),
        ],
    },
    "chartPeerRTT": {
        "unit": "duration",
        "series": [(f"etcd_network_peer_round_trip_time_seconds_{p}", p.upper()) for p in _P],
    },
    "chartActivePeersGRPC": {
        "unit": "count",
        "series": [
            ("etcd_network_active_peers", "Active Peers"),
            ("grpc_server_msg_received_total_rate", "gRPC Msg Received / s"),
            ("grpc_server_msg_sent_total_rate", "gRPC Msg Sent / s"),
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


def _series_dict(row: tuple) -> dict:
    options = row[2:] if len(row) > 2 else ()
    return {
        "metric": row[0],
        "label": row[1],
        "area": "area" in options,
        "axis": 1 if "right" in options else 0,
    }


def panel_metrics(panel_id: str) -> list[str]:
    """The stored metric names one panel asks /api/range for."""
    return [row[0] for row in PANEL_CHARTS[panel_id]["series"]]


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
                "series": [_series_dict(row) for row in chart["series"]],
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
