"""Roles in a real browser (issue 21): a viewer sees no write control and the API refuses
their writes (403, audited); an operator writes keys but sees no admin operations; an admin's
destructive actions (compact, disarm, defragmenting the leader, deleting a directory of more
than 100 keys) wait for the cluster's name to be typed."""

import re
import uuid

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from tests.browser.conftest import bearer, expect_dashboard_ready, open_slash_dir, sign_in

ADMIN_PASSWORD = "roles-admin-pass-1"
FIRST = "quiet-meadow-42"
CHOSEN = "amber-harbor-77"
CLUSTER_NAME = "default"  # ETCD_CLUSTER_NAME of the test servers


def _add_user(api, server, admin: dict, username: str, roles: dict) -> None:
    """Created by the admin through the API, then the forced first change done."""
    created = api.post(
        server.url + "/api/users",
        data={"username": username, "password": FIRST, "roles": roles},
        headers=admin,
    )
    assert created.status == 201, created.text()
    changed = api.post(
        server.url + "/api/auth/change-password",
        data={"username": username, "old_password": FIRST, "new_password": CHOSEN},
    )
    assert changed.ok, changed.text()


def _sign_in_as(page, server, username: str) -> None:
    page.click("#logout-btn")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.fill("#username", username)
    page.fill("#password", CHOSEN)
    page.click("#login-submit")
    expect(page).to_have_url(server.url + "/")
    expect_dashboard_ready(page)


def _open_key(page, base: str, leaf: str) -> None:
    page.click("#view-kv")
    tree = page.locator("#kv-tree")
    open_slash_dir(tree)
    tree.locator(f".kv-node[data-key='{base}']").click()
    tree.locator(f".kv-node[data-key='{base}/{leaf}']").click()
    expect(page.locator("#kv-path")).to_have_text(f"{base}/{leaf}")
    expect(page.locator("#kv-editor-bar")).to_be_visible()


def test_a_viewer_sees_no_write_control_and_the_api_refuses_them(
    dashboard_server, page, page_errors, api
):
    server = dashboard_server()
    base = f"/roles-{uuid.uuid4().hex[:8]}"
    cluster_gateway().kv(lambda c: c.put(f"{base}/k".encode(), b"value"))
    try:
        sign_in(page, server, ADMIN_PASSWORD)
        admin = bearer(api, server, "admin", ADMIN_PASSWORD)
        _add_user(api, server, admin, "vera", {"*": "viewer"})
        _sign_in_as(page, server, "vera")

        expect(page.locator("#view-ops")).to_be_hidden()
        expect(page.locator("#view-users")).to_have_count(0)
        _open_key(page, base, "k")
        expect(page.locator("#kv-new")).to_be_hidden()
        expect(page.locator("#kv-save")).to_be_hidden()
        expect(page.locator("#kv-tab-add")).to_be_hidden()
        page.locator(f"#kv-tree .kv-node[data-key='{base}/k']").click(button="right")
        expect(page.locator("#kv-menu")).to_be_hidden()
        page.keyboard.press("Delete")  # the tree's delete key offers nothing either
        expect(page.locator("#confirm-dialog")).to_be_hidden()
        page.goto(server.url + "/ops")  # the view is not served to them: the monitor instead
        expect_dashboard_ready(page)
        expect(page).to_have_url(server.url + "/")

        vera = bearer(api, server, "vera", CHOSEN)
        put = api.put(
            server.url + "/api/kv/v3/put", data={"key": f"{base}/k", "value": "x"}, headers=vera
        )
        compact = api.post(server.url + "/api/ops/compact", data={"retain_count": 1}, headers=vera)
        read = api.get(server.url + f"/api/kv/v3/get?key={base}/k", headers=vera)

        message = "permission denied: put needs the operator role on cluster default"
        assert (put.status, put.json()) == (
            403,
            {"error": message, "code": "permission_denied", "message": message},
        )
        assert (compact.status, compact.json()) == (
            403,
            {"error": "permission denied: compact needs the admin role on cluster default"},
        )
        assert read.status == 200
        assert cluster_gateway().kv(lambda c: c.get(f"{base}/k".encode()))[0] == b"value"

        # The admin finds both refusals in the audit log, under the attempted operations.
        entries = api.get(
            server.url + "/api/ops/audit-logs?username=vera&success=false", headers=admin
        ).json()["entries"]
        assert {(e["operation"], e["success"]) for e in entries} >= {
            ("put", False),
            ("compact", False),
        }
        assert all("permission denied" in e["result"] for e in entries)
        assert page_errors == []
    finally:
        cluster_gateway().kv(lambda c: c.delete_prefix(f"{base}/".encode()))


