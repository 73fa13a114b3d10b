"""Prometheus text parsing and the derivation of every stored metric (pure functions, no I/O).

`parse_metrics(text)` turns an etcd `/metrics` page into `{sample_name: [(labels, value), ...]}`.
`derive_snapshot(samples, previous=...)` produces the stored keys of the reference's §2.3 with our
corrections: histogram quantiles from the *change* of bucket counts over a trailing window
(QUANTILE_WINDOW_SECONDS, summed per `le` across label sets, e.g. peer RTT; the cumulative
histogram's for /api/current when the window saw nothing), rates that skip counter resets,
active peers counted over every series, top gRPC methods with their names, NaN/±Inf dropped.

Our own parser, not prometheus_client's: on the real etcd 3.4 scrape it is several times faster
(bench/run_monitoring.py measures both) and keeps etcd's counter names (prometheus_client renames
`etcd_server_health_success`/`_failures` to `..._total`).
"""

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

try:  # the C hot path (native/promtext); without it the same samples, ~4x the CPU
    import etcdmonitor_promtext as promtext
except ImportError:  # pragma: no cover - `make venv` builds it
    promtext = None

Labels = dict[str, str]
Samples = dict[str, list[tuple[Labels, float]]]

_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPE = re.compile(r"\\[\\\"n]")
_NO_LABELS: Labels = {}


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], value) if "\\" in value else value


# etcd repeats the same ~1,300 label sets on every scrape: parse each once. Parsed dicts are
# shared between scrapes and must be treated as read-only.
_LABEL_CACHE: dict[str, Labels] = {}
_LABEL_CACHE_MAX = 50_000


def _parse_labels(section: str) -> Labels:
    """`a="x",b="y"` → {"a": "x", "b": "y"} (memoised; the result is read-only)."""
    labels = _LABEL_CACHE.get(section)
    if labels is None:
        if len(_LABEL_CACHE) >= _LABEL_CACHE_MAX:
            _LABEL_CACHE.clear()  # e.g. a member exposing unbounded label values
        labels = _LABEL_CACHE[section] = _parse_label_section(section)
    return labels


def _parse_label_section(section: str) -> Labels:
    """A fast split unless an escape is present."""
    if "\\" in section:
        return {key: _unescape(value) for key, value in _LABEL.findall(section)}
    labels = {}
    for part in section.split('",'):
        key, sep, value = part.partition('="')
        if sep:
            labels[key.strip(" ,")] = value.rstrip('"')
    return labels


def parse_metrics(
    text: str, *, only: frozenset[str] | None = None, sparse: frozenset[str] = frozenset()
) -> Samples:
    """Parse the Prometheus text format (0.0.4) into samples keyed by sample name.

    Comment and blank lines are skipped; an optional trailing timestamp is ignored; lines that
    do not parse are dropped (one bad line never loses the scrape). With `only`, samples of
    other names are skipped (the collector passes `SOURCE_NAMES`). Zero-valued samples of the
    labelled `sparse` names are dropped before the text is split (the collector passes
    `SPARSE_NAMES`: counters that only feed sums and rankings, mostly zeros).

    With `etcdmonitor_promtext` installed (native/promtext, built by `make venv`) the lines
    etcd sends are parsed in C, the rest by `parse_metrics_reference`: the same samples.
    """
    if promtext is None:
        return parse_metrics_reference(text, only=only, sparse=sparse)
    return promtext.parse(
        text,
        only,
        sparse,
        _LABEL_CACHE,
        _parse_labels,
        _NO_LABELS,
        _parse_line,
        functools.partial(parse_metrics_reference, only=only, sparse=sparse),
    )


