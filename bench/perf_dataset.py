"""The shared synthetic history for the side-by-side benchmarks (bench/run_all, item 1).

One deterministic model per member, built from that member's real `/metrics` scrape, evolved in
2-hour windows of 30 s ticks with numpy:
- counters with traffic rise by Poisson increments (per-series rates, members serving 1.0/0.7/0.5
  of the traffic, ±30 % daily cycle); counters that are 0 in the scrape, or count rare events
  (failures, leader changes, slow ops), stay constant, as in a real idle-free etcd;
- histograms get N ~ Poisson(rate·30 s) observations per tick, spread over the buckets by the
  scrape's own bucket shape (a log-normal around the middle bucket where it has no counts);
  buckets stay cumulative, `_count` equals the `+Inf` bucket and `_sum` grows with them;
- about 30 gauges move (random walks quantised like the real ones: RSS in 4 KiB pages, Go heap in
  8 KiB pages, integers), revisions follow the writes; the rest are constant.
The same seed gives the same values in every process, so our ingest and the OpenMetrics writer
for Prometheus can run in parallel processes and still store identical data.
"""

import math
import re
from dataclasses import dataclass, field

import numpy as np

STEP = 30
WINDOW = 7200 // STEP  # ticks per promtool block
TRAFFIC = (1.0, 0.7, 0.5)
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)")
_RARE = ("leader_changes", "failure", "failed", "slow_", "error", "restart", "corrupt", "drop")
# per-second rates for the busiest counters and histograms at traffic 1.0 (leader)
_RATES = {
    "etcd_server_proposals_committed_total": 10.0,
    "etcd_disk_wal_fsync_duration_seconds": 30.0,
    "etcd_disk_backend_commit_duration_seconds": 10.0,
    "etcd_network_peer_round_trip_time_seconds": 0.5,
    "grpc_server_handled_total": 28.0,
    "grpc_server_started_total": 28.0,
    "grpc_server_msg_received_total": 28.0,
    "grpc_server_msg_sent_total": 28.0,
    "etcd_debugging_mvcc_put_total": 10.0,
    "etcd_mvcc_put_total": 10.0,
    "etcd_debugging_mvcc_range_total": 20.0,
    "etcd_mvcc_range_total": 20.0,
    "etcd_debugging_mvcc_txn_total": 8.0,
    "etcd_mvcc_txn_total": 8.0,
    "etcd_debugging_mvcc_delete_total": 1.0,
    "etcd_mvcc_delete_total": 1.0,
    "etcd_debugging_mvcc_events_total": 12.0,
    "etcd_debugging_lease_granted_total": 0.2,
    "etcd_debugging_lease_renewed_total": 1.0,
    "etcd_debugging_lease_revoked_total": 0.2,
}
# compaction every 5 min (10 ticks)
_PERIODIC = ("etcd_debugging_mvcc_db_compaction",)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _parse(text: str):
    """[(family, type, sample name, labels dict, label text, value)] in scrape order."""
    from monitoring.metrics import parse_metrics

    types = {}
    for line in text.splitlines():
        match = _TYPE.match(line)
        if match:
            types[match.group(1)] = match.group(2)
    out = []
    for name, series in parse_metrics(text).items():
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[: -len(suffix)]) in (
                "histogram",
                "summary",
            ):
                family = name[: -len(suffix)]
        kind = types.get(family, "untyped")
        for labels, value in series:
            if not math.isfinite(value):
                continue
            text_labels = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            out.append((family, kind, name, labels, text_labels, value))
    return out


@dataclass
class _Hist:
    buckets: list[int]  # series indices, in le order (cumulative)
    sum_index: int
    count_index: int
    probabilities: np.ndarray
    midpoints: np.ndarray
    rate: float
    periodic: bool = False


@dataclass
class MemberModel:
    """One member's series and how each evolves; `window(k)` gives ticks k·WINDOW onwards."""

    index: int
    names: list[str]
    labels: list[dict]
    label_text: list[str]
    base: np.ndarray
    counter_rates: np.ndarray  # per-second rate per series (0 = not a traffic counter)
    hists: list[_Hist] = field(default_factory=list)
    walks: list[tuple[int, float, float]] = field(default_factory=list)  # (index, sigma, quantum)
    groups: dict = field(default_factory=dict)  # sample name → [(labels, index)]


