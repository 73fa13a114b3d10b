"""The whole operator walk in a real browser: first login → forced change → monitor with live
data → panel layout persisted → KV edit → ops → audit log → logout."""

import re
import uuid
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from monitoring.panels import PANELS, dashboard_registry
from tests.browser.conftest import (
    expect_dashboard_ready,
    expect_page_ready,
    open_slash_dir,
    save_screenshot,
)

NEW_PASSWORD = "browser-pass-1"
KEY_PANELS = ("chartRaftProposals", "chartDBSize", "chartMemory", "chartGoroutines", "chartFDs")

POINTS_JS = """() => Object.fromEntries([...document.querySelectorAll('#panels .chart')].map(d => {
  const c = echarts.getInstanceByDom(d);
  return [d.id, c ? c.getOption().series.reduce((n, s) => n + s.data.length, 0) : -1];
}))"""


def _range_metric_sets(requests: list[str]) -> list[set[str]]:
    sets = []
    for url in requests:
        query = parse_qs(urlparse(url).query)
        sets.append(set(query["metrics"][0].split(",")))
    return sets


def _visible_metrics(hidden: set[str] = frozenset()) -> set[str]:
    return {
        series["metric"]
        for panel in dashboard_registry()["panels"]
        if panel["default_visible"] and panel["id"] not in hidden
        for series in panel["series"]
    }


def _etcd_get(key: str):
    """(value, metadata) straight from etcd."""
    return cluster_gateway().kv(lambda c: c.get(key.encode()))