def parse_metrics_reference(
    text: str, *, only: frozenset[str] | None = None, sparse: frozenset[str] = frozenset()
) -> Samples:
    """`parse_metrics` in Python: what the C path must equal, and the path without it."""
    samples: Samples = {}
    if sparse:
        text = _zero_lines(sparse).sub("", text)
    heads = _HEAD_CACHE
    if len(heads) >= _LABEL_CACHE_MAX:
        heads.clear()
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        # Fast path: the `name{labels}` before the value was seen in an earlier scrape.
        head, _, value_text = line.rpartition(" ")
        known = heads.get(head)
        if known is not None:
            if only is not None and known[0] not in only:
                continue
            try:
                value = float(value_text)
            except ValueError:
                continue
            series = samples.get(known[0])
            if series is None:
                samples[known[0]] = [(known[1], value)]
            else:
                series.append((known[1], value))
            continue
        parsed = _parse_line(line)
        if parsed is None:
            continue
        name, labels, value_text_parsed, has_timestamp = parsed
        try:
            value = float(value_text_parsed)
        except ValueError:
            continue
        if not has_timestamp and value_text_parsed == value_text:
            heads[head] = (name, labels)
        if only is not None and name not in only:
            continue
        series = samples.get(name)
        if series is None:
            samples[name] = [(labels, value)]
        else:
            series.append((labels, value))
    return samples


@functools.cache
def _zero_lines(names: frozenset[str]) -> re.Pattern:
    # One regex pass in C costs a fraction of splitting and visiting ~700 lines in Python.
    alternatives = "|".join(re.escape(name) for name in sorted(names))
    return re.compile(r"\n(?:" + alternatives + r")\{[^\n]*\} 0(?=\n)")


# `name{labels}` text → (name, labels) of lines without a timestamp (read-only, shared).
_HEAD_CACHE: dict[str, tuple[str, Labels]] = {}


def _parse_line(line: str) -> tuple[str, Labels, str, bool] | None:
    """(name, labels, value text, has a timestamp) of one sample line, or None."""
    brace = line.find("{")
    if brace == -1:
        parts = line.split()
        if len(parts) < 2:
            return None
        return parts[0], _NO_LABELS, parts[1], len(parts) > 2
    # Values may hold "}" but the sample value and timestamp never do.
    end = line.rfind("}")
    rest = line[end + 1 :].split()
    if end < brace or not rest:
        return None
    return line[:brace].strip(), _parse_labels(line[brace + 1 : end]), rest[0], len(rest) > 1


# --- helpers over parsed samples ------------------------------------------------------------------


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def first_value(samples: Samples, name: str) -> float | None:
    """The first sample of `name` (the reference's rule for single-series families)."""
    series = samples.get(name)
    return series[0][1] if series else None


def sum_values(samples: Samples, name: str) -> float | None:
    """The sum over every series of `name`, or None when the family is absent."""
    series = samples.get(name)
    if not series:
        return None
    return math.fsum(value for _, value in series if math.isfinite(value))


_LE_CACHE: dict[str, float] = {}


def histogram_buckets(
    samples: Samples, family: str, keep: Callable[[dict], bool] | None = None
) -> list[tuple[float, float]]:
    """Cumulative `(le, count)` pairs of a histogram, summed per `le` across label sets (those
    `keep` accepts, when given). Without `keep`, in C when `etcdmonitor_promtext` is installed
    (it declines, None, what it leaves to this reference: a NaN bound, odd samples)."""
    series = samples.get(f"{family}_bucket", ())
    if keep is None and promtext is not None:
        found = promtext.histogram_buckets(series, _LE_CACHE, _LABEL_CACHE_MAX)
        if found is not None:
            return found
    return histogram_buckets_reference(series, keep)


def histogram_buckets_reference(
    series, keep: Callable[[dict], bool] | None = None
) -> list[tuple[float, float]]:
    """`histogram_buckets` of a family's `_bucket` samples in Python."""
    totals: dict[float, float] = {}
    for labels, value in series:
        if keep is not None and not keep(labels):
            continue
        le_text = labels.get("le")
        if le_text is None or not math.isfinite(value):
            continue
        le = _LE_CACHE.get(le_text)
        if le is None:
            try:
                le = float(le_text)
            except ValueError:
                continue
            if len(_LE_CACHE) < _LABEL_CACHE_MAX:
                _LE_CACHE[le_text] = le
        totals[le] = totals.get(le, 0.0) + value
    return sorted(totals.items())


