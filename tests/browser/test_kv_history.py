"""A key's history, diff and revert, and the recently deleted keys with restore, in the
dashboard (issue 22, items 3-5): runmonitor's own journal process follows the session cluster;
etcd's state is checked after every step; axe and a 390 px phone viewport on both dialogs."""

import time
import uuid

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from tests.browser.axe import Findings, install
from tests.browser.conftest import expect_dashboard_ready, open_slash_dir, save_screenshot, sign_in

PASSWORD = "history-pass-1"


def _put(key: str, value: str) -> int:
    return cluster_gateway().put(key.encode(), value.encode(), ttl=None)


def _value(key: str) -> bytes | None:
    kv = cluster_gateway().get(key.encode())
    return None if kv is None else kv.value


def _eventually(check, what: str, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _journal_following(page, server, base: str) -> None:
    """Wait until the server's journal process stores changes. It starts with runmonitor, at
    etcd's revision then: a change from before is only etcd's, so each try writes anew."""
    probe = f"{base}/journal-probe"
    seen = []

    def journaled():
        _put(probe, "probe")
        time.sleep(0.5)
        answer = page.request.get(server.url + "/api/kv/v3/history", params={"key": probe})
        seen.append((answer.status, answer.text()[:300]))
        revisions = answer.json().get("revisions", []) if answer.ok else []
        return revisions and revisions[0]["source"] == "journal"

    try:
        _eventually(journaled, "the server's journal to store a change")
    except AssertionError:
        log = server.log.read_text()[-3000:]
        raise AssertionError(f"answers {seen[-3:]}; log: {log}") from None


def _open_key(page, base: str, key: str, value: str) -> None:
    tree = page.locator("#kv-tree")
    if not tree.locator(f".kv-node[data-key='{key}']").count():
        open_slash_dir(tree)
        tree.locator(f".kv-node[data-key='{base}']").click()
    tree.locator(f".kv-node[data-key='{key}']").click()
    expect(page.locator("#kv-editor")).to_be_visible()
    page.wait_for_function(f"() => ace.edit('kv-editor').getValue() === {value!r}")


def _type(page, text: str) -> None:
    page.click("#kv-editor .ace_content")
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)


