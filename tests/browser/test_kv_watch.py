"""The KV view's live watch (issue 22, item 6): the Watch panel tails a prefix as etcd changes,
puts and deletes and binary values included, and says so when the stream is refused."""

import time
import uuid

import httpx
from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from kvmanager.tests.test_live_watch import Sse
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

        # Stopped, then refused: the user's four watches are open elsewhere (429), and the
        # panel says the stream could not be had instead of retrying behind the user's back.
        page.click("#kv-watch-stop")
        expect(page.locator("#kv-watch-status")).to_have_text("Stopped.")
        token = httpx.post(
            f"{server.url}/api/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()["session_token"]
        others = []
        deadline = time.monotonic() + 15
        while len(others) < 4:  # the page's closed stream frees its place once noticed
            stream = Sse(
                server.url,
                f"/api/kv/v3/watch?prefix={base}",
                {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            )
            if stream.status == 200:
                others.append(stream)
            else:
                stream.close()
                assert time.monotonic() < deadline, "the page's stream never freed its place"
                time.sleep(0.3)
        page.click("#kv-watch-start")
        expect(page.locator("#kv-watch-status")).to_have_text(
            "Watch ended: the connection was lost or refused"
        )
        expect(page.locator("#kv-watch-start")).to_be_visible()
        for stream in others:
            stream.close()
    finally:
        gateway.kv(lambda client: client.delete_prefix(base))
    assert page_errors == []