_LE_TEXTS: dict[tuple[float, ...], list[str]] = {}


def _le_texts(layout: tuple[float, ...]) -> list[str]:
    """The bucket bounds as text (JSON has no Infinity), once per layout: a shared list."""
    texts = _LE_TEXTS.get(layout)
    if texts is None:
        if len(_LE_TEXTS) >= 1_000:
            _LE_TEXTS.clear()
        texts = _LE_TEXTS[layout] = [repr(le) for le in layout]
    return texts


WINDOW_STEPS = 10


def window_advance(history: list | None, counts: list, *, timestamp: float, window: float) -> list:
    """The histogram's bucket history after this scrape: `[[ts, [count per le]], ...]`.

    A step function of cumulative counts: an entry is added only when a count changed (a quiet
    histogram keeps one or two entries, a busy one about WINDOW_STEPS + 2), and entries are
    dropped once a newer one is at or before `timestamp - window`. Pass `history` None when the
    bucket layout changed (another etcd version): it starts over. A count that went down means
    the member restarted between the previous scrape and this one: the history restarts from
    zeros at the previous scrape.
    """
    if not history or len(history[-1][1]) != len(counts):
        return [[timestamp, counts]]
    last_ts, last_counts = history[-1]
    if any(now < before for now, before in zip(counts, last_counts, strict=True)):
        history = [[last_ts, [0] * len(counts)]]
    else:
        history = list(history)
    if counts != history[-1][1]:
        if len(history) > 1 and history[-1][0] - history[-2][0] < window / WINDOW_STEPS:
            # Entries at least window/WINDOW_STEPS apart (the newest aside) bound the state
            # at any COLLECTOR_INTERVAL; a baseline may then start that much earlier.
            history[-1] = [timestamp, counts]
        else:
            history.append([timestamp, counts])
    cutoff = timestamp - window
    first = 0
    for index, (ts, _) in enumerate(history):
        if ts <= cutoff:
            first = index  # the latest entry at or before the window's start: its baseline
    return history[first:]


