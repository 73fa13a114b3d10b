"""Usable by everyone (issue 17, item 5): every view and dialog at 1440 and 390 px in both themes,
checked by a real accessibility engine (axe-core, vendored in tests/browser/vendor) and for
horizontal scrolling.

axe-core runs every WCAG 2.0/2.1 A and AA rule plus its best practices; a `serious` or
`critical` violation fails the test. No rule is disabled.
"""

import re

from playwright.sync_api import expect

from etcdgateway import cluster_gateway
from tests.browser.axe import Findings, install
from tests.browser.conftest import expect_dashboard_ready, save_screenshot, sign_in

PASSWORD = "a11y-pass-1"
WIDTHS = (1440, 390)
THEMES = ("dark", "light")
OPS_PANES = ("audit", "defrag", "snapshot", "alarms", "leader", "hashkv", "compact")


def _set_theme(page, theme: str) -> None:
    page.evaluate("(t) => localStorage.setItem('etcdmonitor-theme', t)", theme)


def _toggle_to(page, theme: str) -> None:
    if page.evaluate("() => document.documentElement.dataset.theme") != theme:
        page.click("#theme-toggle")
    expect(page.locator(f"html[data-theme='{theme}']")).to_have_count(1)


def _close_dialog(page, dialog: str) -> None:
    page.keyboard.press("Escape")
    expect(page.locator(dialog)).to_be_hidden()


def test_every_view_is_accessible_and_fits_a_phone(
    dashboard_server, page, page_errors, etcd_cluster, tmp_path
):
    install(page)
    server = dashboard_server()
    gateway = cluster_gateway()
    gateway.kv(lambda c: c.put(b"/a11y/app/config.json", b'{"a": 1}'))
    gateway.kv(lambda c: c.put(b"/a11y/readme", b"text"))
    found = Findings()

    # --- the sign-in pages, before signing in (the theme comes from localStorage there) ---
    for theme in THEMES:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 844 if width < 800 else 900})
            page.goto(server.url + "/login")
            _set_theme(page, theme)
            page.reload()
            expect(page.locator(f"html[data-theme='{theme}']")).to_have_count(1)
            found.check(page, f"{theme}/{width}/login")
            page.goto(server.url + "/change-password?username=admin")
            found.check(page, f"{theme}/{width}/change-password")
    _set_theme(page, "dark")
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server, PASSWORD)

    for theme in THEMES:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 844 if width < 800 else 900})
            where = f"{theme}/{width}"
            page.goto(server.url + "/")
            expect_dashboard_ready(page)
            _toggle_to(page, theme)
            expect(page.locator("#cards .metric").first).to_be_visible()
            expect(page.locator("#cluster-health")).not_to_have_text("Unknown")
            expect(page.locator("#panels .chart").first).to_be_visible()
            found.check(page, where + "/monitor")
            if width < 800 and theme == "dark":
                save_screenshot(page, "phone-monitor-dark.png", tmp_path)

            # The member list of the Members card opens for the keyboard too, not only on hover.
            page.locator("#cardMemberSize").focus()
            expect(page.locator("#cardMemberSize .member-tip")).to_be_visible()
            page.keyboard.press("Tab")
            assert page.evaluate("() => !!document.activeElement.closest('.member-tip')")
            found.check(page, where + "/monitor-member-list")
            page.keyboard.press("Shift+Tab")

            page.click("#panel-settings-btn")
            expect(page.locator("#settings-dialog")).to_be_visible()
            found.check(page, where + "/dialog-settings", "#settings-dialog")
            _close_dialog(page, "#settings-dialog")

            page.click("#view-kv")
            tree = page.locator("#kv-tree")
            expect(tree.locator(".kv-node[data-key='/']")).to_have_count(2)
            expect(page.locator("#kv-info")).to_contain_text("Version")
            tree.locator(".kv-node[data-key='/']").last.click()
            tree.locator(".kv-node[data-key='/a11y']").click()
            tree.locator(".kv-node[data-key='/a11y/readme']").click()
            expect(page.locator("#kv-editor")).to_be_visible()
            expect(tree.locator(".kv-node.selected")).to_have_count(1)
            found.check(page, where + "/kv")
            if width < 800 and theme == "light":
                save_screenshot(page, "phone-kv-light.png", tmp_path)
            tree.locator(".kv-node[data-key='/a11y/app']").click(button="right")
            expect(page.locator("#kv-menu")).to_be_visible()
            found.check(page, where + "/kv-menu")
            page.keyboard.press("Escape")
            expect(page.locator("#kv-menu")).to_be_hidden()
            page.click("#kv-mode-list")
            found.check(page, where + "/kv-list")
            page.click("#kv-mode-tree")

            page.click("#kv-tab-add")
            expect(page.locator("#kv-tab-dialog")).to_be_visible()
            found.check(page, where + "/dialog-kv-tab", "#kv-tab-dialog")
            _close_dialog(page, "#kv-tab-dialog")

            # Re-entering credentials needs a second cluster's tab; its markup is static, so
            # the dialog is opened as it is and checked for labels and contrast.
            page.evaluate("() => document.getElementById('kv-cred-dialog').showModal()")
            found.check(page, where + "/dialog-kv-cred", "#kv-cred-dialog")
            _close_dialog(page, "#kv-cred-dialog")

            page.click("#kv-new")
            expect(page.locator("#kv-create-dialog")).to_be_visible()
            found.check(page, where + "/dialog-kv-create", "#kv-create-dialog")
            _close_dialog(page, "#kv-create-dialog")

            page.click("#kv-deleted-open")
            expect(page.locator("#kv-deleted-dialog")).to_be_visible()
            found.check(page, where + "/dialog-kv-deleted", "#kv-deleted-dialog")
            _close_dialog(page, "#kv-deleted-dialog")
            tree.locator(".kv-node[data-key='/a11y/readme']").click()
            page.click("#kv-history")
            expect(page.locator("#kv-history-table tbody tr").first).to_be_visible()
            found.check(page, where + "/dialog-kv-history", "#kv-history-dialog")
            _close_dialog(page, "#kv-history-dialog")
            page.click("#view-alerts")
            expect(page.locator("#alerts-rules-table tbody tr").first).to_be_visible()
            expect(page.locator("#silence-form")).to_be_visible()
            found.check(page, where + "/alerts")

            page.click("#view-ops")
            for pane in OPS_PANES:
                page.click(f"#ops-menu button[data-ops={pane}]")
                expect(page.locator(f"#ops-{pane}")).to_be_visible()
                if pane == "audit":
                    expect(page.locator("#audit-table tbody tr").first).to_be_visible()
                elif pane == "defrag":
                    expect(page.locator("#defrag-list li")).to_have_count(3)
                elif pane == "hashkv":
                    page.click("#hashkv-run")
                    expect(page.locator("#hashkv-table")).to_be_visible()
                elif pane == "compact":
                    expect(page.locator("#compact-current")).to_have_text(re.compile(r"^\d+$"))
                found.check(page, f"{where}/ops-{pane}")
                if width < 800 and theme == "light" and pane == "hashkv":
                    save_screenshot(page, "phone-ops-hashkv-light.png", tmp_path)
            page.click("#compact-run")
            expect(page.locator("#confirm-dialog")).to_be_visible()
            found.check(page, where + "/dialog-confirm", "#confirm-dialog")
            page.click("#confirm-cancel")
            expect(page.locator("#confirm-dialog")).to_be_hidden()

    found.assert_clean()
    assert page_errors == []


