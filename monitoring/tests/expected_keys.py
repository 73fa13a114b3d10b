"""The tests' own list of what the collector stores, written out independently of the
collector's code so that a key it stops producing (or a panel naming a key that never exists)
fails a test."""

from monitoring.metrics import (
    EXTENSIVE_HISTOGRAMS,
    FIRST_VALUE_KEYS,
    HISTOGRAMS,
    QUANTILES,
    RATE_KEYS,
    RENAMED_KEYS,
    SUMMED_KEYS,
    TOP_GRPC_METHODS,
)


def stored_key_names() -> list[str]:
    """Every key a full etcd 3.4 scrape can produce (version-labelled keys aside)."""
    names = ["collector_up", *FIRST_VALUE_KEYS, *RENAMED_KEYS, *SUMMED_KEYS]
    names += ["etcd_network_active_peers", "etcd_server_client_requests_total"]
    names += ["grpc_server_handled_total", "grpc_server_handled_ok_total"]
    names += ["grpc_server_handled_error_total"]
    names += ["grpc_server_handled_unary_total", "grpc_server_handled_unary_failed_total"]
    names += [f"grpc_method_{i}_count" for i in range(TOP_GRPC_METHODS)]
    names += [f"go_gc_duration_seconds_q{q}" for q in ("0", "025", "05", "075", "1")]
    for prefix in HISTOGRAMS:
        if prefix in EXTENSIVE_HISTOGRAMS:
            continue  # not in a default (--metrics=basic) scrape: extensive_key_names()
        names += [f"{prefix}_{s}" for s, _ in QUANTILES] + [f"{prefix}_count"]
    names += ["raft_term", "raft_index", "etcd_lease_count"]
    names += ["etcd_server_proposals_commit_apply_lag", "etcd_server_proposals_failed_rate"]
    names += ["process_cpu_usage_percent", "etcd_server_client_requests_total_rate"]
    names += [f"{key}_rate" for key in RATE_KEYS]
    return list(dict.fromkeys(names))


def extensive_key_names() -> list[str]:
    """The keys only a member started with --metrics=extensive feeds."""
    return [
        f"{prefix}_{suffix}"
        for prefix in sorted(EXTENSIVE_HISTOGRAMS)
        for suffix in (*(s for s, _ in QUANTILES), "count")
    ]
