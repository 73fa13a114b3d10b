"""The Alerts view's admin editors (issue 20) in a real browser against `runmonitor`: an admin
adds, edits, disables and deletes a webhook channel, its "Send test" reaches a recording
receiver on loopback at the whole secret URL, and rule thresholds and an override on the
current cluster change what GET /api/alerts/rules says; operators and viewers get no editor.
Every check reads the API or the receiver, never the page alone."""

import re

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from playwright.sync_api import expect

from devtools.localcluster import free_port
from notifications.tests.conftest import MailSink, Receiver
from tests.browser.axe import Findings, install
from tests.browser.conftest import (
    bearer,
    expect_dashboard_ready,
    save_screenshot,
    sign_in,
    sign_in_as,
)

ADMIN_PASSWORD = "alerts-editor-pass-1"
FIRST = "amber-orchard-27"
CHOSEN = "granite-harbor-64"
# Tokens in the path and query, as Slack's and many webhooks' URLs carry them.
SECRET_PATH = "/hooks/T0AB12/s3cr3t-token?token=abc123"


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


SMTP_USER, SMTP_PASSWORD = "mailer", "ui-smtp-pw-31"


@pytest.fixture
def smtp_server():
    """An SMTP server on loopback that requires AUTH (SMTP_USER / SMTP_PASSWORD); no TLS."""

    def authenticate(server, session, envelope, mechanism, auth_data):
        if (auth_data.login, auth_data.password) != (SMTP_USER.encode(), SMTP_PASSWORD.encode()):
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
        return AuthResult(success=True, auth_data=auth_data.login)

    controller = Controller(
        MailSink(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield controller
    controller.stop()


def _channels(api, server, headers) -> list[dict]:
    answer = api.get(server.url + "/api/alerts/channels", headers=headers)
    assert answer.ok, answer.text()
    return answer.json()["channels"]


def _rule(api, server, headers, rule_id: str) -> dict:
    answer = api.get(server.url + "/api/alerts/rules", headers=headers)
    assert answer.ok, answer.text()
    return next(r for r in answer.json()["rules"] if r["id"] == rule_id)


def _test_messages(receiver, path: str) -> list[tuple[str, str]]:
    """(status, alertname) of every message the receiver took at `path`."""
    return [
        (body["status"], body["alerts"][0]["labels"]["alertname"]) for body in receiver.bodies(path)
    ]


def _send_test(page, row) -> dict:
    """Click the row's "Send test" and return the API's answer (the toasts of earlier tests
    may still show)."""
    with page.expect_response(lambda r: r.url.endswith("/test")) as answer:
        row.locator("button.channel-test").click()
    assert answer.value.ok
    return answer.value.json()


def _open_alerts(page, server) -> None:
    page.goto(server.url + "/alerts")
    expect_dashboard_ready(page)
    expect(page.locator("#alerts-rules-table tbody tr")).not_to_have_count(0)


def _unlabelled_controls(page, selector: str) -> list[str]:
    """Inputs and selects under `selector` without a label or an aria-label."""
    return page.evaluate(
        """(selector) => [...document.querySelectorAll(`${selector} input, ${selector} select`)]
          .filter((n) => !n.labels.length && !n.getAttribute('aria-label')).map((n) => n.id)""",
        selector,
    )


def test_an_admin_adds_edits_disables_and_deletes_a_webhook_channel(
    dashboard_server, page, page_errors, api, receiver, tmp_path
):
    install(page)
    server = dashboard_server()
    sign_in(page, server, ADMIN_PASSWORD)
    admin = bearer(api, server, "admin", ADMIN_PASSWORD)
    _open_alerts(page, server)
    form = page.locator("#channel-form")
    expect(form).to_be_visible()
    assert _unlabelled_controls(page, "#channel-form") == []

    # Add: the API lists it with the URL masked as the API masks it (host and port only).
    form.get_by_label("Name", exact=True).fill("pager-hook")
    page.select_option("#channel-kind", "webhook")
    expect(page.locator("#channel-host")).to_be_hidden()
    page.fill("#channel-url", receiver.url + SECRET_PATH)
    page.click("#channel-submit")
    row = page.locator("#alerts-channels-table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td[data-label=Name]")).to_have_text("pager-hook")
    masked = f"http://127.0.0.1:{receiver.port}/***?***"
    expect(row.locator(".channel-target")).to_have_text(masked)
    [listed] = _channels(api, server, admin)
    assert (listed["name"], listed["kind"], listed["enabled"]) == ("pager-hook", "webhook", True)
    assert listed["config"] == {"url": masked, "repeat_interval": 14400}
    assert "s3cr3t" not in str(listed)

    # "Send test" reaches the receiver at the whole stored URL: one firing, one resolved.
    assert _send_test(page, row) == {"ok": True, "sent": ["firing", "resolved"]}
    expect(page.locator("#toasts")).to_contain_text("Test sent to pager-hook: firing and resolved")
    assert _test_messages(receiver, SECRET_PATH) == [
        ("firing", "etcdmonitor_test"),
        ("resolved", "etcdmonitor_test"),
    ]

    # Edit: the form shows the masked URL; left alone it keeps the stored secret. The new
    # name is markup, shown as text.
    row.locator("button.channel-edit").click()
    expect(page.locator("#channel-name")).to_be_focused()
    expect(page.locator("#channel-url")).to_have_value(masked)
    expect(page.locator("#channel-kind")).to_be_disabled()
    expect(page.locator("#channel-url-hint")).to_be_visible()
    page.fill("#channel-name", "<b>pager</b> hook")
    page.fill("#channel-repeat", "600")
    page.click("#channel-submit")
    expect(row.locator("td[data-label=Name]")).to_have_text("<b>pager</b> hook")
    expect(row.locator("td[data-label=Name] b")).to_have_count(0)
    [listed] = _channels(api, server, admin)
    assert listed["name"] == "<b>pager</b> hook"
    assert listed["config"] == {"url": masked, "repeat_interval": 600}
    assert _send_test(page, row)["ok"]
    expect(page.locator("#toasts")).to_contain_text("Test sent to <b>pager</b> hook")
    assert len(_test_messages(receiver, SECRET_PATH)) == 4

    # A changed URL that still holds the mask is refused in the form (it would be stored
    # literally); the API's error for a bad URL shows in the form; neither changes the channel.
    row.locator("button.channel-edit").click()
    page.fill("#channel-url", f"http://127.0.0.1:{receiver.port}/***/other")
    page.click("#channel-submit")
    expect(page.locator("#channel-error")).to_contain_text("Type the whole URL")
    page.fill("#channel-url", "ftp://127.0.0.1/drop")
    with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        page.click("#channel-submit")
    assert patched.value.status == 400
    expect(page.locator("#channel-error")).to_have_text(
        "config.url: must be an http:// or https:// URL with a host"
    )
    assert _channels(api, server, admin)[0]["config"]["url"] == masked
    # A whole new URL replaces the secret: the next test goes there.
    page.fill("#channel-url", receiver.url + "/moved?token=xyz")
    page.click("#channel-submit")
    expect(page.locator("#channel-error")).to_be_hidden()
    expect(page.locator("#channel-submit")).to_have_text("Add channel")
    assert _send_test(page, row)["ok"]
    assert len(_test_messages(receiver, "/moved?token=xyz")) == 2
    assert len(_test_messages(receiver, SECRET_PATH)) == 4

    # The form at 390 px: no sideways scroll, nothing serious for axe, in both themes.
    row.locator("button.channel-edit").click()
    found = Findings()
    for theme in ("dark", "light"):
        if page.evaluate("() => document.documentElement.dataset.theme") != theme:
            page.click("#theme-toggle")
        page.set_viewport_size({"width": 390, "height": 844})
        form.scroll_into_view_if_needed()
        found.check(page, f"{theme}/390/channel-form")
        save_screenshot(page, f"alerts-channel-form-{theme}-390.png", tmp_path)
        page.set_viewport_size({"width": 1440, "height": 900})
    page.click("#channel-cancel")

    # Disable, then enable, from the row.
    row.locator("button.channel-toggle").click()
    expect(row.locator("td[data-label=Enabled]")).to_have_text("no")
    assert _channels(api, server, admin)[0]["enabled"] is False
    expect(row.locator("button.channel-toggle")).to_have_text("Enable")

    # Delete asks first; cancelled, nothing happens; confirmed, the API no longer lists it.
    row.locator("button.channel-delete").click()
    page.click("#confirm-cancel")
    assert len(_channels(api, server, admin)) == 1
    row.locator("button.channel-delete").click()
    page.click("#confirm-ok")
    expect(page.locator("#alerts-channels-empty")).to_be_visible()
    assert _channels(api, server, admin) == []

    found.assert_clean()
    assert page_errors == []


def test_an_admin_changes_a_threshold_and_an_override_on_the_current_cluster(
    dashboard_server, page, page_errors, api, tmp_path
):
    install(page)
    server = dashboard_server()
    sign_in(page, server, ADMIN_PASSWORD)
    admin = bearer(api, server, "admin", ADMIN_PASSWORD)
    _open_alerts(page, server)
    quota = page.locator("#alerts-rules-table tbody tr[data-rule=db_quota_high]")
    expect(quota.locator("td[data-label=Thresholds]")).to_contain_text("ratio 0.95")

    # By keyboard: open the editor, type the new ratio, Enter submits.
    quota.locator("button.rule-edit").focus()
    page.keyboard.press("Enter")
    ratio = page.locator("#rule-threshold-ratio")
    expect(ratio).to_be_focused()
    expect(ratio).to_have_value("0.95")
    assert _unlabelled_controls(page, "#rule-editor") == []
    page.keyboard.press("Control+A")
    page.keyboard.type("0.9")
    page.keyboard.press("Enter")
    expect(page.locator("#toasts")).to_contain_text("Rule db_quota_high thresholds saved")
    expect(quota.locator("button.rule-edit")).to_be_focused()
    expect(quota.locator("td[data-label=Thresholds]")).to_contain_text("ratio 0.9")
    rule = _rule(api, server, admin, "db_quota_high")
    assert rule["thresholds"] == {"ratio": 0.9}
    assert rule["cluster_overrides"] == {}

    # An override of wal_fsync_slow on the header's cluster ("default"): disabled, 120 s, and
    # one of its two thresholds; blank fields inherit.
    fsync = page.locator("#alerts-rules-table tbody tr[data-rule=wal_fsync_slow]")
    fsync.locator("button.rule-edit").click()
    expect(page.locator("#rule-override-title")).to_contain_text("Override on cluster")
    expect(page.locator("#rule-override-clear")).to_be_disabled()
    page.select_option("#rule-override-enabled", "false")
    page.fill("#rule-override-for", "120")
    page.fill("#rule-override-critical_p99_seconds", "2")
    page.click("#rule-override-save")
    expect(page.locator("#toasts")).to_contain_text("Override of wal_fsync_slow")
    rule = _rule(api, server, admin, "wal_fsync_slow")
    assert rule["cluster_overrides"] == {
        "default": {"enabled": False, "for_seconds": 120, "thresholds": {"critical_p99_seconds": 2}}
    }
    # The rule's own values are untouched; the row shows what is in force here.
    assert (rule["enabled"], rule["thresholds"]["critical_p99_seconds"]) == (True, 1.0)
    cell = fsync.locator("td[data-label=Thresholds]")
    expect(cell).to_contain_text("critical_p99_seconds 2 *")
    expect(cell).to_contain_text("warning_p99_seconds 0.5")
    expect(cell).to_contain_text(re.compile(r"override on .+: disabled, for 120 s"))
    expect(fsync.locator("td[data-label=Enabled] input")).to_be_checked()
    found = Findings()
    fsync.scroll_into_view_if_needed()
    found.check(page, "1440/rules-with-override")
    save_screenshot(page, "alerts-rules-override-1440.png", tmp_path)

    # The API's refusal shows in the editor and changes nothing.
    fsync.locator("button.rule-edit").click()
    expect(page.locator("#rule-override-enabled")).to_have_value("false")
    expect(page.locator("#rule-override-for")).to_have_value("120")
    page.fill("#rule-override-for", "99999999")
    page.click("#rule-override-save")
    expect(page.locator("#rule-editor-error")).to_contain_text(
        "cluster_overrides.default.for_seconds must be an integer"
    )
    assert (
        _rule(api, server, admin, "wal_fsync_slow")["cluster_overrides"]["default"]["for_seconds"]
        == 120
    )

    # The editor at 390 px: no sideways scroll, nothing serious for axe.
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#rule-override-form").scroll_into_view_if_needed()
    found.check(page, "390/rule-editor")
    save_screenshot(page, "alerts-rule-editor-390.png", tmp_path)
    page.set_viewport_size({"width": 1440, "height": 900})

    # Clearing the override: the API has none and the row no longer says so.
    page.click("#rule-override-clear")
    expect(page.locator("#toasts")).to_contain_text("cleared")
    expect(cell).not_to_contain_text("override")
    expect(cell).to_contain_text("critical_p99_seconds 1")
    assert _rule(api, server, admin, "wal_fsync_slow")["cluster_overrides"] == {}

    found.assert_clean()
    assert page_errors == []


def test_an_email_channel_keeps_its_password_when_edited_and_drops_it_when_asked(
    dashboard_server, page, page_errors, api, smtp_server
):
    server = dashboard_server()
    sign_in(page, server, ADMIN_PASSWORD)
    admin = bearer(api, server, "admin", ADMIN_PASSWORD)
    _open_alerts(page, server)
    page.fill("#channel-name", "mail")
    page.select_option("#channel-kind", "email")
    expect(page.locator("#channel-url")).to_be_hidden()
    expect(page.locator("#channel-password-clear")).to_be_hidden()
    page.fill("#channel-host", "127.0.0.1")
    page.fill("#channel-port", str(smtp_server.port))
    page.select_option("#channel-security", "none")
    page.fill("#channel-username", SMTP_USER)
    page.fill("#channel-password", SMTP_PASSWORD)
    page.fill("#channel-from", "etcdmonitor@example.com")
    page.fill("#channel-to", "ops@example.com, oncall@example.com")
    page.click("#channel-submit")
    row = page.locator("#alerts-channels-table tbody tr")
    expect(row.locator(".channel-target")).to_have_text("ops@example.com, oncall@example.com")
    [listed] = _channels(api, server, admin)
    assert listed["config"]["password"] == "***"
    assert listed["config"]["to"] == ["ops@example.com", "oncall@example.com"]
    assert _send_test(page, row) == {"ok": True, "sent": ["firing", "resolved"]}
    assert len(smtp_server.handler.messages) == 2

    # Edited with the password left blank: the stored one stays and still signs in.
    row.locator("button.channel-edit").click()
    expect(page.locator("#channel-password")).to_have_value("")
    expect(page.locator("#channel-password-hint")).to_be_visible()
    page.fill("#channel-to", "pager@example.com")
    page.click("#channel-submit")
    expect(row.locator(".channel-target")).to_have_text("pager@example.com")
    [listed] = _channels(api, server, admin)
    assert (listed["config"]["password"], listed["config"]["to"]) == ("***", ["pager@example.com"])
    assert _send_test(page, row)["ok"]
    assert [m["to"] for m in smtp_server.handler.messages[2:]] == [["pager@example.com"]] * 2

    # "Remove the stored password": the API has none and the server refuses the test.
    row.locator("button.channel-edit").click()
    page.check("#channel-password-clear")
    page.click("#channel-submit")
    expect(page.locator("#channel-submit")).to_have_text("Add channel")
    assert _channels(api, server, admin)[0]["config"]["password"] == ""
    answer = _send_test(page, row)
    assert answer["ok"] is False, answer
    expect(page.locator("#toasts")).to_contain_text("Test to mail failed")
    assert len(smtp_server.handler.messages) == 4
    assert page_errors == []


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_an_operator_or_viewer_sees_no_channel_or_rule_editor(
    dashboard_server, page, page_errors, api, receiver, role
):
    server = dashboard_server()
    sign_in(page, server, ADMIN_PASSWORD)
    admin = bearer(api, server, "admin", ADMIN_PASSWORD)
    created = api.post(
        server.url + "/api/alerts/channels",
        data={"name": "ops-hook", "kind": "webhook", "config": {"url": receiver.url + "/h"}},
        headers=admin,
    )
    assert created.status == 201, created.text()
    channel_id = created.json()["channel"]["id"]
    assert api.patch(
        server.url + "/api/alerts/rules/db_quota_high",
        data={"cluster_overrides": {"default": {"thresholds": {"ratio": 0.8}}}},
        headers=admin,
    ).ok
    created = api.post(
        server.url + "/api/users",
        data={"username": "watcher", "password": FIRST, "roles": {"*": role}},
        headers=admin,
    )
    assert created.status == 201, created.text()
    assert api.post(
        server.url + "/api/auth/change-password",
        data={"username": "watcher", "old_password": FIRST, "new_password": CHOSEN},
    ).ok

    sign_in_as(page, server, "watcher", CHOSEN)
    page.click("#view-alerts")
    expect(page.locator("#alerts-channels-table tbody tr")).to_have_count(1)
    quota = page.locator("#alerts-rules-table tbody tr[data-rule=db_quota_high]")
    # The values in force are shown to everyone, the override marked.
    expect(quota.locator("td[data-label=Thresholds]")).to_contain_text("ratio 0.8 *")
    expect(quota.locator("td[data-label=Thresholds] .mark")).to_have_text("override")
    for control in (
        "#channel-form",
        "#rule-editor-box",
        "button.channel-edit",
        "button.channel-toggle",
        "button.channel-delete",
        "button.channel-test",
        "button.rule-edit",
        "#alerts-rules-table input",
    ):
        expect(page.locator("#alerts-view " + control)).to_have_count(0)
    # The API agrees with what the page hides.
    watcher = bearer(api, server, "watcher", CHOSEN)
    refused = api.patch(
        f"{server.url}/api/alerts/channels/{channel_id}", data={"enabled": False}, headers=watcher
    )
    assert refused.status == 403
    refused = api.patch(
        server.url + "/api/alerts/rules/db_quota_high",
        data={"thresholds": {"ratio": 0.5}},
        headers=watcher,
    )
    assert refused.status == 403
    assert _channels(api, server, admin)[0]["enabled"] is True
    assert page_errors == []
