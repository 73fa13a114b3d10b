"""PromQL equivalent to each stored dashboard series (bench/run_all, item 2).

Where we store a value derived at ingest, Prometheus derives it at query time: `rate()` for our
`*_rate` keys, `histogram_quantile()` over `sum by (le)` of bucket rates for our `_pNN` keys
(we take quantiles of the per-interval bucket deltas pooled across label sets, the same thing),
`sum()` where we sum label sets. The rate window is max(5m, step): at 7 d the step is 600 s, so
`rate(x[10m])` is the per-bucket average rate, exactly what our 600 s rollup of per-interval
rates holds.
"""

from monitoring import metrics

_SUMMARY_QUANTILES = {"q0": "0", "q025": "0.25", "q05": "0.5", "q075": "0.75", "q1": "1"}


def _source(key: str, present: set[str]) -> str:
    """The exported sample name our stored key is read from (3.4 renames first)."""
    for candidate in metrics.RENAMED_KEYS.get(key, ()):
        if candidate in present:
            return candidate
    return key


def promql(name: str, *, instance: str, window: int, present: set[str]) -> str:
    """The PromQL expression for one stored series of one member; KeyError when unmapped."""
    sel = f'instance="{instance}"'
    r = f"[{window}s]"
    if name == "process_cpu_usage_percent":
        return f"rate(process_cpu_seconds_total{{{sel}}}{r}) * 100"
    if name == "etcd_server_proposals_commit_apply_lag":
        return (
            f"etcd_server_proposals_committed_total{{{sel}}}"
            f" - etcd_server_proposals_applied_total{{{sel}}}"
        )
    if name == "etcd_server_proposals_failed_rate":
        return f"rate(etcd_server_proposals_failed_total{{{sel}}}{r})"
    for prefix, (family, scale) in metrics.HISTOGRAMS.items():
        for suffix, q in metrics.QUANTILES:
            if name == f"{prefix}_{suffix}":
                expr = f"histogram_quantile({q}, sum by (le) (rate({family}_bucket{{{sel}}}{r})))"
                return expr if scale == 1.0 else f"{expr} * {scale}"
    if name.startswith("go_gc_duration_seconds_q"):
        q = _SUMMARY_QUANTILES[name.removeprefix("go_gc_duration_seconds_")]
        return f'go_gc_duration_seconds{{{sel},quantile="{q}"}}'
    if name.endswith("_rate"):
        base = name.removesuffix("_rate")
        if base.startswith("etcd_server_client_requests_"):
            version = base.removeprefix("etcd_server_client_requests_")
            label = {"unknown": ""}.get(version, f"{version[0]}.{version[1:]}")
            return (
                "sum(rate(etcd_server_client_requests_total"
                f'{{{sel},client_api_version="{label}"}}{r}))'
            )
        if base in ("grpc_server_handled_ok_total", "grpc_server_handled_error_total"):
            op = "=" if "_ok_" in base else "!="
            return f'sum(rate(grpc_server_handled_total{{{sel},grpc_code{op}"OK"}}{r}))'
        if base == "grpc_server_handled_total" or base in metrics.SUMMED_KEYS:
            return f"sum(rate({base}{{{sel}}}{r}))"
        if base in metrics.RATE_KEYS:
            return f"rate({_source(base, present)}{{{sel}}}{r})"
        raise KeyError(name)
    if name in metrics.SUMMED_KEYS or name == "etcd_network_active_peers":
        return f"sum({name}{{{sel}}})"
    if name in metrics.FIRST_VALUE_KEYS or name in metrics.RENAMED_KEYS:
        return f"{_source(name, present)}{{{sel}}}"
    raise KeyError(name)


def dashboard_names() -> list[str]:
    """Every series the dashboard charts (all panels), deduplicated, in panel order."""
    try:
        from monitoring.panels import PANEL_CHARTS
    except ImportError:  # an older checkout: the list the monitoring bench uses
        from run_monitoring import DASHBOARD

        return list(DASHBOARD)
    names = [row[0] for chart in PANEL_CHARTS.values() for row in chart["series"]]
    return list(dict.fromkeys(names))
