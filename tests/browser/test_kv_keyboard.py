"""The KV tree by keyboard only (issue 17, item 5): a WAI-ARIA tree with one tab stop, arrow keys
to move, expand and collapse, Enter to open a key, Delete to delete after a confirmation that
says how many keys a directory delete removes. The etcd state is checked afterwards."""

import uuid

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from tests.browser.conftest import expect_dashboard_ready, sign_in

PASSWORD = "keyboard-pass-1"

FOCUSED_KEY = """() => {
  const row = document.activeElement;
  return row && row.getAttribute('role') === 'treeitem' ? row.dataset.key : null;
}"""
TAB_STOPS = "() => document.querySelectorAll('#kv-tree [role=treeitem][tabindex=\"0\"]').length"


def _focused(page):
    return page.evaluate(FOCUSED_KEY)


def _arrow_down_to(page, key: str, limit: int = 60) -> None:
    """ArrowDown until the focused tree item is `key` (the tree may hold other tests' keys)."""
    for _ in range(limit):
        page.keyboard.press("ArrowDown")
        if _focused(page) == key:
            return
    raise AssertionError(f"ArrowDown never reached {key!r}; focus is on {_focused(page)!r}")


def _item(page, key: str):
    return page.locator(f"#kv-tree [role=treeitem][data-key='{key}']").last


def _expand(page, key: str) -> None:
    assert _focused(page) == key
    page.keyboard.press("ArrowRight")
    expect(_item(page, key)).to_have_attribute("aria-expanded", "true")
    expect(
        _item(page, key)
        .locator("xpath=following-sibling::ul[@role='group']//*[@role='treeitem']")
        .first
    ).to_be_visible()


def test_the_kv_tree_works_with_the_keyboard_alone(dashboard_server, page, page_errors):
    server = dashboard_server()
    base = f"/kbd-{uuid.uuid4().hex[:8]}"
    gateway = cluster_gateway()
    for key in ("dir/a", "dir/b", "dir/sub/c", "dir/sub/d", "keep"):
        gateway.kv(lambda c, key=key: c.put(f"{base}/{key}".encode(), f"value of {key}".encode()))
    sign_in(page, server, PASSWORD)
    page.goto(server.url + "/kv")
    expect_dashboard_ready(page)
    tree = page.locator("#kv-tree [role=tree]")
    expect(tree).to_have_attribute("aria-label", "Keys")
    expect(page.locator("#kv-tree .kv-node[data-key='/']")).to_have_count(2)

    # One tab stop: Tab from the toolbar's last control lands on the tree, the next Tab leaves it.
    page.focus("#kv-watch")
    page.keyboard.press("Tab")
    assert _focused(page) == "/"  # the root
    assert page.evaluate(TAB_STOPS) == 1

    _arrow_down_to(page, "/")  # the "/" directory under the root
    _expand(page, "/")
    page.keyboard.press("ArrowRight")  # into its first child
    assert _focused(page) is not None
    _arrow_down_to(page, base)
    _expand(page, base)
    page.keyboard.press("ArrowRight")
    assert _focused(page) == f"{base}/dir"  # "dir" sorts before "keep"
    _expand(page, f"{base}/dir")
    expect(_item(page, f"{base}/dir")).to_have_accessible_name("dir (4)")
    expect(_item(page, f"{base}/dir/a")).to_have_attribute(
        "aria-level", "5"
    )  # root, /, base, dir, a

    # Left collapses an open directory, Left again goes to the parent, Right re-expands.
    page.keyboard.press("ArrowLeft")
    expect(_item(page, f"{base}/dir")).to_have_attribute("aria-expanded", "false")
    expect(page.locator(f"#kv-tree .kv-node[data-key='{base}/dir/a']")).to_be_hidden()
    page.keyboard.press("ArrowLeft")
    assert _focused(page) == base
    page.keyboard.press("ArrowDown")
    _expand(page, f"{base}/dir")

    # Enter opens a key.
    _arrow_down_to(page, f"{base}/dir/a")
    page.keyboard.press("Enter")
    expect(page.locator("#kv-path")).to_have_text(f"{base}/dir/a")
    expect(page.locator("#kv-editor")).to_be_visible()
    value = page.evaluate("() => ace.edit('kv-editor').getValue()")
    assert value == "value of dir/a"
    expect(_item(page, f"{base}/dir/a")).to_have_attribute("aria-selected", "true")
    assert _focused(page) == f"{base}/dir/a"  # opening does not steal focus from the tree
    assert page.evaluate(TAB_STOPS) == 1

    # Delete asks first; Escape keeps the key.
    _arrow_down_to(page, f"{base}/dir/b")
    page.keyboard.press("Delete")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_have_text(f'Delete the key "{base}/dir/b"?')
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.request.get(server.url + "/api/kv/v3/get", params={"key": f"{base}/dir/b"}).ok
    assert _focused(page) == f"{base}/dir/b"

    # Delete, then confirm with the keyboard: focus starts on Cancel, Tab reaches Delete.
    page.keyboard.press("Delete")
    expect(dialog).to_be_visible()
    assert page.evaluate("() => document.activeElement.id") == "confirm-cancel"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "confirm-ok"
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#kv-tree .kv-node[data-key='{base}/dir/b']")).to_have_count(0)
    gone = page.request.get(server.url + "/api/kv/v3/get", params={"key": f"{base}/dir/b"})
    assert gone.status == 404
    assert _focused(page) == f"{base}/dir"  # focus is back on the parent, not lost

    # A directory: the confirmation counts the keys it removes (a, sub/c, sub/d).
    page.keyboard.press("Delete")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_have_text(
        f'Delete the directory "{base}/dir" and ALL keys under it: 3 keys will be removed. '
        "This cannot be undone."
    )
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#kv-tree .kv-node[data-key='{base}/dir']")).to_have_count(0)
    assert _focused(page) == base

    left = page.request.get(server.url + "/api/kv/v3/count", params={"key": base}).json()
    assert left["count"] == 1
    kept = page.request.get(server.url + "/api/kv/v3/get", params={"key": f"{base}/keep"})
    assert kept.ok and kept.json()["node"]["value"] == "value of keep"
    keys = gateway.kv(lambda c: [m.key.decode() for _, m in c.get_prefix(f"{base}/".encode())])
    assert keys == [f"{base}/keep"]
    assert page.evaluate(TAB_STOPS) == 1
    assert page_errors == []
