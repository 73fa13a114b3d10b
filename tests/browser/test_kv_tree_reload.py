"""The KV tree reloads a level after a create; what the user opened meanwhile stays open.

The race behind a once-flaky walk (test_dashboard_walk): the create's reload of the root
answered late, after the test had opened "/" and below, and replaced them with folded rows, so
the next click waited for a row that was gone. Here the root's listing is held back in the page
(its fetch answered 2.5 s late) to make that order certain."""

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from tests.browser.conftest import open_slash_dir, sign_in

PASSWORD = "tree-reload-pass-1"
# Delays the answer of the root's listing once `window.holdRootList` is set; counts them.
HOLD_ROOT_LIST = """
const realFetch = window.fetch;
window.rootListsAnswered = 0;
window.fetch = async (url, init) => {
  const answer = await realFetch(url, init);
  if (window.holdRootList && String(url).includes("/api/kv/v3/list?prefix=&")) {
    await new Promise((done) => setTimeout(done, 2500));
    window.rootListsAnswered += 1;
  }
  return answer;
};
"""


def test_a_reload_after_a_create_keeps_the_directories_opened_meanwhile(
    dashboard_server, page, page_errors, kv_prefix
):
    page.add_init_script(HOLD_ROOT_LIST)
    top, mine = kv_prefix.rstrip("/").rsplit("/", 1)[0], kv_prefix.rstrip("/")
    cluster_gateway().put(f"{kv_prefix}seed".encode(), b"v", ttl=None)
    server = dashboard_server()
    sign_in(page, server, PASSWORD)
    page.click("#view-kv")
    tree = page.locator("#kv-tree")
    expect(tree.locator(".kv-node[data-key='/']")).to_have_count(2)

    page.evaluate("() => { window.holdRootList = true; }")
    page.click("#kv-new")
    page.fill("#kv-create-name", f"{kv_prefix}app/config.json")
    page.fill("#kv-create-value", "{}")
    page.click("#kv-create-ok")
    expect(page.locator("#kv-create-dialog")).to_be_hidden()
    # The root's reload is on its way: open "/" and below before it answers.
    open_slash_dir(tree)
    tree.locator(f".kv-node[data-key='{top}']").click()
    tree.locator(f".kv-node[data-key='{mine}']").click()
    expect(tree.locator(f".kv-node[data-key='{kv_prefix}seed']")).to_be_visible()
    assert page.evaluate("() => window.rootListsAnswered") == 0, "opened before the reload"

    page.wait_for_function("() => window.rootListsAnswered === 1")
    # Still open after the reload, and listed afresh: the new key's directory is there.
    expect(tree.locator(f".kv-node[data-key='{kv_prefix}seed']")).to_be_visible()
    expect(tree.locator(f".kv-node[data-key='{mine}/app']")).to_be_visible()
    expect(tree.locator(f".kv-node[data-key='{mine}']")).to_have_attribute("aria-expanded", "true")
    tree.locator(f".kv-node[data-key='{mine}/app']").click()
    expect(tree.locator(f".kv-node[data-key='{kv_prefix}app/config.json']")).to_be_visible()
    assert page_errors == []