def window_delta(
    history: list, les: list[float], *, timestamp: float, window: float
) -> list[tuple[float, float]] | None:
    """Observations in the trailing `window`, as cumulative `(le, count)` pairs, from a
    `window_advance` history; None while the history holds nothing from before this scrape.

    The baseline is the counts at `timestamp - window` (the latest entry at or before it), or
    the oldest entry when the history is younger than the window.
    """
    if not history or history[0][0] >= timestamp:
        return None
    cutoff = timestamp - window
    baseline = history[0][1]
    for ts, counts in history:
        if ts > cutoff:
            break
        baseline = counts
    current = history[-1][1]
    return [
        (le, float(now - before)) for le, now, before in zip(les, current, baseline, strict=True)
    ]


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Linear interpolation inside the bucket holding rank q·total (lower bound of the first = 0).

    A rank in the +Inf bucket answers the largest finite bound; an empty histogram answers None.
    """
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


# --- the stored metric list -----------------------------------------------------------------------

FIRST_VALUE_KEYS = (
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_slow_apply_total",
    "etcd_server_slow_read_indexes_total",
    "etcd_server_quota_backend_bytes",
    "etcd_server_heartbeat_send_failures_total",
    "etcd_server_read_indexes_failed_total",
    "etcd_server_health_failures",
    "etcd_server_health_success",
    "etcd_disk_wal_write_bytes_total",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_txn_total",
    "etcd_mvcc_range_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_network_client_grpc_received_bytes_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "go_goroutines",
    "go_memstats_alloc_bytes",
    "go_memstats_sys_bytes",
)

# Stored `etcd_mvcc_<suffix>` read from etcd 3.4's `etcd_debugging_mvcc_<suffix>` (3.5+ renamed
# several of them, so the plain name is the fallback).
DEBUGGING_MVCC_SUFFIXES = (
    "keys_total",
    "watch_stream_total",
    "watcher_total",
    "slow_watcher_total",
    "db_open_read_transactions",
    "compact_revision",
    "current_revision",
    "events_total",
    "pending_events_total",
    "total_put_size_in_bytes",
    "db_compaction_keys_total",
)

# stored key → (candidate source names, first one present wins)
RENAMED_KEYS: dict[str, tuple[str, ...]] = {
    **{
        f"etcd_mvcc_{suffix}": (f"etcd_debugging_mvcc_{suffix}", f"etcd_mvcc_{suffix}")
        for suffix in DEBUGGING_MVCC_SUFFIXES
    },
    "etcd_lease_granted_total": ("etcd_debugging_lease_granted_total",),
    "etcd_lease_revoked_total": ("etcd_debugging_lease_revoked_total",),
    "etcd_lease_renewed_total": ("etcd_debugging_lease_renewed_total",),
    "etcd_lease_expired_total": ("etcd_debugging_server_lease_expired_total",),
}

SUMMED_KEYS = (
    "etcd_network_peer_sent_bytes_total",
    "etcd_network_peer_received_bytes_total",
    "etcd_network_peer_sent_failures_total",
    "etcd_network_peer_received_failures_total",
    "grpc_server_started_total",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
)

# stored prefix → (source histogram family, scale to seconds)
HISTOGRAMS: dict[str, tuple[str, float]] = {
    "etcd_disk_wal_fsync_duration_seconds": ("etcd_disk_wal_fsync_duration_seconds", 1.0),
    "etcd_disk_backend_commit_duration_seconds": (
        "etcd_disk_backend_commit_duration_seconds",
        1.0,
    ),
    "etcd_disk_backend_defrag_duration_seconds": (
        "etcd_disk_backend_defrag_duration_seconds",
        1.0,
    ),
    "etcd_disk_backend_snapshot_duration_seconds": (
        "etcd_disk_backend_snapshot_duration_seconds",
        1.0,
    ),
    "etcd_snap_db_fsync_duration_seconds": ("etcd_snap_db_fsync_duration_seconds", 1.0),
    "etcd_snap_db_save_total_duration_seconds": (
        "etcd_snap_db_save_total_duration_seconds",
        1.0,
    ),
    "etcd_disk_commit_rebalance_duration_seconds": (
        "etcd_debugging_disk_backend_commit_rebalance_duration_seconds",
        1.0,
    ),
    "etcd_disk_commit_spill_duration_seconds": (
        "etcd_debugging_disk_backend_commit_spill_duration_seconds",
        1.0,
    ),
    "etcd_disk_commit_write_duration_seconds": (
        "etcd_debugging_disk_backend_commit_write_duration_seconds",
        1.0,
    ),
    "etcd_mvcc_hash_duration_seconds": ("etcd_mvcc_hash_duration_seconds", 1.0),
    "etcd_mvcc_hash_rev_duration_seconds": ("etcd_mvcc_hash_rev_duration_seconds", 1.0),
    "etcd_mvcc_db_compaction_pause_duration": (
        "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
        0.001,
    ),
    "etcd_mvcc_db_compaction_total_duration": (
        "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
        0.001,
    ),
    "etcd_network_peer_round_trip_time_seconds": (
        "etcd_network_peer_round_trip_time_seconds",
        1.0,
    ),
    # Only with etcd's --metrics=extensive; unary calls only (HISTOGRAM_FILTERS).
    "grpc_server_unary_handling_seconds": ("grpc_server_handling_seconds", 1.0),
}


def _slow_request_candidate(labels: dict) -> bool:
    """A unary call other than Defragment: watch and lease keep-alive streams last as long as
    the client stays, and a defragment legitimately takes seconds (the etcd mixin's
    etcdGRPCRequestsSlow has the same exclusions)."""
    return labels.get("grpc_type") == "unary" and labels.get("grpc_method") != "Defragment"


# Histograms etcd exports only when started with --metrics=extensive (the default is "basic").
EXTENSIVE_HISTOGRAMS = frozenset(["grpc_server_unary_handling_seconds"])
# stored prefix → which label sets of its family it sums (all when absent)
HISTOGRAM_FILTERS: dict[str, Callable[[dict], bool]] = {
    "grpc_server_unary_handling_seconds": _slow_request_candidate,
}
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
_QUANTILE_LEVELS = tuple(q for _, q in QUANTILES)

SUMMARIES = ("go_gc_duration_seconds",)

RATE_KEYS = (
    # Rated here from float64 scrapes: the stored values are float32, too coarse to difference
    # a counter in the millions in the browser.
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_network_peer_sent_bytes_total",
    "etcd_network_peer_received_bytes_total",
    "etcd_network_peer_sent_failures_total",
    "etcd_network_peer_received_failures_total",
    "grpc_server_handled_total",
    "grpc_server_handled_ok_total",
    "grpc_server_handled_error_total",
    "grpc_server_started_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_network_client_grpc_received_bytes_total",
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_txn_total",
    "etcd_mvcc_range_total",
    "etcd_lease_granted_total",
    "etcd_lease_revoked_total",
    "etcd_lease_renewed_total",
    "etcd_lease_expired_total",
    "grpc_server_msg_sent_total",
    "grpc_server_msg_received_total",
    "etcd_server_heartbeat_send_failures_total",
    "etcd_server_health_failures",
    "etcd_server_read_indexes_failed_total",
    "etcd_mvcc_db_compaction_keys_total",
    "etcd_mvcc_events_total",
)
RATE_PREFIXES = ("etcd_server_client_requests_",)
# Counters whose derived per-second value has its own name in the reference.
NAMED_RATES = {
    "etcd_server_proposals_failed_total": "etcd_server_proposals_failed_rate",
}
TOP_GRPC_METHODS = 10
_RATE_KEY_SET = frozenset(RATE_KEYS)
# Values kept in the state for the next scrape's rates (client request keys match by prefix).
_COUNTER_KEYS = _RATE_KEY_SET | set(NAMED_RATES) | {"process_cpu_seconds_total"}


@dataclass
class Snapshot:
    """One member's derived values for one scrape, plus what the next scrape needs."""

    values: dict[str, float]
    grpc_methods: list[dict] = field(default_factory=list)
    state: dict = field(default_factory=dict)
    # Quantiles for /api/current only: the cumulative histogram's, where the window saw nothing.
    fallback: dict[str, float] = field(default_factory=dict)
    # quantile name → "window" or "cumulative": what /api/current's value of it is based on.
    basis: dict[str, str] = field(default_factory=dict)


