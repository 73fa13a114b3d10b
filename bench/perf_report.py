"""docs/PERFORMANCE.md from the raw figures of one bench/run_all run (see bench/perf_run.py)."""

import json
import sys
from pathlib import Path

NOTES_FILE = Path(__file__).resolve().parent / "perf_notes.md"

# The anchors measured on this machine kind (/work/shared/reference/anchors-measured.md), for
# context only: every ratio below is against the baseline measured in the same run.
ANCHORS = {
    "query_1h": "Prometheus 241 ms (43 expr)",
    "query_24h": "Prometheus 767 ms (43 expr)",
    "query_7d": "Prometheus 3,826 ms (43 expr)",
    "storage": "Prometheus 1,440 B (1.11 B/sample)",
    "ingest": "Prometheus 4.78 ms/scrape",
    "healthz": "-",
    "current": "-",
    "auth": "-",
    "kv": "etcdctl 432-516 ms, 38 MiB",
    "kv_list": "etcdctl 16 ms (100 keys)",
    "snapshot": "etcdctl 98.5 MB/s, 27 MiB",
    "snapshot_rss": "pyetcd +18 MiB over etcdctl",
}


def _fmt(value, digits=1) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def rows(result: dict) -> list[dict]:
    """One dict per figure: figure, ours, baseline, ratio, goal, met (None = no goal)."""
    out = []
    query = result.get("query", {})
    for label in ("1h", "24h", "7d"):
        q = query.get(label)
        if not q:
            continue
        ours, prom = q["ours_ms"]["median"], q["prom_ms"]["median"]
        ratio = ours / prom
        goal = "<= 0.05 x" if label == "7d" else "-"
        out.append(
            {
                "key": f"query_{label}",
                "figure": f"dashboard query, one member, {label} ({q['names']} series, "
                f"step {q['step']} s), ms",
                "ours": f"{_fmt(ours)} ({_fmt(q['ours_ms']['min'])}-{_fmt(q['ours_ms']['max'])})",
                "baseline": f"Prometheus {_fmt(prom)} ({q['expressions']} expr; "
                f"{_fmt(q['prom_ms']['min'])}-{_fmt(q['prom_ms']['max'])})",
                "ratio": ratio,
                "goal": goal,
                "met": (ratio <= 0.05) if label == "7d" else None,
            }
        )
    dataset = result.get("dataset")
    if dataset and "prom_storage" in result:
        scrapes = dataset["ours"]["member_scrapes"]
        ours = dataset["ours"]["bytes_total"] / scrapes
        prom_bytes = result["prom_storage"]["blocks_bytes"]
        prom = prom_bytes / scrapes
        per_sample = prom_bytes / max(1, result["prom_storage"]["samples"])
        out.append(
            {
                "key": "storage",
                "figure": "storage per member-scrape, B (PG tables+indexes+rollups after "
                "VACUUM vs compacted TSDB blocks)",
                "ours": _fmt(ours),
                "baseline": f"Prometheus {_fmt(prom)} ({per_sample:.2f} B/sample, "
                f"{result['prom_storage']['blocks']:.0f} blocks)",
                "ratio": ours / prom,
                "goal": "<= 0.7 x",
                "met": ours / prom <= 0.7,
            }
        )
    ingest = result.get("ingest")
    if ingest:
        ours = ingest["ours_ms_per_member_cycle"]["median"]
        prom = ingest["prom_ms_per_scrape"]["median"]
        out.append(
            {
                "key": "ingest",
                "figure": "ingest CPU per member per cycle, ms",
                "ours": f"{ours:.2f} ({ingest['ours_ms_per_member_cycle']['min']:.2f}-"
                f"{ingest['ours_ms_per_member_cycle']['max']:.2f})",
                "baseline": f"Prometheus {prom:.2f} ms/scrape "
                f"({ingest['prom_samples_per_scrape']:.0f} samples)",
                "ratio": ours / prom,
                "goal": "<= 2 x",
                "met": ours / prom <= 2,
            }
        )
    api = result.get("throughput")
    if api:
        for key, path in (("healthz", "/healthz (no auth)"), ("current", "/api/current (Bearer)")):
            rps = api[key]["rps"]["median"]
            out.append(
                {
                    "key": key,
                    "figure": f"API {path} on gunicorn + PostgreSQL, req/s (p99 ms)",
                    "ours": f"{rps:,.0f} (p99 {api[key]['p99_ms']['median']:.1f})",
                    "baseline": "-",
                    "ratio": None,
                    "goal": ">= 1000 req/s",
                    "met": rps >= 1000,
                }
            )
        out.append(
            {
                "key": "auth",
                "figure": "auth overhead: 1 - req/s(/api/current) / req/s(/healthz), "
                "median over adjacent pairs of windows",
                "ours": f"{api['auth_overhead'] * 100:.1f} %",
                "baseline": "-",
                "ratio": None,
                "goal": "<= 30 %",
                "met": api["auth_overhead"] <= 0.30,
            }
        )
    plain = result.get("throughput_uncached")
    if plain:
        for key, path in (("healthz", "/healthz"), ("current", "/api/current")):
            rps = plain[key]["rps"]["median"]
            out.append(
                {
                    "key": f"{key}_uncached",
                    "figure": f"API {path} with the per-process caches off "
                    "(AUTH_, CURRENT_, HEALTH_CACHE_SECONDS=0), req/s (p99 ms)",
                    "ours": f"{rps:,.0f} (p99 {plain[key]['p99_ms']['median']:.1f})",
                    "baseline": "-",
                    "ratio": None,
                    "goal": "-",
                    "met": None,
                }
            )
    kv = result.get("kv")
    if kv and "keys_tree_ms" in kv:
        out.append(
            {
                "key": "kv",
                "figure": f"KV keys tree, {kv['keys']:,} keys, ms",
                "ours": f"{_fmt(kv['keys_tree_ms'])} ({kv['keys_tree_bytes'] / 1e6:.1f} MB JSON)",
                "baseline": f"etcdctl --keys-only {_fmt(kv['etcdctl_keys_ms'])} "
                f"({kv['etcdctl_keys_bytes'] / 1e6:.1f} MB)",
                "ratio": kv["keys_tree_ratio"],
                "goal": "<= 1.5 x",
                "met": kv["keys_tree_ratio"] <= 1.5,
            }
        )
        out.append(
            {
                "key": "kv_list",
                "figure": "KV list page of a 10k-children directory (limit 5000), ms",
                "ours": _fmt(kv["list_page_5000_ms"]),
                "baseline": f"etcdctl whole directory {_fmt(kv['etcdctl_dir_ms'])}",
                "ratio": kv["list_page_5000_ms"] / kv["etcdctl_dir_ms"],
                "goal": "-",
                "met": None,
            }
        )
    snap = result.get("snapshot")
    if snap and "ours_mb_per_s" in snap:
        out.append(
            {
                "key": "snapshot",
                "figure": f"snapshot download, {snap['snapshot_bytes'] / 1e6:.0f} MB, MB/s",
                "ours": _fmt(snap["ours_mb_per_s"]),
                "baseline": f"etcdctl snapshot save {_fmt(snap['etcdctl_mb_per_s'])}",
                "ratio": snap["throughput_ratio"],
                "goal": ">= 0.9 x",
                "met": snap["throughput_ratio"] >= 0.9,
            }
        )
        out.append(
            {
                "key": "snapshot_rss",
                "figure": "snapshot: server RSS growth during our downloads, MiB",
                "ours": _fmt(snap["ours_rss_growth_mib"]),
                "baseline": f"etcdctl peak RSS {_fmt(snap['etcdctl_peak_rss_mib'])}",
                "ratio": None,
                "goal": "<= 50 MB",
                "met": snap["ours_rss_growth_mib"] * 1.048576 <= 50,
            }
        )
    return out


