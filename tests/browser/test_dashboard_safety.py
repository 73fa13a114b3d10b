"""What the pages must never do: run injected markup, expose ops when disabled, or disagree
with the server about panel ids and metric names."""

import re
import uuid
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from monitoring.panels import CARD_METRICS, CARDS, PANEL_CHARTS, PANELS, dashboard_registry
from monitoring.tests.expected_keys import stored_key_names
from tests.browser.conftest import expect_dashboard_ready, open_slash_dir, sign_in

PAYLOAD = '<img src=x onerror="window.__xss=1">'
PASSWORD = "safety-pass-1"


def _sign_in(page, server) -> None:
    sign_in(page, server, PASSWORD)


def _images(page, selector: str) -> int:
    return page.locator(f"{selector} img").count()


def test_markup_in_usernames_keys_and_audit_fields_is_shown_as_text(
    dashboard_server, page, page_errors
):
    server = dashboard_server()
    page.goto(server.url + "/login")
    page.fill("#username", PAYLOAD)
    page.fill("#password", "whatever-1")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_be_visible()
    page.goto(f"{server.url}/change-password?username={quote(PAYLOAD)}")
    expect(page.locator("#cp-username")).to_have_value(PAYLOAD)
    assert _images(page, "body") == 0

    _sign_in(page, server)
    base = f"/xss-{uuid.uuid4().hex[:8]}"
    cluster_gateway().kv(lambda c: c.put(f"{base}/{PAYLOAD}".encode(), PAYLOAD.encode()))
    page.click("#view-kv")
    tree = page.locator("#kv-tree")
    open_slash_dir(tree)
    tree.locator(f".kv-node[data-key='{base}']").click()
    node = tree.locator(".kv-node.leaf", has_text=PAYLOAD)
    expect(node).to_have_count(1)
    node.click()
    expect(page.locator("#kv-path")).to_have_text(f"{base}/{PAYLOAD}")
    # The path shows at once, the value once the get answers.
    expect(page.locator("#kv-editor")).to_be_visible()
    assert page.evaluate("() => ace.edit('kv-editor').getValue()") == PAYLOAD
    # a key created through the UI lands in the audit log with the markup as its target
    page.click("#kv-new")
    page.fill("#kv-create-name", f"{base}/x{PAYLOAD}")
    page.click("#kv-create-ok")
    expect(page.locator("#toasts")).to_contain_text("Created")
    assert _images(page, "#kv-tree") == 0 and _images(page, "#kv-detail") == 0

    page.click("#view-ops")
    expect(page.locator("#audit-table tbody")).to_contain_text(f"x{PAYLOAD}")
    assert _images(page, "#audit-table") == 0 and _images(page, "#toasts") == 0
    assert page.evaluate("() => window.__xss") is None
    assert page_errors == []
    cluster_gateway().kv(lambda c: c.delete_prefix(f"{base}/".encode()))


def test_ops_view_is_absent_when_ops_are_disabled(dashboard_server, page):
    server = dashboard_server(OPS_ENABLED="false")
    _sign_in(page, server)
    expect(page.locator("#view-ops")).to_have_count(0)
    expect(page.locator("#ops-view")).to_have_count(0)
    page.goto(server.url + "/ops")
    expect(page).to_have_url(server.url + "/")
    expect_dashboard_ready(page)
    expect(page.locator("#monitor-view")).to_be_visible()


def test_unknown_pages_are_html_and_unknown_api_paths_stay_json(dashboard_server, page):
    server = dashboard_server()
    answer = page.request.get(server.url + "/no-such-page")
    assert answer.status == 404 and "text/html" in answer.headers["content-type"]
    api = page.request.get(server.url + "/api/no-such-thing")
    assert api.status == 404 and api.json() == {"error": "not found"}
    # pages carry the strict CSP: no inline script is allowed to run
    login = page.request.get(server.url + "/login")
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert not re.search(r"<script>(?!\s*</script>)", login.text())


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p.id)
def test_every_panel_asks_only_for_stored_metric_names(panel):
    stored = set(stored_key_names())
    for name in (row[0] for row in PANEL_CHARTS[panel.id]["series"]):
        # per-version client request rates are named after the label etcd reports
        assert name in stored or re.fullmatch(r"etcd_server_client_requests_\w+_rate", name), name


def test_registry_covers_every_panel_and_card_once():
    registry = dashboard_registry()
    assert [p["id"] for p in registry["panels"]] == [p.id for p in PANELS]
    assert set(PANEL_CHARTS) == {p.id for p in PANELS}
    assert [c["id"] for c in registry["cards"]] == [c.id for c in CARDS]
    assert set(CARD_METRICS) == {c.id for c in CARDS}
    assert all(p["series"] and p["unit"] for p in registry["panels"])