def _client_request_keys(samples: Samples) -> dict[str, float]:
    series = samples.get("etcd_server_client_requests_total")
    if not series:
        return {}
    out = {"etcd_server_client_requests_total": 0.0}
    for labels, value in series:
        if not math.isfinite(value):
            continue
        version = labels.get("client_api_version") or "unknown"
        key = "etcd_server_client_requests_" + version.replace(".", "")
        out[key] = out.get(key, 0.0) + value
        out["etcd_server_client_requests_total"] += value
    return out


# Codes that mean the server failed a request (the etcd mixin's set): client-caused codes
# (NotFound, InvalidArgument...) and Canceled (the client gave up) are not the server's fault.
FAILED_GRPC_CODES = frozenset(
    [
        "Unknown",
        "FailedPrecondition",
        "ResourceExhausted",
        "Internal",
        "Unavailable",
        "DataLoss",
        "DeadlineExceeded",
    ]
)


def _grpc_keys(samples: Samples) -> tuple[dict[str, float], list[dict]]:
    series = samples.get("grpc_server_handled_total")
    if not series:
        return {}, []
    total = ok = unary = unary_failed = 0.0
    per_method: dict[tuple[str, str], float] = {}
    for labels, value in series:
        # Most (method, code) pairs never happened: skipping zeros halves this loop.
        if not value or not math.isfinite(value):
            continue
        total += value
        if labels.get("grpc_code") == "OK":
            ok += value
        # Streams (Watch, LeaseKeepAlive) end with errors on every client disconnect: only
        # unary calls say whether requests fail (the alerts app's grpc_failed_ratio).
        if labels.get("grpc_type") == "unary":
            unary += value
            if labels.get("grpc_code") in FAILED_GRPC_CODES:
                unary_failed += value
        method = (labels.get("grpc_service", ""), labels.get("grpc_method", ""))
        per_method[method] = per_method.get(method, 0.0) + value
    values = {
        "grpc_server_handled_total": total,
        "grpc_server_handled_ok_total": ok,
        "grpc_server_handled_error_total": total - ok,
        "grpc_server_handled_unary_total": unary,
        "grpc_server_handled_unary_failed_total": unary_failed,
    }
    if len(per_method) < TOP_GRPC_METHODS:
        # A quiet member: methods never called still fill the ranking, by name. Every method
        # has a `started` series, so they are known even when zero `handled` ones were dropped.
        for labels, value in (*series, *samples.get("grpc_server_started_total", ())):
            if math.isfinite(value):
                method = (labels.get("grpc_service", ""), labels.get("grpc_method", ""))
                per_method.setdefault(method, 0.0)
    ranked = sorted(per_method.items(), key=lambda item: (-item[1], item[0]))[:TOP_GRPC_METHODS]
    methods = []
    for rank, ((service, method), count) in enumerate(ranked):
        values[f"grpc_method_{rank}_count"] = count
        methods.append({"rank": rank, "service": service, "method": method, "count": count})
    return values, methods