def test_an_operator_writes_keys_but_is_offered_no_admin_operation(
    dashboard_server, page, page_errors, api
):
    server = dashboard_server()
    base = f"/roles-{uuid.uuid4().hex[:8]}"
    cluster_gateway().kv(lambda c: c.put(f"{base}/k".encode(), b"value"))
    try:
        sign_in(page, server, ADMIN_PASSWORD)
        admin = bearer(api, server, "admin", ADMIN_PASSWORD)
        _add_user(api, server, admin, "otto", {"*": "operator"})
        _sign_in_as(page, server, "otto")

        _open_key(page, base, "k")
        expect(page.locator("#kv-save")).to_be_visible()
        page.click("#kv-new")
        page.fill("#kv-create-name", "made-by-otto")
        page.click("#kv-create-ok")
        expect(page.locator("#toasts")).to_contain_text(f"Created {base}/made-by-otto")
        made = cluster_gateway().kv(lambda c: c.get(f"{base}/made-by-otto".encode()))
        assert made[0] == b""

        page.click("#view-ops")
        menu = page.locator("#ops-menu button:visible")
        expect(menu).to_have_text(["Audit Log", "Snapshot", "Alarms", "HashKV Check"])
        page.click("#ops-menu button[data-ops='hashkv']")
        page.click("#hashkv-run")
        expect(page.locator("#hashkv-banner")).to_contain_text("consistent")

        otto = bearer(api, server, "otto", CHOSEN)
        defrag = api.post(server.url + "/api/ops/defragment", data={"member_id": "1"}, headers=otto)
        assert defrag.status == 403
        assert defrag.json()["error"].endswith("defragment needs the admin role on cluster default")
        assert page_errors == []
    finally:
        cluster_gateway().kv(lambda c: c.delete_prefix(f"{base}/".encode()))


def _typed_guard(page, ok_label: str) -> None:
    """The dialog's OK stays disabled until the cluster's name is typed exactly."""
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-typed-name")).to_have_text(CLUSTER_NAME)
    ok = page.locator("#confirm-ok")
    expect(ok).to_have_text(ok_label)
    expect(ok).to_be_disabled()
    page.fill("#confirm-typed", CLUSTER_NAME + "x")
    expect(ok).to_be_disabled()
    page.fill("#confirm-typed", CLUSTER_NAME)
    expect(ok).to_be_enabled()


def test_destructive_actions_wait_for_the_clusters_name(dashboard_server, page, page_errors):
    server = dashboard_server()
    base = f"/roles-{uuid.uuid4().hex[:8]}"
    cluster_gateway().kv(lambda c: [c.put(f"{base}/big/{i:03}".encode(), b"v") for i in range(101)])
    cluster_gateway().kv(lambda c: c.put(f"{base}/small/a".encode(), b"v"))
    try:
        sign_in(page, server, ADMIN_PASSWORD)

        # Compact: typed, then cancelled (the shared test cluster keeps its history).
        page.click("#view-ops")
        page.click("#ops-menu button[data-ops='compact']")
        page.click("#compact-run")
        _typed_guard(page, "Compact")
        page.click("#confirm-cancel")
        expect(page.locator("#confirm-dialog")).to_be_hidden()
        expect(page.locator("#compact-result")).to_be_hidden()

        # Defragment: a follower alone is only confirmed; with the leader, the name is typed.
        page.click("#ops-menu button[data-ops='defrag']")
        rows = page.locator("#defrag-list li")
        expect(rows).to_have_count(3)
        follower = rows.filter(has=page.locator(".role.follower")).first
        leader = rows.filter(has=page.locator(".role.leader"))
        follower.locator("input").check()
        page.click("#defrag-run")
        expect(page.locator("#confirm-dialog")).to_be_visible()
        expect(page.locator("#confirm-typed-wrap")).to_be_hidden()
        page.click("#confirm-cancel")
        leader.locator("input").check()
        page.click("#defrag-run")
        _typed_guard(page, "Defragment")
        page.click("#confirm-cancel")
        expect(page.locator("#defrag-run")).to_have_text("Defragment selected")

        # A small directory: asked, but no name to type.
        page.click("#view-kv")
        tree = page.locator("#kv-tree")
        open_slash_dir(tree)
        tree.locator(f".kv-node[data-key='{base}']").click()
        tree.locator(f".kv-node[data-key='{base}/small']").click(button="right")
        page.click("#kv-menu-delete")
        expect(page.locator("#confirm-text")).to_contain_text("1 key will be removed")
        expect(page.locator("#confirm-typed-wrap")).to_be_hidden()
        page.click("#confirm-cancel")

        # 101 keys: the name typed, then deleted for real.
        tree.locator(f".kv-node[data-key='{base}/big']").click(button="right")
        page.click("#kv-menu-delete")
        expect(page.locator("#confirm-text")).to_contain_text("101 keys will be removed")
        _typed_guard(page, "Delete")
        page.click("#confirm-ok")
        expect(page.locator("#toasts")).to_contain_text(f"Deleted {base}/big")
        left = cluster_gateway().kv(lambda c: list(c.get_prefix(f"{base}/big/".encode())))
        assert left == []
        assert page_errors == []
    finally:
        cluster_gateway().kv(lambda c: c.delete_prefix(f"{base}/".encode()))