def build_model(text: str, index: int) -> MemberModel:
    rows = _parse(text)
    rng = np.random.default_rng(1000 + index)
    names = [r[2] for r in rows]
    model = MemberModel(
        index=index,
        names=names,
        labels=[r[3] for r in rows],
        label_text=[r[4] for r in rows],
        base=np.array([r[5] for r in rows], dtype=np.float64),
        counter_rates=np.zeros(len(rows)),
    )
    for i, row in enumerate(rows):
        model.groups.setdefault(row[2], []).append((row[3], i))
    hist_groups: dict[tuple, dict] = {}
    for i, (family, kind, name, labels, _, value) in enumerate(rows):
        if kind == "histogram":
            key = (family, tuple(sorted((k, v) for k, v in labels.items() if k != "le")))
            group = hist_groups.setdefault(key, {"family": family, "buckets": []})
            if name.endswith("_bucket"):
                group["buckets"].append((float(labels["le"]), i))
            elif name.endswith("_sum"):
                group["sum"] = i
            else:
                group["count"] = i
            continue
        if kind == "summary":
            if name.endswith("_count"):
                model.counter_rates[i] = 0.05  # a GC every 20 s
            elif name.endswith("_sum"):
                model.counter_rates[i] = 0.05 * 2e-4
            else:
                model.walks.append((i, 0.05 * max(value, 1e-5), 0.0))
            continue
        monotonic = kind == "counter" or name in (
            "etcd_server_proposals_committed_total",
            "etcd_server_proposals_applied_total",
            "etcd_disk_wal_write_bytes_total",
        )
        if monotonic:
            if (value <= 0 and name not in _RATES) or any(word in name for word in _RARE):
                continue
            if name == "grpc_server_handled_total" and labels.get("grpc_code") != "OK":
                continue  # errors stay as they were at start-up
            rate = _RATES.get(name)
            if rate is None and name.startswith("grpc_server_"):
                rate = _RATES.get(name, 0.0)
                # traffic spread over the methods that have any, by their share in the scrape
                total = sum(v for f, _, n, _, _, v in rows if n == name)
                rate = _RATES.get(name, 10.0) * value / total if total else 0.0
            if rate is None:
                if "bytes" in name:
                    rate = float(rng.lognormal(math.log(2e4), 0.5))
                elif name == "process_cpu_seconds_total":
                    rate = 0.03
                else:
                    rate = float(np.clip(rng.lognormal(math.log(2.0), 1.0), 0.01, 50.0))
            model.counter_rates[i] = rate
            continue
        if name in ("go_goroutines", "go_threads", "process_open_fds", "os_fd_used"):
            model.walks.append((i, 1.0, 1.0))
        elif name in ("process_resident_memory_bytes", "process_virtual_memory_bytes"):
            model.walks.append((i, 64 * 4096.0, 4096.0))
        elif name.startswith("go_memstats_") and name.endswith("_bytes") and value > 0:
            model.walks.append((i, 0.01 * value, 8192.0))
        elif name == "go_memstats_heap_objects":
            model.walks.append((i, 200.0, 1.0))
        elif name in ("etcd_debugging_mvcc_keys_total", "etcd_server_proposals_pending"):
            model.walks.append((i, 1.0, 1.0))
        elif "db_total_size_in_use" in name:
            model.walks.append((i, 4096.0 * 4, 4096.0))
    for group in hist_groups.values():
        buckets = sorted(group["buckets"])
        if not buckets or "sum" not in group or "count" not in group:
            continue
        counts = np.array([model.base[i] for _, i in buckets])
        per_bucket = np.diff(np.concatenate([[0.0], counts]))
        finite = [le for le, _ in buckets if math.isfinite(le)]
        lows = [0.0, *finite[:-1]]
        mids = np.array([(lo + hi) / 2 for lo, hi in zip(lows, finite, strict=True)] + [finite[-1]])
        family = group["family"]
        periodic = family.startswith(_PERIODIC)
        rate = _RATES.get(family)
        if rate is None:
            rate = 1.0 if counts[-1] > 0 else 0.0
        if periodic:
            rate = 1.0 / 300
        if rate == 0.0:
            continue
        if per_bucket.sum() <= 0:
            centre = len(buckets) // 2
            weights = np.exp(-0.5 * ((np.arange(len(buckets)) - centre) / 1.5) ** 2)
            per_bucket = weights
        probabilities = np.clip(per_bucket, 0, None) / per_bucket.sum()
        model.hists.append(
            _Hist(
                buckets=[i for _, i in buckets],
                sum_index=group["sum"],
                count_index=group["count"],
                probabilities=probabilities,
                midpoints=mids,
                rate=rate,
                periodic=periodic,
            )
        )
    return model