def _first_login(page, server) -> None:
    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator("#initial-hint")).to_contain_text("initial-admin-password")
    page.fill("#username", "admin")
    page.fill("#password", server.initial_password())
    page.click("#login-submit")
    expect(page).to_have_url(re.compile(r"/change-password\?username=admin&forced=1"))
    expect_page_ready(page)  # the login page sent us here: the new page's script may still load
    expect(page.locator("#cp-username")).to_have_value("admin")
    page.fill("#cp-old", server.initial_password())
    page.fill("#cp-new", NEW_PASSWORD)
    page.fill("#cp-confirm", NEW_PASSWORD)
    page.click("#change-submit")
    # Argon2 on a busy 2-core machine can take seconds; the page then goes back to sign-in.
    expect(page).to_have_url(re.compile(r"/login$"), timeout=30_000)
    expect(page.locator("#initial-hint")).to_have_count(0)  # the file is gone after the change
    expect_page_ready(page)
    page.fill("#username", "admin")
    page.fill("#password", NEW_PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(server.url + "/")
    expect_dashboard_ready(page)


def test_operator_walk_from_first_login_to_logout(
    dashboard_server, page, page_errors, etcd_cluster, tmp_path
):
    server = dashboard_server()
    ranges: list[str] = []
    page.on("request", lambda r: ranges.append(r.url) if "/api/range?" in r.url else None)

    # --- first login, forced change; no token is readable by the page ---
    _first_login(page, server)
    assert page.evaluate("() => sessionStorage.length + localStorage.length") == 0
    assert "etcdmonitor_session" not in page.evaluate("() => document.cookie")

    # --- monitor: visible panels draw real data ---
    expect(page.locator("#loading")).to_be_hidden(timeout=20_000)
    expect(page.locator("#conn-badge")).to_have_text("Connected", timeout=20_000)
    expect(page.locator("#member-select option")).to_have_count(3)
    assert page.locator("#member-select option", has_text="★").count() == 1
    expect(page.locator("#cards > .metric")).to_have_count(7)
    shown = {p.id for p in PANELS if p.default_visible}
    assert set(page.evaluate(POINTS_JS)) == shown
    # Let the collector run a few cycles (2 s apart), then refresh: rates need two scrapes.
    page.wait_for_timeout(7000)
    page.select_option("#range-select", "1m")  # raw rows, no 30 s buckets
    page.wait_for_function(
        f"() => {{ const p = ({POINTS_JS})(); return {list(KEY_PANELS)}.every(id => p[id] > 0); }}",
        timeout=20_000,
    )
    points = page.evaluate(POINTS_JS)
    assert all(points[panel] > 0 for panel in KEY_PANELS), points
    assert _range_metric_sets(ranges)[-1] == _visible_metrics()
    assert "process_cpu_usage_percent" in _range_metric_sets(ranges)[-1]
    # threshold lines: fragmentation ratio has its three mark lines
    marks = page.evaluate(
        "() => echarts.getInstanceByDom(document.getElementById('chartFragmentationRatio'))"
        ".getOption().series[0].markLine.data.map(d => d.yAxis)"
    )
    assert marks == [30, 40, 60]
    # maximise and restore with Escape
    page.click("#panel-chartDBSize .maximise")
    expect(page.locator("#panel-chartDBSize")).to_have_class(re.compile("maximised"))
    page.keyboard.press("Escape")
    expect(page.locator("#panel-chartDBSize")).not_to_have_class(re.compile("maximised"))
    page.evaluate("() => window.scrollTo(0, 0)")
    save_screenshot(page, "monitor-dark.png", tmp_path)
    page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.wait_for_timeout(300)
    save_screenshot(page, "monitor-light.png", tmp_path)

    # --- panel settings: hide CPU, move Goroutines first in its section, drag Slow Ops first ---
    page.click("#panel-settings-btn")
    expect(page.locator("#cards-counter")).to_have_text("7 / 7 selected")
    assert page.locator("#set-cardPending").is_disabled()
    page.uncheck("#set-chartCPU")
    for _ in range(3):
        page.click("[aria-label='Move Goroutines up']")
    raft = page.locator("#settings-panels ul[data-section=proposals] li")
    raft.filter(has_text="Slow Operations").drag_to(raft.filter(has_text="Raft Proposals"))
    ranges.clear()
    page.click("#settings-save")
    expect(page.locator("#panel-chartCPU")).to_have_count(0)
    page.wait_for_function("() => document.querySelectorAll('#panels .chart').length > 0")
    page.reload()
    expect_dashboard_ready(page)
    expect(page.locator("html")).to_have_attribute("data-theme", "light")  # theme kept
    expect(page.locator("#loading")).to_be_hidden(timeout=20_000)
    expect(page.locator("#panel-chartCPU")).to_have_count(0)
    runtime = page.locator("[data-section=runtime] .panel").evaluate_all(
        "nodes => nodes.map(n => n.dataset.panelId)"
    )
    assert runtime[0] == "chartGoroutines" and "chartCPU" not in runtime
    raft_order = page.locator("[data-section=proposals] .panel").evaluate_all(
        "nodes => nodes.map(n => n.dataset.panelId)"
    )
    assert raft_order[:2] == ["chartSlowOps", "chartRaftProposals"]
    assert _range_metric_sets(ranges)[-1] == _visible_metrics(hidden={"chartCPU"})
    page.click("#theme-toggle")  # back to dark for the other screenshots

    # --- KV: create with TTL, edit keeps the TTL, binary survives, search, delete a dir ---
    base = f"/browser-{uuid.uuid4().hex[:8]}"
    gateway = cluster_gateway()
    gateway.kv(lambda c: c.put(f"{base}/bin".encode(), b"\xff\x00\xfe"))
    for i in range(105):
        gateway.kv(lambda c, i=i: c.put(f"{base}/many/k{i:03d}".encode(), b"v"))
    page.click("#view-kv")
    expect(page).to_have_url(server.url + "/kv")
    expect(page.locator("#kv-info")).to_contain_text("Version")
    page.click("#kv-new")
    page.fill("#kv-create-name", f"{base}/app/config.json")
    page.fill("#kv-create-ttl", "600")
    page.fill("#kv-create-value", '{"a": 1}')
    page.click("#kv-create-ok")
    expect(page.locator("#kv-create-dialog")).to_be_hidden()
    tree = page.locator("#kv-tree")
    open_slash_dir(tree)
    tree.locator(f".kv-node[data-key='{base}']").click()
    tree.locator(f".kv-node[data-key='{base}/app']").click()
    tree.locator(f".kv-node[data-key='{base}/app/config.json']").click()
    expect(page.locator("#kv-meta")).to_contain_text("TTL: ")
    expect(page.locator("#kv-mode")).to_have_value("json")
    page.click("#kv-editor .ace_content")
    page.keyboard.press("Control+A")
    page.keyboard.insert_text('{"a": 2, "b": [1, 2]}')
    page.click("#kv-save")
    expect(page.locator("#toasts")).to_contain_text("Saved")
    value, meta = _etcd_get(f"{base}/app/config.json")
    assert value == b'{"a": 2, "b": [1, 2]}'
    assert meta.lease_id, "editing kept the key's lease (TTL)"
    expect(page.locator("#kv-meta")).to_contain_text(re.compile(r"TTL: \d+s"))
    page.click("#kv-pretty")
    assert '\n  "a": 2' in page.evaluate("() => ace.edit('kv-editor').getValue()")
    save_screenshot(page, "kv.png", tmp_path)

    tree.locator(f".kv-node[data-key='{base}/bin']").click()
    expect(page.locator("#kv-encoding")).to_be_visible()
    assert page.evaluate("() => ace.edit('kv-editor').getValue()") == "/wD+"
    page.click("#kv-save")
    expect(page.locator("#toasts")).to_contain_text(f"Saved {base}/bin")
    assert _etcd_get(f"{base}/bin")[0] == b"\xff\x00\xfe"

    tree.locator(f".kv-node[data-key='{base}/many']").click()
    many = tree.locator(f".kv-node[data-key^='{base}/many/k']")
    expect(many).to_have_count(100)
    tree.locator("button.kv-more").click()
    expect(many).to_have_count(105)

    page.fill("#kv-search", "config.js")
    page.click("#kv-search-btn")
    expect(page.locator("#kv-search-summary")).to_contain_text("matching")
    expect(tree.locator(f".kv-node[data-key='{base}/app/config.json']")).to_have_count(1)
    page.click("#kv-search-clear")
    open_slash_dir(tree)
    tree.locator(f".kv-node[data-key='{base}']").click(button="right")
    page.click("#kv-menu-delete")
    expect(page.locator("#confirm-text")).to_contain_text("ALL keys")
    # Over 100 keys: the cluster's name is typed first (issue 21; the session's is "default").
    expect(page.locator("#confirm-ok")).to_be_disabled()
    page.fill("#confirm-typed", "default")
    page.click("#confirm-ok")
    expect(page.locator("#toasts")).to_contain_text(f"Deleted {base}")
    assert gateway.kv(lambda c: list(c.get_prefix(f"{base}/".encode(), keys_only=True))) == []

    # --- ops: defragment a follower, HashKV, snapshot download ---
    page.click("#view-ops")
    page.click("#ops-menu button[data-ops=defrag]")
    follower = page.locator("#defrag-list li", has=page.locator(".role", has_text="follower")).first
    follower.locator("input").check()
    page.click("#defrag-run")
    expect(page.locator("#confirm-text")).to_contain_text("followers first")
    page.click("#confirm-ok")
    expect(follower.locator(".defrag-result")).to_have_text("✓", timeout=30_000)
    expect(page.locator("#defrag-run")).to_have_text("Completed")

    page.click("#ops-menu button[data-ops=hashkv]")
    page.click("#hashkv-run")
    expect(page.locator("#hashkv-banner")).to_contain_text("consistent", timeout=30_000)
    expect(page.locator("#hashkv-table tbody tr")).to_have_count(3)
    save_screenshot(page, "ops.png", tmp_path)

    page.click("#ops-menu button[data-ops=snapshot]")
    expect(page.locator("#snapshot-download")).to_have_attribute(
        "href", re.compile("member_id=\\d+")
    )
    expect(page.locator("#snapshot-size")).to_contain_text("Database size")
    with page.expect_download() as info:
        page.click("#snapshot-download")
    download = info.value
    assert download.failure() is None
    assert re.fullmatch(r"etcd-snapshot-.+-\d{8}-\d{6}\.db", download.suggested_filename)
    size = download.path().stat().st_size
    assert size >= 16 * 1024
    with open(download.path(), "rb") as handle:
        head = handle.read(32)
    assert head[16:20] == b"\xed\xda\x0c\xed", "a bbolt database file (etcd's backend)"

    # --- audit log shows what happened, newest first ---
    page.click("#ops-menu button[data-ops=audit]")
    table = page.locator("#audit-table tbody")
    for operation in ("snapshot", "hashkv", "defragment", "delete", "put"):
        expect(table).to_contain_text(operation)
    page.select_option("#audit-operation", "change_password")
    page.click("#audit-filters button[type=submit]")
    expect(table.locator("tr")).to_have_count(1)
    expect(page.locator("#audit-csv")).to_have_attribute(
        "href", "/api/ops/audit-logs?operation=change_password&format=csv"
    )

    # --- logout ---
    page.click("#logout-btn")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(server.url + "/ops")
    expect(page).to_have_url(re.compile(r"/login$"))
    assert page_errors == []
