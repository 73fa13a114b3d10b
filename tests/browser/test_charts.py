"""Charts an SRE can read (issue 17, item 4) and the cluster line's disk latencies (item 3), in a
real browser against a live server and the session's 3-member cluster.

The assertions read what ECharts was given (`echarts.getInstanceByDom(...).getOption()`) and call
the page's own formatters, so they fail when the page draws totals, decimal units or smoothed
curves, however the canvas looks.
"""

import re

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from monitoring.panels import PANELS
from tests.browser.conftest import sign_in

PASSWORD = "charts-pass-1"
GIB = 1024**3

OPTION_JS = "id => echarts.getInstanceByDom(document.getElementById(id)).getOption()"


def _option(page, panel_id):
    return page.evaluate(f"({OPTION_JS})", panel_id)


def _axis_labels(page, panel_id, axis, values):
    """The y axis' own label formatter applied to `values` (what the ticks would read)."""
    return page.evaluate(
        f"([id, axis, values]) => {{ const f = ({OPTION_JS})(id).yAxis[axis].axisLabel.formatter;"
        " return values.map(v => f(v)); }",
        [panel_id, axis, values],
    )


def test_formatters_use_binary_units_and_magnitude_durations(dashboard_server, page, page_errors):
    server = dashboard_server()
    sign_in(page, server, PASSWORD)
    got = page.evaluate(
        """() => ({
          bytes: [0, 1023, 1536, 3 * 1024 ** 2, 2 * 1024 ** 3, 1.5 * 1024 ** 4]
            .map(v => etcdmonitorTest.format("bytes", v)),
          rate: etcdmonitorTest.format("bytes_per_second", 2048),
          durations: [0, 0.00000042, 0.000512, 0.0009996, 0.0123, 0.25, 1.5, 12]
            .map(v => etcdmonitorTest.format("duration", v)),
        })"""
    )
    assert got["bytes"] == ["0 B", "1023 B", "1.5 KiB", "3 MiB", "2 GiB", "1.5 TiB"]
    assert got["rate"] == "2 KiB/s"
    assert got["durations"] == [
        "0 s",
        "0.42 µs",
        "512 µs",
        "1 ms",
        "12.3 ms",
        "250 ms",
        "1.5 s",
        "12 s",
    ]
    # Increases of a cumulative counter: whole events, none across a gap or a reset.
    increases = page.evaluate(
        """() => etcdmonitorTest.increases([
          {ts: 0, value: 3}, {ts: 30, value: 3.4}, {ts: 60, value: 4}, {ts: 90, value: 6},
          {ts: 300, value: 7}, {ts: 330, value: 1}, {ts: 360, value: 1}])"""
    )
    assert [v for _, v in increases] == [0, 1, 2, None, None, 0]
    assert [t for t, _ in increases] == [30_000, 60_000, 90_000, 120_000, 330_000, 360_000]
    assert page_errors == []