def _summary_keys(samples: Samples, family: str) -> dict[str, float]:
    out = {}
    for labels, value in samples.get(family, ()):
        quantile = labels.get("quantile")
        if quantile is not None:
            out[f"{family}_q{quantile.replace('.', '', 1)}"] = value
    return out


def derive_snapshot(
    samples: Samples,
    *,
    timestamp: float,
    previous: dict | None = None,
    extra: dict[str, float] | None = None,
    window: float = 300.0,
) -> Snapshot:
    """Every stored key of one scrape.

    `previous` is the `state` of the member's previous successful snapshot (or None): its
    timestamp, counters and each histogram's bucket history, for rates and the quantiles over
    the trailing `window` seconds (see `window_advance`). `extra` holds
    values from RPCs (raft_term, raft_index, etcd_lease_count) that join the snapshot and may
    feed derivations. Non-finite values never reach the result.
    """
    values: dict[str, float | None] = {"collector_up": 1.0}
    for key in FIRST_VALUE_KEYS:
        values[key] = first_value(samples, key)
    for key, sources in RENAMED_KEYS.items():
        values[key] = next(
            (first_value(samples, s) for s in sources if s in samples),
            None,
        )
    for key in SUMMED_KEYS:
        values[key] = sum_values(samples, key)
    values["etcd_network_active_peers"] = sum_values(samples, "etcd_network_active_peers")
    values.update(_client_request_keys(samples))
    grpc_values, grpc_methods = _grpc_keys(samples)
    values.update(grpc_values)
    for family in SUMMARIES:
        values.update(_summary_keys(samples, family))
    if extra:
        values.update(extra)

    previous = previous or {}
    previous_histograms = _previous_histograms(previous)
    histograms_state: dict[str, dict] = {}
    fallback: dict[str, float] = {}
    basis: dict[str, str] = {}
    for prefix, (family, scale) in HISTOGRAMS.items():
        buckets = histogram_buckets(samples, family, HISTOGRAM_FILTERS.get(prefix))
        if not buckets:
            continue
        values[f"{prefix}_count"] = buckets[-1][1]
        les = _le_texts(tuple(le for le, _ in buckets))
        before = previous_histograms.get(prefix)
        history = before["window"] if before and before.get("le") == les else None
        history, in_window, quantiles = histogram_window(
            buckets, history, timestamp=timestamp, window=window
        )
        histograms_state[prefix] = {"le": les, "window": history}
        for (suffix, _), quantile in zip(QUANTILES, quantiles, strict=True):
            name = f"{prefix}_{suffix}"
            if in_window:
                values[name] = quantile * scale
                basis[name] = "window"
                continue
            # Nothing observed in the window (a quiet cluster): /api/current falls back to
            # the quantile since the member started; charts get no point.
            if quantile is not None and math.isfinite(quantile):
                fallback[name] = quantile * scale
                basis[name] = "cumulative"

    committed = values.get("etcd_server_proposals_committed_total")
    applied = values.get("etcd_server_proposals_applied_total")
    if committed and applied and committed > 0 and applied > 0:
        values["etcd_server_proposals_commit_apply_lag"] = committed - applied

    counters = {
        key: value
        for key, value in values.items()
        if (key in _COUNTER_KEYS or key.startswith(RATE_PREFIXES)) and _finite(value)
    }
    previous_ts = previous.get("ts")
    previous_counters = previous.get("counters", {})
    elapsed = timestamp - previous_ts if previous_ts is not None else 0.0
    if elapsed > 0:
        for key, value in counters.items():
            before = previous_counters.get(key)
            if before is None or value < before:
                continue  # first scrape of this counter, or a reset: no honest rate
            rate = (value - before) / elapsed
            if key == "process_cpu_seconds_total":
                values["process_cpu_usage_percent"] = rate * 100.0
            elif key in NAMED_RATES:
                values[NAMED_RATES[key]] = rate
            if key in _RATE_KEY_SET or key.startswith(RATE_PREFIXES):
                values[f"{key}_rate"] = rate

    clean = {key: float(value) for key, value in values.items() if _finite(value)}
    return Snapshot(
        values=clean,
        grpc_methods=grpc_methods,
        state={"ts": timestamp, "counters": counters, "histograms": histograms_state},
        fallback=fallback,
        basis={name: kind for name, kind in basis.items() if name in clean or name in fallback},
    )