def test_cluster_tabs_are_accessible_and_work_by_keyboard(
    dashboard_server, etcd_cluster_factory, page, page_errors
):
    """A user's tab, healthy and then failing: no control nested in a tab, arrows move along the
    strip, Enter opens, the failing tab's credentials are re-entered from the info bar."""
    install(page)
    remote = etcd_cluster_factory(size=1, point_settings=False)
    member = remote.members[0]
    server = dashboard_server()
    sign_in(page, server, PASSWORD)
    csrf = page.evaluate("() => document.querySelector('meta[name=csrf-token]').content")
    added = page.request.post(
        server.url + "/api/kv/tabs",
        data={"endpoint": member.client_url, "name": "remote"},
        headers={"X-CSRFToken": csrf},
    )
    assert added.ok, added.text()
    page.goto(server.url + "/kv")
    expect_dashboard_ready(page)
    expect(page.locator("#kv-info")).to_contain_text("Version")
    found = Findings()
    for theme in THEMES:
        _toggle_to(page, theme)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 844 if width < 800 else 900})
            found.check(page, f"{theme}/{width}/kv-user-tab")

    # Keyboard: the default tab is the strip's tab stop; → focuses "remote", Enter opens it.
    default = page.locator("#kv-tab-list [role=tab][data-tab-id='default']")
    remote_tab = page.locator("#kv-tab-list [role=tab]", has_text="remote")
    expect(default).to_have_attribute("tabindex", "0")
    page.focus("#cl-alerts-link")  # the cluster line's alerts link: the last control before it
    page.keyboard.press("Tab")
    expect(default).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(remote_tab).to_be_focused()
    expect(remote_tab).to_have_attribute("aria-selected", "false")
    page.keyboard.press("Enter")
    expect(remote_tab).to_have_attribute("aria-selected", "true")
    expect(page.locator("#kv-info")).to_contain_text("Cluster: remote")
    expect(remote_tab).to_have_attribute("aria-keyshortcuts", "Delete")

    remote.kill_member(member)
    page.click("#kv-reload")  # the failed connect marks the tab `error` at once
    expect(remote_tab.locator(".kv-tab-warn")).to_have_count(1, timeout=40_000)
    reenter = page.locator("#kv-info-reenter")
    expect(reenter).to_be_visible()
    for theme in THEMES:
        _toggle_to(page, theme)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 844 if width < 800 else 900})
            found.check(page, f"{theme}/{width}/kv-failing-tab")
    reenter.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#kv-cred-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#kv-cred-reason")).to_contain_text("unreachable")
    found.check(page, "light/390/dialog-kv-cred-failing", "#kv-cred-dialog")
    _close_dialog(page, "#kv-cred-dialog")
    found.assert_clean()
    assert page_errors == []
