"""KV cluster tabs in a real browser: add a second etcd cluster through the dialog, browse and
edit it, keep each tab's tree state, reorder by drag, close with confirmation, and the ⚠ state
of a tab whose cluster stopped (set at once by the failed KV request, no probe timing)."""

import re
import uuid
from urllib.parse import urlsplit

from playwright.sync_api import expect

from devtools.localcluster import free_port as _free_port
from etcdgateway import ClusterConfig, cluster_gateway
from tests.browser.conftest import expect_dashboard_ready, open_slash_dir, save_screenshot, sign_in

PASSWORD = "tabs-pass-1"


def _sign_in_to_kv(page, server) -> None:
    sign_in(page, server, PASSWORD)
    page.goto(server.url + "/kv")
    expect(page.locator("#kv-view")).to_be_visible()
    expect_dashboard_ready(page)


def _remote(url: str):
    return cluster_gateway(ClusterConfig(endpoints=(url,)))


def _listed(page, server) -> list[str]:
    answer = page.request.get(server.url + "/api/kv/tabs")
    assert answer.ok
    return [tab["name"] for tab in answer.json()["tabs"]]


def _tab(page, name: str):
    return page.locator("#kv-tab-list .kv-tab", has=page.locator(".kv-tab-name", has_text=name))


def _open(tree, key: str) -> None:
    tree.locator(f".kv-node[data-key='{key}']").click()


def _add_tab(page, url: str, name: str, *, test_first: bool) -> None:
    page.click("#kv-tab-add")
    expect(page.locator("#kv-tab-dialog")).to_be_visible()
    page.fill("#kv-tab-endpoint", url)
    page.fill("#kv-tab-name", name)
    if test_first:
        page.click("#kv-tab-test")
        expect(page.locator("#kv-tab-result")).to_have_text("✓ Connection OK", timeout=20_000)
        expect(page.locator("#kv-tab-result")).to_have_class(re.compile(r"\bok\b"))
    page.click("#kv-tab-ok")
    expect(page.locator("#kv-tab-dialog")).to_be_hidden(timeout=20_000)
    expect(page.locator("#kv-tab-list .kv-tab.active")).to_contain_text(name)
    expect(page.locator("#kv-info")).to_contain_text(f"Cluster: {name}")


def _audited(page, server, operation: str) -> int:
    answer = page.request.get(server.url + f"/api/ops/audit-logs?operation={operation}")
    assert answer.ok
    return answer.json()["total"]


def _test_then_cancel(page, url: str, expected: str) -> None:
    """Fill the add dialog, test the connection, close it again."""
    page.click("#kv-tab-add")
    expect(page.locator("#kv-tab-dialog")).to_be_visible()
    page.fill("#kv-tab-endpoint", url)
    with page.expect_response(lambda r: r.url.endswith("/api/kv/tabs/test")):
        page.click("#kv-tab-test")
    expect(page.locator("#kv-tab-result")).to_contain_text(expected, timeout=20_000)
    page.click("#kv-tab-cancel")
    expect(page.locator("#kv-tab-dialog")).to_be_hidden()


def _kv_requests(requests: list[str]) -> list[str]:
    return [u for u in requests if re.search(r"/api/kv/v[23]/", u)]