def histogram_window(
    buckets: list[tuple[float, float]], history: list | None, *, timestamp: float, window: float
) -> tuple[list, bool, list[float | None]]:
    """One histogram's step of `derive_snapshot`: its window history after this scrape, whether
    the window saw observations, and the QUANTILES of those (else of the cumulative buckets,
    None where there is none). In C when `etcdmonitor_promtext` is installed; it declines
    (None) what it leaves to `histogram_window_reference`: numbers it would not hold exactly
    (ints beyond 2**53, non-finite counts), a stored history of another shape."""
    if promtext is not None and type(timestamp) is float:
        found = promtext.histogram_window(
            buckets, history, timestamp, window, WINDOW_STEPS, _QUANTILE_LEVELS
        )
        if found is not None:
            return found
    return histogram_window_reference(buckets, history, timestamp=timestamp, window=window)


def histogram_window_reference(
    buckets: list[tuple[float, float]], history: list | None, *, timestamp: float, window: float
) -> tuple[list, bool, list[float | None]]:
    """`histogram_window` in Python."""
    # Bucket counts are whole numbers: ints keep the stored JSON short.
    counts = [int(count) for _, count in buckets]
    history = window_advance(history, counts, timestamp=timestamp, window=window)
    layout = [le for le, _ in buckets]
    delta = window_delta(history, layout, timestamp=timestamp, window=window)
    in_window = delta is not None and delta[-1][1] > 0
    source = delta if in_window else buckets
    return history, in_window, [histogram_quantile(q, source) for _, q in QUANTILES]


def _previous_histograms(previous: dict) -> dict[str, dict]:
    """The previous state's histogram histories (a state written before windows held only the
    last scrape's buckets: that scrape becomes the history's first entry)."""
    if "histograms" in previous:
        return previous["histograms"]
    ts = previous.get("ts")
    return {
        prefix: {"le": [le for le, _ in pairs], "window": [[ts, [c for _, c in pairs]]]}
        for prefix, pairs in previous.get("buckets", {}).items()
        if ts is not None
    }


# Every sample name `derive_snapshot` reads; the rest of a scrape need not be parsed.
SOURCE_NAMES = frozenset(
    [
        *FIRST_VALUE_KEYS,
        *(source for sources in RENAMED_KEYS.values() for source in sources),
        *SUMMED_KEYS,
        "etcd_network_active_peers",
        "etcd_server_client_requests_total",
        "grpc_server_handled_total",
        *SUMMARIES,
        *(f"{family}_bucket" for family, _ in HISTOGRAMS.values()),
    ]
)


