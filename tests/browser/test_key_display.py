"""Bidi and other control characters in keys are shown visibly escaped (issue 15, low):
`/rt/\u202eevil` used to display as "/rt/live" in the tree, the key path and the audit table."""

import uuid

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from tests.browser.conftest import open_slash_dir, sign_in

PASSWORD = "display-pass-1"
RLO = "\u202e"


def test_control_characters_in_keys_are_shown_escaped(dashboard_server, page, page_errors):
    server = dashboard_server()
    sign_in(page, server, PASSWORD)
    base = f"/rt-{uuid.uuid4().hex[:8]}"
    cluster_gateway().kv(lambda c: c.put(f"{base}/{RLO}evil".encode(), b"v"))
    cluster_gateway().kv(lambda c: c.put(f"{base}/bell\u0007\u200bend".encode(), b"v"))
    try:
        page.click("#view-kv")
        tree = page.locator("#kv-tree")
        open_slash_dir(tree)
        tree.locator(f".kv-node[data-key='{base}']").click()

        evil = tree.locator(".kv-node.leaf .seg-label", has_text="evil")
        expect(evil).to_have_text("\\u202eevil")
        expect(tree.locator(".kv-node.leaf .seg-label", has_text="bell")).to_have_text(
            "bell\\u0007\\u200bend"
        )
        assert RLO not in tree.inner_text()
        evil.click()
        expect(page.locator("#kv-path")).to_have_text(f"{base}/\\u202eevil")

        # created through the UI, so that it lands in the audit table
        page.click("#kv-new")
        page.fill("#kv-create-name", f"x{RLO}gnp.exe")  # under the selected key's dir
        page.click("#kv-create-ok")
        expect(page.locator("#toasts")).to_contain_text(f"Created {base}/x\\u202egnp.exe")

        page.click("#view-ops")
        table = page.locator("#audit-table tbody")
        expect(table).to_contain_text(f"{base}/x\\u202egnp.exe")
        assert RLO not in table.inner_text()
        assert page_errors == []
    finally:
        cluster_gateway().kv(lambda c: c.delete_prefix(f"{base}/".encode()))