def test_history_shows_who_changed_what_diffs_two_revisions_and_reverts(
    dashboard_server, page, page_errors, tmp_path
):
    server = dashboard_server()
    base = f"/history-{uuid.uuid4().hex[:8]}"
    key = f"{base}/app.yaml"
    install(page)
    sign_in(page, server, PASSWORD)
    _journal_following(page, server, base)
    outside = _put(key, "replicas: 1\nimage: web:1\n")  # etcdctl-like: not through the product
    page.goto(server.url + "/kv")
    expect_dashboard_ready(page)
    _open_key(page, base, key, "replicas: 1\nimage: web:1\n")
    ours_text = "replicas: 3\nimage: web:1\n"
    _type(page, ours_text)
    page.click("#kv-save")
    expect(page.locator("#toasts")).to_contain_text(f"Saved {key}")
    _eventually(lambda: _value(key) == ours_text.encode(), "the save")
    ours = cluster_gateway().get(key.encode()).mod_revision
    page.wait_for_function(f"() => ace.edit('kv-editor').getValue() === {ours_text!r}")

    page.click("#kv-history")
    dialog = page.locator("#kv-history-dialog")
    expect(dialog).to_be_visible()
    rows = page.locator("#kv-history-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(str(ours))
    expect(rows.nth(0)).to_contain_text("admin")
    expect(rows.nth(0)).to_contain_text("current")
    expect(rows.nth(1)).to_contain_text(str(outside))
    expect(rows.nth(1)).to_contain_text("outside etcdmonitor")
    # The diff of the two newest revisions, shown when the dialog opens.
    diff = page.locator("#kv-history-diff")
    expect(diff.locator(".diff-del")).to_have_text(["- replicas: 1"])
    expect(diff.locator(".diff-add")).to_have_text(["+ replicas: 3"])
    # Any two revisions: the same one twice is no difference.
    page.select_option("#kv-diff-from", str(ours))
    expect(diff).to_have_text("(the two revisions hold the same value)")
    page.select_option("#kv-diff-from", str(outside))
    found = Findings()
    found.check(page, "1440/history", "#kv-history-dialog")
    save_screenshot(page, "kv-history.png", tmp_path)

    # Revert to the outside revision: a compare-and-swap on the revision the editor loaded.
    page.get_by_role("button", name=f"Revert to revision {outside}").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.click("#confirm-ok")
    expect(page.locator("#toasts")).to_contain_text(f"Reverted {key} to revision {outside}")
    _eventually(lambda: _value(key) == b"replicas: 1\nimage: web:1\n", "the revert")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("admin")
    reverted = cluster_gateway().get(key.encode()).mod_revision
    expect(rows.nth(0)).to_contain_text(str(reverted))

    # Someone changes the key while the dialog is open: the revert is refused, nothing written.
    _put(key, "replicas: 7\n")
    page.get_by_role("button", name=f"Revert to revision {ours}").click()
    page.click("#confirm-ok")
    expect(page.locator("#toasts")).to_contain_text("Not reverted: the key changed")
    assert _value(key) == b"replicas: 7\n"
    expect(rows).to_have_count(4)  # reloaded: the other writer's change is listed
    expect(rows.nth(0)).to_contain_text("outside etcdmonitor")

    # A phone: the dialog fits 390 px and passes axe.
    page.set_viewport_size({"width": 390, "height": 844})
    found.check(page, "390/history", "#kv-history-dialog")
    save_screenshot(page, "phone-kv-history.png", tmp_path)
    page.click("#kv-history-close")
    expect(dialog).to_be_hidden()
    found.assert_clean()
    assert page_errors == []


def test_recently_deleted_keys_are_listed_and_restored_unless_back(
    dashboard_server, page, page_errors, tmp_path
):
    server = dashboard_server()
    base = f"/deleted-{uuid.uuid4().hex[:8]}"
    install(page)
    sign_in(page, server, PASSWORD)
    _journal_following(page, server, base)
    _put(f"{base}/gone", '{"keep": true}')
    _put(f"{base}/back", "old value")
    cluster_gateway().delete(f"{base}/gone".encode())
    cluster_gateway().delete(f"{base}/back".encode())

    def listed():
        answer = page.request.get(server.url + "/api/kv/v3/deleted", params={"prefix": base})
        return answer.ok and len(answer.json()["entries"]) == 2

    _eventually(listed, "both deletes in the journal")
    _put(f"{base}/back", "created again")  # before anyone restores it
    page.goto(server.url + "/kv")
    expect_dashboard_ready(page)

    page.click("#kv-deleted-open")
    dialog = page.locator("#kv-deleted-dialog")
    expect(dialog).to_be_visible()
    page.fill("#kv-deleted-prefix", base)
    page.click("#kv-deleted-show")
    rows = page.locator("#kv-deleted-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(f"{base}/back")  # newest first
    expect(rows.nth(1)).to_contain_text(f"{base}/gone")
    expect(rows.nth(1)).to_contain_text('{"keep": true}')
    expect(rows.nth(1)).to_contain_text("outside etcdmonitor")
    found = Findings()
    found.check(page, "1440/deleted", "#kv-deleted-dialog")
    save_screenshot(page, "kv-deleted.png", tmp_path)

    rows.nth(1).get_by_role("button", name=f"Restore {base}/gone", exact=False).click()
    page.click("#confirm-ok")
    expect(page.locator("#toasts")).to_contain_text(f"Restored {base}/gone")
    assert _value(f"{base}/gone") == b'{"keep": true}'
    expect(rows.nth(1).get_by_role("button")).to_be_disabled()

    rows.nth(0).get_by_role("button", name=f"Restore {base}/back", exact=False).click()
    page.click("#confirm-ok")
    expect(page.locator("#toasts")).to_contain_text(f"Not restored: {base}/back exists again")
    assert _value(f"{base}/back") == b"created again"

    page.set_viewport_size({"width": 390, "height": 844})
    found.check(page, "390/deleted", "#kv-deleted-dialog")
    save_screenshot(page, "phone-kv-deleted.png", tmp_path)
    page.click("#kv-deleted-close")
    expect(dialog).to_be_hidden()
    found.assert_clean()
    assert page_errors == []