def window_values(model: MemberModel, state: np.ndarray, ticks: np.ndarray, seed: int):
    """Values [len(ticks), series] for these tick timestamps, continuing from `state` (a row)."""
    rng = np.random.default_rng([seed, model.index, int(ticks[0])])
    n = len(ticks)
    factor = TRAFFIC[model.index % 3] * (1.0 + 0.3 * np.sin(2 * math.pi * ticks / 86400.0))
    lam = np.outer(factor * STEP, model.counter_rates)
    increments = rng.poisson(lam).astype(np.float64)
    cpu = (
        model.names.index("process_cpu_seconds_total")
        if "process_cpu_seconds_total" in (model.names)
        else None
    )
    if cpu is not None:
        increments[:, cpu] = np.round(lam[:, cpu] * rng.uniform(0.8, 1.2, n), 2)
    for i, name in enumerate(model.names):
        if name.endswith("_sum") and model.counter_rates[i] and name.startswith("go_gc"):
            increments[:, i] = lam[:, i] * rng.uniform(0.5, 1.5, n)
    # proposals: applied follows committed (commit-apply lag is rare and small)
    if "etcd_server_proposals_applied_total" in model.groups:
        committed = model.groups["etcd_server_proposals_committed_total"][0][1]
        applied = model.groups["etcd_server_proposals_applied_total"][0][1]
        increments[:, applied] = increments[:, committed]
    for suffix in ("put", "delete", "range", "txn"):  # 3.4 exports both names of these
        source = model.groups.get(f"etcd_debugging_mvcc_{suffix}_total")
        mirror = model.groups.get(f"etcd_mvcc_{suffix}_total")
        if source and mirror:
            increments[:, mirror[0][1]] = increments[:, source[0][1]]
    values = state + np.cumsum(increments, axis=0)
    for hist in model.hists:
        if hist.periodic:
            observations = (ticks % 300 == 0).astype(np.int64)
        else:
            observations = rng.poisson(factor * STEP * hist.rate)
        counts = rng.multinomial(observations, hist.probabilities)  # [n, buckets]
        cumulative = np.cumsum(np.cumsum(counts, axis=1), axis=0)
        for column, series in enumerate(hist.buckets):
            values[:, series] = state[series] + cumulative[:, column]
        values[:, hist.count_index] = state[hist.count_index] + cumulative[:, -1]
        added = np.cumsum(counts @ hist.midpoints)
        values[:, hist.sum_index] = state[hist.sum_index] + added
    for series, sigma, quantum in model.walks:
        base = model.base[series]
        steps = rng.normal(0.0, sigma, n).tolist()
        walk, x = [], float(state[series])
        for e in steps:  # AR(1): wanders, but stays near the scraped value for a week
            x = base + 0.97 * (x - base) + e
            walk.append(x)
        walk = np.array(walk)
        if quantum:
            walk = np.round(walk / quantum) * quantum
        values[:, series] = np.maximum(walk, 0.0)
    for name in ("etcd_debugging_mvcc_current_revision", "etcd_mvcc_current_revision"):
        if name in model.groups:
            revision = model.groups[name][0][1]
            puts = [
                model.groups[k][0][1]
                for k in ("etcd_debugging_mvcc_put_total", "etcd_debugging_mvcc_txn_total")
                if k in model.groups
            ]
            values[:, revision] = state[revision] + np.cumsum(increments[:, puts].sum(axis=1))
            compact = model.groups.get("etcd_debugging_mvcc_compact_revision")
            if compact:
                c = compact[0][1]
                last = state[c]
                for t in range(n):
                    if ticks[t] % 300 == 0:
                        last = max(last, values[t, revision] - 3000)
                    values[t, c] = last
    for name in ("etcd_mvcc_db_total_size_in_bytes", "etcd_debugging_mvcc_db_total_size_in_bytes"):
        if name in model.groups:
            i = model.groups[name][0][1]
            grow = rng.random(n) < 0.02
            values[:, i] = state[i] + np.cumsum(grow) * 4096.0
    return values


def windows(models: list[MemberModel], *, start: int, ticks_total: int, seed: int = 7):
    """Yield (tick timestamps, [values per member]) for consecutive windows of WINDOW ticks."""
    states = [m.base.copy() for m in models]
    for first in range(0, ticks_total, WINDOW):
        count = min(WINDOW, ticks_total - first)
        ticks = start + STEP * np.arange(first, first + count, dtype=np.int64)
        block = []
        for k, model in enumerate(models):
            values = window_values(model, states[k], ticks, seed)
            states[k] = values[-1].copy()
            block.append(values)
        yield ticks, block


def samples_at(model: MemberModel, row: list[float]) -> dict:
    """The parse_metrics() shape of one tick (what our collector would have parsed)."""
    return {
        name: [(labels, row[i]) for labels, i in series] for name, series in model.groups.items()
    }
