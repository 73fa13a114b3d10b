"""Safe edits in the dashboard (issue 22, item 1): a save carries the loaded mod_revision; a key
changed or deleted meanwhile opens a diff with overwrite / reload; an invalid JSON or YAML
document is refused unless saved as text. The etcd state is checked after every step."""

import time
import uuid

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from tests.browser.axe import axe_violations, install
from tests.browser.conftest import expect_dashboard_ready, open_slash_dir, save_screenshot, sign_in

PASSWORD = "safe-edits-pass-1"
EDITOR_VALUE = "() => ace.edit('kv-editor').getValue()"


def _put(key: str, value: str) -> None:
    cluster_gateway().put(key.encode(), value.encode(), ttl=None)


def _value(key: str) -> bytes | None:
    kv = cluster_gateway().get(key.encode())
    return None if kv is None else kv.value


def _open_key(page, base: str, key: str, value: str) -> None:
    """Open `key` (directly under `base`) in the editor and wait until its value shows."""
    tree = page.locator("#kv-tree")
    if not tree.locator(f".kv-node[data-key='{key}']").count():
        open_slash_dir(tree)
        tree.locator(f".kv-node[data-key='{base}']").click()
    tree.locator(f".kv-node[data-key='{key}']").click()
    # Only once the app built its editor: ace.edit() on a bare element would build another.
    expect(page.locator("#kv-editor")).to_be_visible()
    page.wait_for_function(f"() => ace.edit('kv-editor').getValue() === {value!r}")


def _stored_eventually(key: str, expected: bytes | None) -> None:
    """Wait for the save the page started to reach etcd (a toast may be an earlier save's)."""
    deadline = time.monotonic() + 15
    while _value(key) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _value(key) == expected


def _type(page, text: str) -> None:
    page.click("#kv-editor .ace_content")
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)


def _serious(page, selector: str) -> list:
    return [v for v in axe_violations(page, selector) if v["impact"] in ("serious", "critical")]


def test_a_key_changed_meanwhile_shows_a_diff_and_asks_before_overwriting(
    dashboard_server, page, page_errors, tmp_path
):
    server = dashboard_server()
    base = f"/safe-{uuid.uuid4().hex[:8]}"
    key = f"{base}/app.json"
    loaded = '{\n  "replicas": 1,\n  "image": "web:1"\n}'
    _put(key, loaded)
    install(page)
    sign_in(page, server, PASSWORD)
    page.goto(server.url + "/kv")
    expect_dashboard_ready(page)
    _open_key(page, base, key, loaded)

    theirs = '{\n  "replicas": 1,\n  "image": "web:2"\n}'
    _put(key, theirs)  # another writer saves while this editor is open
    mine = '{\n  "replicas": 3,\n  "image": "web:1"\n}'
    _type(page, mine)
    page.click("#kv-save")

    dialog = page.locator("#kv-conflict-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Someone saved this key after you opened it")
    diff = page.locator("#kv-conflict-diff")
    expect(diff.locator(".diff-del")).to_have_text(['-   "replicas": 1,', '-   "image": "web:2"'])
    expect(diff.locator(".diff-add")).to_have_text(['+   "replicas": 3,', '+   "image": "web:1"'])
    assert _value(key) == theirs.encode()  # nothing was overwritten while asking
    assert _serious(page, "#kv-conflict-dialog") == []
    save_screenshot(page, "kv-conflict.png", tmp_path)

    page.click("#kv-conflict-overwrite")
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text(f"Saved {key}")
    _stored_eventually(key, mine.encode())

    # Reload instead: the editor shows the other writer's value and etcd keeps it.
    page.wait_for_function(f"() => ace.edit('kv-editor').getValue() === {mine!r}")
    _put(key, theirs)
    _type(page, '{"replicas": 9}')
    page.click("#kv-save")
    expect(dialog).to_be_visible()
    page.click("#kv-conflict-reload")
    expect(dialog).to_be_hidden()
    page.wait_for_function(f"() => ace.edit('kv-editor').getValue() === {theirs!r}")
    assert _value(key) == theirs.encode()

    # Deleted meanwhile: the diff is against nothing and overwriting creates the key again.
    cluster_gateway().delete(key.encode())
    _type(page, '{"replicas": 4}')
    page.click("#kv-save")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Someone deleted this key")
    assert _value(key) is None
    page.click("#kv-conflict-overwrite")
    expect(dialog).to_be_hidden()
    _stored_eventually(key, b'{"replicas": 4}')
    assert page_errors == []


def test_invalid_json_and_yaml_are_refused_unless_saved_as_text(
    dashboard_server, page, page_errors, tmp_path
):
    server = dashboard_server()
    base = f"/invalid-{uuid.uuid4().hex[:8]}"
    json_key, yaml_key = f"{base}/settings.json", f"{base}/deploy.yaml"
    _put(json_key, '{"a": 1}')
    _put(yaml_key, "name: web\nreplicas: 2\n")
    install(page)
    sign_in(page, server, PASSWORD)
    page.goto(server.url + "/kv")
    expect_dashboard_ready(page)
    _open_key(page, base, json_key, '{"a": 1}')
    expect(page.locator("#kv-mode")).to_have_value("json")

    _type(page, '{"a": 1,')
    page.click("#kv-save")
    dialog = page.locator("#kv-invalid-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#kv-invalid-title")).to_have_text("Not valid JSON")
    expect(page.locator("#kv-invalid-text")).to_contain_text("It was not saved")
    assert _serious(page, "#kv-invalid-dialog") == []
    save_screenshot(page, "kv-invalid-json.png", tmp_path)
    page.click("#kv-invalid-fix")
    expect(dialog).to_be_hidden()
    assert _value(json_key) == b'{"a": 1}'
    assert page.evaluate(EDITOR_VALUE) == '{"a": 1,'  # the user's text is kept for fixing

    page.click("#kv-save")
    expect(dialog).to_be_visible()
    page.click("#kv-invalid-as-text")
    expect(page.locator("#toasts")).to_contain_text(f"Saved {json_key}")
    _stored_eventually(json_key, b'{"a": 1,')

    _open_key(page, base, yaml_key, "name: web\nreplicas: 2\n")
    expect(page.locator("#kv-mode")).to_have_value("yaml")
    _type(page, "name: [web\n")
    page.click("#kv-save")
    expect(dialog).to_be_visible()
    expect(page.locator("#kv-invalid-title")).to_have_text("Not valid YAML")
    page.keyboard.press("Escape")  # dismissing is "keep editing", never a save
    expect(dialog).to_be_hidden()
    assert _value(yaml_key) == b"name: web\nreplicas: 2\n"

    # A valid document saves at once, with no question asked.
    _type(page, "name: web\nreplicas: 5\n")
    page.click("#kv-save")
    _stored_eventually(yaml_key, b"name: web\nreplicas: 5\n")
    expect(dialog).to_be_hidden()
    assert page_errors == []