def test_add_browse_switch_reorder_and_close_a_second_cluster(
    dashboard_server, etcd_cluster_factory, page, page_errors, tmp_path
):
    remote = etcd_cluster_factory(size=1, point_settings=False)
    remote_url = remote.client_urls[0]
    suffix = uuid.uuid4().hex[:8]
    remote_base, default_base = f"/tabs-remote-{suffix}", f"/tabs-default-{suffix}"
    remote_key, default_key = f"{remote_base}/only-remote", f"{default_base}/only-default"
    _remote(remote_url).kv(lambda c: c.put(remote_key.encode(), b"remote-value"))
    _remote(remote_url).kv(lambda c: c.put(f"{remote_base}/other".encode(), b"x"))
    default = cluster_gateway()
    default.kv(lambda c: c.put(default_key.encode(), b"default-value"))
    server = dashboard_server()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    tab_writes: list[str] = []  # creates and deletes of tabs, not tests

    def record_tab_write(request) -> None:
        path = urlsplit(request.url).path
        if path == "/api/kv/tabs/test" or request.method not in ("POST", "DELETE"):
            return
        if re.fullmatch(r"/api/kv/tabs(/[^/]+)?", path):
            tab_writes.append(f"{request.method} {path}")

    page.on("request", record_tab_write)
    try:
        _sign_in_to_kv(page, server)
        strip = page.locator("#kv-tab-list .kv-tab")
        expect(strip).to_have_count(1)
        expect(strip.first).to_have_attribute("data-tab-id", "default")
        expect(strip.first.locator(".kv-tab-close")).to_have_count(0)
        assert strip.first.get_attribute("draggable") is None

        # --- the default tab: open a key, remember what is shown ---
        tree = page.locator("#kv-tree")
        open_slash_dir(tree)
        _open(tree, default_base)
        _open(tree, default_key)
        expect(page.locator("#kv-path")).to_have_text(default_key)
        expect(page.locator("#kv-meta")).to_contain_text("Type: Key")
        assert all("tab_id" not in u for u in _kv_requests(requests))

        # --- testing in the add dialog creates nothing, whether it works or not ---
        _test_then_cancel(page, remote_url, "✓ Connection OK")
        _test_then_cancel(page, f"http://127.0.0.1:{_free_port()}", "(unreachable)")
        assert _listed(page, server) == ["default"]
        expect(strip).to_have_count(1)
        assert tab_writes == [], "the test route only"
        assert _audited(page, server, "kv_tab_create") == 0

        # --- add the second cluster: test connection, then add ---
        _add_tab(page, remote_url, "remote-a", test_first=True)
        assert [w.split()[0] for w in tab_writes] == ["POST"], tab_writes
        assert _audited(page, server, "kv_tab_create") == 1
        assert _audited(page, server, "kv_tab_delete") == 0
        listed = page.request.get(server.url + "/api/kv/tabs").json()["tabs"]
        tab_a = next(t for t in listed if t["name"] == "remote-a")
        assert tab_a["endpoint"] == remote_url and tab_a["last_status"] == "ok"
        expect(strip).to_have_count(2)
        expect(_tab(page, "remote-a").locator(".kv-tab-close")).to_have_count(1)
        mark = len(requests)
        open_slash_dir(tree)
        expect(tree.locator(f".kv-node[data-key='{remote_base}']")).to_have_count(1)
        expect(tree.locator(f".kv-node[data-key='{default_base}']")).to_have_count(0)
        _open(tree, remote_base)
        _open(tree, remote_key)
        expect(page.locator("#kv-path")).to_have_text(remote_key)
        page.wait_for_function("() => ace.edit('kv-editor').getValue() === 'remote-value'")
        # a put goes to the tab's cluster, not the default one
        page.click("#kv-editor .ace_content")
        page.keyboard.press("Control+A")
        page.keyboard.insert_text("edited-remotely")
        page.click("#kv-save")
        expect(page.locator("#toasts")).to_contain_text(f"Saved {remote_key}")
        assert _remote(remote_url).kv(lambda c: c.get(remote_key.encode()))[0] == b"edited-remotely"
        assert default.kv(lambda c: c.get(remote_key.encode()))[0] is None
        remote_calls = _kv_requests(requests[mark:])
        assert remote_calls
        assert all(f"tab_id={tab_a['id']}" in u for u in remote_calls), remote_calls

        # --- per-tab protocol: V2 on remote-a, then default is still V3 with its selection ---
        page.click("#kv-v2")
        expect(page.locator("#kv-info")).to_contain_text("Protocol: V2")
        mark = len(requests)
        page.click("[data-tab-id=default]")
        expect(page.locator("#kv-v3")).to_have_class(re.compile(r"\bactive\b"))
        expect(page.locator("#kv-path")).to_have_text(default_key)
        expect(tree.locator(f".kv-node[data-key='{default_key}']")).to_have_class(
            re.compile(r"\bselected\b")
        )
        expect(tree.locator(f".kv-node[data-key='{remote_base}']")).to_have_count(0)
        expect(page.locator("#kv-info")).to_contain_text("Cluster: default")
        assert all("tab_id" not in u for u in _kv_requests(requests[mark:]))

        _tab(page, "remote-a").click()
        expect(page.locator("#kv-v2")).to_have_class(re.compile(r"\bactive\b"))
        page.click("#kv-v3")
        expect(page.locator("#kv-path")).to_have_text(remote_key)
        expect(tree.locator(f".kv-node[data-key='{remote_key}']")).to_have_class(
            re.compile(r"\bselected\b")
        )

        # --- a second tab has a tree of its own; drag it before the first ---
        _add_tab(page, remote_url, "remote-b", test_first=False)
        expect(tree.locator(".kv-node[data-key='/']")).to_have_count(2)
        expect(tree.locator(f".kv-node[data-key='{remote_base}']")).to_have_count(0)
        expect(page.locator("#kv-path")).to_have_text("Select a key")
        with page.expect_response(lambda r: r.url.endswith("/api/kv/tabs/order")) as order:
            _tab(page, "remote-b").drag_to(_tab(page, "remote-a"), target_position={"x": 4, "y": 8})
        assert order.value.status == 200
        names = strip.locator(".kv-tab-name").all_inner_texts()
        assert names == ["default", "remote-b", "remote-a"]
        assert _listed(page, server) == ["default", "remote-b", "remote-a"]
        # nothing goes before the default tab
        with page.expect_response(lambda r: r.url.endswith("/api/kv/tabs/order")) as order:
            _tab(page, "remote-a").drag_to(strip.first, target_position={"x": 2, "y": 8})
        assert _listed(page, server) == ["default", "remote-a", "remote-b"]

        _tab(page, "remote-a").click()
        expect(page.locator("#kv-path")).to_have_text(remote_key)
        page.wait_for_function("() => ace.edit('kv-editor').getValue() === 'edited-remotely'")
        save_screenshot(page, "kv-tabs.png", tmp_path)

        # --- close with confirmation: cancel keeps it, confirm deletes it ---
        _tab(page, "remote-a").locator(".kv-tab-close").click()
        expect(page.locator("#confirm-text")).to_contain_text('"remote-a"')
        page.click("#confirm-cancel")
        expect(strip).to_have_count(3)
        _tab(page, "remote-a").locator(".kv-tab-close").click()
        page.click("#confirm-ok")
        expect(strip).to_have_count(2)
        expect(_tab(page, "remote-a")).to_have_count(0)
        expect(page.locator("#kv-tab-list .kv-tab.active")).to_have_attribute(
            "data-tab-id", "default"
        )
        expect(page.locator("#kv-path")).to_have_text(default_key)
        assert _listed(page, server) == ["default", "remote-b"]

        page.reload()
        expect(strip).to_have_count(2)
        assert strip.locator(".kv-tab-name").all_inner_texts() == ["default", "remote-b"]
        assert page_errors == []
    finally:
        default.kv(lambda c: c.delete_prefix(f"{default_base}/".encode()))


