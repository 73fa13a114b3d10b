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
