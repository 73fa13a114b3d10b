"""The KV view's live watch (issue 22, item 6): the Watch panel tails a prefix as etcd changes,
puts and deletes and binary values included, and says why when the server ends the stream."""

import uuid

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from tests.browser.axe import axe_violations, install
from tests.browser.conftest import expect_dashboard_ready, save_screenshot, sign_in

PASSWORD = "live-watch-pass-1"


def test_the_watch_panel_tails_a_prefix_live(dashboard_server, page, page_errors, tmp_path):
    server = dashboard_server()
    base = f"/watch-{uuid.uuid4().hex[:8]}/"
    gateway = cluster_gateway()
    install(page)
    sign_in(page, server, PASSWORD)
    page.goto(server.url + "/kv")
    expect_dashboard_ready(page)

    page.click("#kv-watch")
    expect(page.locator("#kv-watch-panel")).to_be_visible()
    page.fill("#kv-watch-prefix", base)
    page.click("#kv-watch-start")
    expect(page.locator("#kv-watch-status")).to_contain_text(f"Watching {base}")
    expect(page.locator("#kv-watch-stop")).to_be_visible()

    try:
        gateway.put(f"{base}app".encode(), b"replicas=3", ttl=None)
        gateway.put(f"{base}blob".encode(), b"\xff\xfe\x00\x01", ttl=None)
        gateway.put(b"/not-watched-" + uuid.uuid4().hex.encode(), b"x", ttl=None)
        gateway.delete(f"{base}app".encode())
        rows = page.locator("#kv-watch-events li")
        expect(rows).to_have_count(3)
        # Newest first: the delete, the binary put, the first put.
        expect(rows.nth(0)).to_contain_text("delete")
        expect(rows.nth(0)).to_contain_text(f"{base}app")
        expect(rows.nth(1)).to_contain_text(f"{base}blob")
        expect(rows.nth(1)).to_contain_text("binary · 4 bytes")
        expect(rows.nth(2)).to_contain_text("put")
        expect(rows.nth(2)).to_contain_text("replicas=3")
        revisions = [int(r) for r in rows.evaluate_all("rs => rs.map(r => r.dataset.revision)")]
        assert revisions == sorted(revisions, reverse=True)
        serious = [
            v
            for v in axe_violations(page, "#kv-watch-panel")
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == []
        save_screenshot(page, "kv-watch.png", tmp_path)

        # Logging out elsewhere (the same session) ends the stream, and the panel says why.
        page.evaluate(
            "() => fetch('/api/auth/logout', {method: 'POST', headers: {'X-CSRFToken':"
            " document.cookie.match(/csrftoken=([^;]+)/)[1]}})"
        )
        expect(page.locator("#kv-watch-status")).to_contain_text(
            "Watch ended: the session ended", timeout=10_000
        )
        expect(page.locator("#kv-watch-start")).to_be_visible()
    finally:
        gateway.kv(lambda client: client.delete_prefix(base))
    assert page_errors == []