# Counters that only feed sums and the method ranking: their zero samples need not be parsed.
SPARSE_NAMES = frozenset(["grpc_server_handled_total"])


# --- names an etcd does not export ------------------------------------------------------------
# A stored key → the scrape sample names it is derived from (present if any one is present).
# Keys from RPCs (raft_term, raft_index, etcd_lease_count) and collector_up have no entry.


def _key_sources() -> dict[str, tuple[str, ...]]:
    sources: dict[str, tuple[str, ...]] = {}
    for key in (*FIRST_VALUE_KEYS, *SUMMED_KEYS, "etcd_network_active_peers"):
        sources[key] = (key,)
    sources.update(RENAMED_KEYS)
    # grpc_server_handled_total's zero samples are dropped before parsing (SPARSE_NAMES); the
    # `started` family lists the same methods, so either one shows the family is exported.
    grpc = ("grpc_server_handled_total", "grpc_server_started_total")
    for key in ("grpc_server_handled_total", "grpc_server_handled_ok_total"):
        sources[key] = grpc
    sources["grpc_server_handled_error_total"] = grpc
    sources["grpc_server_handled_unary_total"] = grpc
    sources["grpc_server_handled_unary_failed_total"] = grpc
    for rank in range(TOP_GRPC_METHODS):
        sources[f"grpc_method_{rank}_count"] = grpc
    for quantile in ("0", "025", "05", "075", "1"):
        sources[f"go_gc_duration_seconds_q{quantile}"] = ("go_gc_duration_seconds",)
    for prefix, (family, _) in HISTOGRAMS.items():
        for suffix in (*(s for s, _ in QUANTILES), "count"):
            sources[f"{prefix}_{suffix}"] = (f"{family}_bucket",)
    requests = ("etcd_server_client_requests_total",)
    sources["etcd_server_client_requests_total"] = requests
    sources["etcd_server_proposals_commit_apply_lag"] = ("etcd_server_proposals_committed_total",)
    sources["process_cpu_usage_percent"] = ("process_cpu_seconds_total",)
    for counter, rate in NAMED_RATES.items():
        sources[rate] = sources[counter]
    for key in RATE_KEYS:
        sources[f"{key}_rate"] = sources[key]
    return sources


KEY_SOURCES = _key_sources()
_CLIENT_REQUESTS = "etcd_server_client_requests_"


def sources_of(key: str) -> tuple[str, ...]:
    """The scrape names a stored key is derived from; () for keys that come from RPCs."""
    found = KEY_SOURCES.get(key)
    if found is not None:
        return found
    if key.startswith(_CLIENT_REQUESTS):  # version-labelled keys, e.g. ..._35_rate
        return ("etcd_server_client_requests_total",)
    return ()


# Label vectors etcd creates on first use (per peer, per gRPC method, per client API version):
# absent from a scrape means "nothing happened yet" (a lone member has no peers), not "this
# etcd does not export it", so they are never reported as unexported.
LAZY_SOURCES = frozenset(
    [
        *SUMMED_KEYS,
        "etcd_network_active_peers",
        "etcd_server_client_requests_total",
        "grpc_server_handled_total",
        "etcd_network_peer_round_trip_time_seconds_bucket",
    ]
)


def unexported_sources(samples: Samples) -> list[str]:
    """The source names this scrape (parsed with `only=SOURCE_NAMES`) lacks although etcd
    would always export them, sorted: a version that renamed or dropped them."""
    return sorted(name for name in SOURCE_NAMES - LAZY_SOURCES if name not in samples)


def not_exported(keys, unexported: list[str] | set[str]) -> dict[str, list[str]]:
    """For each stored key whose every source is in `unexported`: the etcd metric names it
    would come from (histogram families without `_bucket`), so a client can say which name
    this etcd lacks instead of drawing an empty chart."""
    missing = set(unexported)
    if not missing:
        return {}
    out = {}
    for key in keys:
        sources = sources_of(key)
        if sources and all(source in missing for source in sources):
            out[key] = [s.removesuffix("_bucket") for s in sources]
    return out