def test_a_tab_whose_cluster_stopped_shows_the_warning_and_recovers(
    dashboard_server, etcd_cluster_factory, page, page_errors
):
    remote = etcd_cluster_factory(size=1, point_settings=False)
    member = remote.members[0]
    server = dashboard_server()
    _sign_in_to_kv(page, server)
    _add_tab(page, member.client_url, "fragile", test_first=False)
    expect(page.locator("#kv-info")).to_contain_text("Version")
    fragile = _tab(page, "fragile")
    expect(fragile.locator(".kv-tab-warn")).to_have_count(0)

    remote.kill_member(member)
    page.click("#kv-reload")  # the failed connect marks the tab `error` at once
    warn = fragile.locator(".kv-tab-warn")
    expect(warn).to_have_text("⚠", timeout=40_000)
    expect(fragile).to_have_attribute("title", re.compile(r"unreachable: "))
    expect(page.locator("#toasts")).to_contain_text("Cannot connect to fragile")
    expect(page.locator("#kv-info-reenter")).to_be_visible()

    warn.click()
    dialog = page.locator("#kv-cred-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#kv-cred-reason")).to_contain_text("unreachable")
    page.click("#kv-cred-test")
    expect(page.locator("#kv-cred-result")).to_contain_text("unreachable", timeout=20_000)
    page.click("#kv-cred-ok")
    expect(page.locator("#kv-cred-result")).to_contain_text("Not saved", timeout=20_000)
    page.click("#kv-cred-cancel")
    expect(dialog).to_be_hidden()

    remote.start_member(member)
    remote.wait_healthy([member])
    page.click("#kv-reload")
    expect(page.locator("#kv-info")).to_contain_text("Version", timeout=30_000)
    expect(warn).to_have_count(0, timeout=20_000)
    assert page_errors == []