def render(result: dict) -> str:
    m = result["machine"]
    machine = f"{m['cpus']} vCPU, {m['mem_mib'] // 1024} GiB"
    date = result["started"][:10]
    load_start, load_end = result["load_start"], result.get("load_end", [0, 0, 0])
    loaded = max(load_start[0], load_end[0]) > m["cpus"]
    lines = [
        "# Performance, side by side",
        "",
        "Generated by `bench/run_all` (do not edit by hand: re-run it). Every ratio is ours ÷ the "
        "baseline measured **in the same run**, both sides alternating, median of "
        f"{result['args']['runs']} runs after 1 warm-up (min-max in brackets). The anchor column "
        "is the figure measured on this machine kind on 2026-12-01, for context only.",
        "",
        f"- Machine: {m['cpu']}, {machine}, {m['os']}; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- Run: {result['started']} UTC, {result['wall_s'] / 60:.1f} min wall; load average "
        f"(1/5/15 min) at start {load_start}, at end {load_end}"
        + (
            f" — **the machine was loaded** (other jobs running; load above its {m['cpus']} "
            "CPUs), so absolute times are pessimistic; both sides of each ratio saw the same load."
            if loaded
            else "."
        ),
        "",
        "| figure | ours | baseline (same run) | ratio | goal | met? | anchor | machine | date |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    table = rows(result)
    for row in table:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(
            f"| {row['figure']} | {row['ours']} | {row['baseline']} | {ratio} | {row['goal']} "
            f"| {met} | {ANCHORS.get(row['key'], '-')} | {machine} | {date} |"
        )
    lines += ["", "## How each figure is measured", ""]
    lines += _method(result)
    met = [r["figure"] for r in table if r["met"] is True]
    missed = [r["figure"] for r in table if r["met"] is False]
    lines += ["", "## Goals", ""]
    lines.append(f"Met ({len(met)}): " + ("; ".join(met) if met else "none") + ".")
    lines.append("")
    lines.append(f"Missed ({len(missed)}): " + ("; ".join(missed) if missed else "none") + ".")
    if NOTES_FILE.exists():
        lines += ["", NOTES_FILE.read_text().strip()]
    return "\n".join(lines) + "\n"


def _method(result: dict) -> list[str]:
    d = result.get("dataset", {})
    out = []
    if d:
        ours, prom = d["ours"], d["prom"]
        out.append(
            f"1. **Same data in both stores.** {d['ticks']:,} ticks of 30 s per member x 3 members "
            f"({ours['member_scrapes']:,} member-scrapes), evolved from each member's real "
            f"`/metrics` scrape of a local etcd cluster ({d['scrape_samples']} samples) by "
            "`bench/perf_dataset.py`. Ours: `derive_snapshot` → values array → `Sample` rows → "
            f"`rollups_refresh` ({ours['ingest_s']:.0f} s, rollups {ours['rollup_s']:.0f} s). "
            f"Prometheus: {prom['samples']:,} samples of {prom['series']:,} series as OpenMetrics "
            "with timestamps (one file per 2 h window, 3 % of scrapes 3-20 ms late as Prometheus "
            "would stamp them) → `promtool tsdb create-blocks-from openmetrics` "
            f"({prom['load_s']:.0f} s wall, promtool {prom['promtool_cpu_s']:.0f} s CPU), then "
            "`prometheus --storage.tsdb.path=<blocks> --storage.tsdb.retention.time=30d` until its "
            f"own compaction settled ({result['prom_compaction']})."
        )
    q = result.get("query", {})
    if q:
        out.append(
            "2. **Dashboard query.** Ours: one `GET /api/range?member_id=…&metrics=<every series "
            "the dashboard panels chart>&start=…&end=…` with a Bearer token through "
            "`manage.py runmonitor` (gunicorn, 2 workers, PostgreSQL), windows ending at the last "
            "sample. Prometheus: one `GET /api/v1/query_range` per expression (sequential, one "
            "keep-alive client) at the same step, `rate(x[max(5m, step)])`, "
            "`histogram_quantile(q, sum by (le) (rate(x_bucket[…])))`, `sum()` where we sum label "
            "sets (`bench/perf_promql.py`). Shapes returned at 7 d: ours "
            f"{q.get('7d', {}).get('ours_series_points_bytes')} (series, points, bytes), "
            f"Prometheus {q.get('7d', {}).get('prom_series_points_bytes')}."
        )
    out.append(
        "3. **Storage.** `pg_total_relation_size` of `monitoring_sample` (summed over its "
        "day partitions), "
        "`monitoring_samplerollup` and `monitoring_metricname` after `VACUUM ANALYZE`, "
        "against the sum of the compacted block directories (chunks + index + meta + "
        "tombstones), each ÷ member-scrapes."
    )
    ing = result.get("ingest")
    if ing:
        out.append(
            "4. **Ingest CPU.** Prometheus 2.42 scraping the 3 members every 1 s: utime+stime "
            f"from `/proc/<pid>/stat` over {ing['window_s']:.0f} s windows ÷ scrapes "
            "(Δ`prometheus_target_interval_length_seconds_count`), minus its idle CPU with no "
            f"targets ({ing['prom_idle_cpu_per_s'] * 1000:.1f} ms/s); gross "
            f"{ing['prom_gross_ms_per_scrape']['median']:.2f} ms. Ours: `bench/perf_collect.py`, "
            "10 `collect_cluster()` cycles 1 s apart per run (after a warm-up cycle), "
            "`time.process_time()` of the whole process ÷ members — HTTP GET, parse, derive, "
            "Status RPC, lease count, DB writes and rollups. Prometheus is SIGSTOPped while "
            "ours runs."
        )
    api = result.get("throughput")
    if api:
        out.append(
            f"5. **API throughput.** `wrk -t2 -c16 -d{api['seconds']}s --latency` on the same "
            "machine as the server (they share the 2 CPUs), alternating the two URLs; "
            f"non-2xx responses: /healthz {api['healthz']['non_2xx']}, "
            f"/api/current {api['current']['non_2xx']}. The default configuration reuses, per "
            "process and for 1 s, the /healthz checks, a validated session row and the "
            "/api/current answer; the `caches off` rows are a second server with all three at 0."
        )
    out.append(
        "6. **KV and snapshot.** `bench/kv_tree.py` (our `/api/kv/v3/keys` through the DRF views "
        'vs `etcdctl get "" --prefix --keys-only` as a whole process) and '
        "`bench/ops_snapshot.py` (our `/api/ops/snapshot` through the WSGI server vs "
        "`etcdctl snapshot save`), run by `bench/run_all` with `--runs` and `--json`."
    )
    return out


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/performance.json")
    print(render(json.loads(source.read_text())))