def test_charts_show_rates_quota_binary_axes_and_the_mixins_order(
    dashboard_server, page, page_errors, etcd_cluster
):
    server = dashboard_server()
    sign_in(page, server, PASSWORD)
    expect(page.locator("#loading")).to_be_hidden(timeout=20_000)

    # --- default panels in the order an SRE checks them, runtime last ---
    shown = page.locator("#panels .panel").evaluate_all("ns => ns.map(n => n.dataset.panelId)")
    expected = [p.id for p in sorted(PANELS, key=lambda p: p.default_order) if p.default_visible]
    assert shown == expected
    assert shown[:4] == ["chartLeaderChanges", "chartGRPC", "chartGRPCTraffic", "chartDBSize"]
    assert (
        shown.index("chartWALFsync")
        < shown.index("chartPeerRTT")
        < shown.index("chartRaftProposals")
    )
    assert shown[-6:] == [
        "chartCPU",
        "chartMemory",
        "chartGoroutines",
        "chartGC",
        "chartFDs",
        "chartMemSys",
    ]

    # Writes so that proposals are committed between scrapes (2 s apart): a rate above zero.
    for i in range(40):
        cluster_gateway().kv(lambda c, i=i: c.put(f"/charts-test/k{i}".encode(), b"v"))
        page.wait_for_timeout(100)
    page.select_option("#range-select", "5m")  # raw rows
    page.wait_for_function(
        f"() => ({OPTION_JS})('chartRaftProposals').series[0].data.some(p => p[1] > 0)",
        timeout=20_000,
    )
    current = page.request.get(server.url + "/api/current").json()["metrics"]

    # --- a counter is drawn as a rate, never as its cumulative total ---
    proposals = _option(page, "chartRaftProposals")
    committed = proposals["series"][0]
    assert committed["name"] == "Committed / s"
    values = [v for _, v in committed["data"] if v is not None]
    total = current["etcd_server_proposals_committed_total"]
    assert total > 40 and values and max(values) < total / 2, (max(values), total)
    assert _axis_labels(page, "chartRaftProposals", 0, [5])[0].endswith("/s")
    # Leader changes are whole increases per point, not the total seen since start.
    leader = _option(page, "chartLeaderChanges")
    changes = next(s for s in leader["series"] if s["name"] == "Leader Changes")
    assert current["etcd_server_leader_changes_seen_total"] >= 1
    increases = [v for _, v in changes["data"] if v is not None]
    assert increases and all(v == int(v) and v >= 0 for v in increases)
    assert max(increases) < current["etcd_server_leader_changes_seen_total"]
    assert leader["yAxis"][0]["minInterval"] == 1  # integer ticks for counts
    # No curve smoothing anywhere.
    smoothed = page.evaluate(
        "() => [...document.querySelectorAll('#panels .chart')].flatMap(d =>"
        " echarts.getInstanceByDom(d).getOption().series.filter(s => s.smooth).map(s => d.id))"
    )
    assert smoothed == []

    # --- the DB-size axis reaches the quota, with a % of quota axis beside it ---
    quota = current["etcd_server_quota_backend_bytes"]
    assert quota > 0
    db = _option(page, "chartDBSize")
    assert db["yAxis"][0]["max"] >= quota
    assert [d["yAxis"] for d in db["series"][0]["markLine"]["data"]] == [0.8 * quota, quota]
    percent_axis = db["yAxis"][-1]
    assert percent_axis["max"] * quota / 100 == db["yAxis"][0]["max"]
    assert _axis_labels(page, "chartDBSize", len(db["yAxis"]) - 1, [100]) == ["100 %"]
    # Byte ticks at binary steps with binary labels.
    ticks = [i * db["yAxis"][0]["interval"] for i in range(5)]
    labels = _axis_labels(page, "chartDBSize", 0, ticks)
    assert all(re.fullmatch(r"\d+(\.\d+)? (B|KiB|MiB|GiB)", label) for label in labels), labels
    if quota == 2 * GIB:  # etcd's default quota
        assert labels == ["0 B", "512 MiB", "1 GiB", "1.5 GiB", "2 GiB"]
    memory = _axis_labels(page, "chartMemory", 0, [3 * 1024**2, 1536])
    assert memory == ["3 MiB", "1.5 KiB"]
    expect(page.locator("#banner")).to_contain_text(re.compile(r"DB Size\s*[\d.]+ (KiB|MiB)"))

    # --- a range longer than the stored history says since when data exists ---
    page.select_option("#range-select", "7d")
    note = page.locator("#data-since")
    expect(note).to_be_visible(timeout=20_000)
    expect(note).to_have_text(
        re.compile(r"^Data since \d\d:\d\d: the chosen range is longer than the stored history\.$")
    )
    page.select_option("#range-select", "1m")
    expect(note).to_be_hidden(timeout=20_000)
    assert page_errors == []


def test_cluster_line_shows_disk_p99_against_targets(dashboard_server, page, page_errors):
    server = dashboard_server()
    sign_in(page, server, PASSWORD)
    line = page.locator("#cluster-line")
    expect(line).to_contain_text(re.compile(r"DB \d+\.\d % of [\d.]+ (MiB|GiB) quota \("))
    wal = page.locator("#cl-disk-wal")
    commit = page.locator("#cl-disk-commit")
    unit = r"[\d.]+ (µs|ms|s)"
    expect(wal).to_have_text(
        re.compile(rf"^WAL fsync p99 {unit} on m\d.* / 10 ms$"), timeout=20_000
    )
    expect(commit).to_have_text(re.compile(rf"^Commit p99 {unit} on m\d.* / 25 ms$"))
    # Coloured exactly when over target: read text and class in one go (the line re-renders).
    for node, target_ms in ((wal, 10), (commit, 25)):
        text, cls = node.evaluate("n => [n.textContent, n.className]")
        value, scale = re.search(r"p99 ([\d.]+) (µs|ms|s)", text).groups()
        ms = float(value) * {"µs": 1e-3, "ms": 1, "s": 1e3}[scale]
        recent = "(since start)" not in text
        assert ("bad" in cls.split()) == (recent and ms > target_ms), (text, cls)
    assert page_errors == []
