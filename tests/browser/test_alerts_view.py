"""The Alerts view and the cluster line's alert count (issue 20) in a real browser: a member of a
private cluster is killed, the server's own probe and rule evaluation raise member_down, and
the view lists it from the API; ack and silence from the page change what the API says; a
viewer sees neither control; axe finds nothing serious at 1440 and 390 px in both themes."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.axe import Findings, install
from tests.browser.conftest import (
    bearer,
    expect_dashboard_ready,
    save_screenshot,
    sign_in,
    sign_in_as,
)
from tests.servers import canned_http_server

ADMIN_PASSWORD = "alerts-admin-pass-1"
FIRST = "quiet-river-31"
CHOSEN = "silver-lantern-58"


@pytest.fixture
def receiver():
    """A loopback webhook receiver answering 200 to every POST."""
    with canned_http_server(b"{}", "application/json", ("POST",)) as url:
        yield url


def _alert(api, server, admin: dict, alert_id: str) -> dict:
    answer = api.get(f"{server.url}/api/alerts/{alert_id}", headers=admin)
    assert answer.ok, answer.text()
    return answer.json()["alert"]


def _firing_member_down(page):
    return page.locator("#alerts-active-table tbody tr[data-rule=member_down]")


def test_a_killed_member_is_listed_acked_and_silenced_from_the_alerts_view(
    dashboard_server, page, page_errors, api, etcd_cluster_factory, tmp_path
):
    install(page)
    cluster = etcd_cluster_factory(size=3, point_settings=False)
    server = dashboard_server(
        ETCD_ENDPOINTS=",".join(cluster.client_urls),
        HEALTH_PROBE_INTERVAL="1",
        ALERT_EVAL_INTERVAL="1",
    )
    sign_in(page, server, ADMIN_PASSWORD)
    admin = bearer(api, server, "admin", ADMIN_PASSWORD)
    # The default 30 s wait before firing is the rule's business, not this view's.
    changed = api.patch(
        server.url + "/api/alerts/rules/member_down", data={"for_seconds": 0}, headers=admin
    )
    assert changed.ok, changed.text()
    line_alerts = page.locator("#cl-alerts")
    expect(line_alerts).to_contain_text("none firing", timeout=30_000)
    victim = cluster.members[2]
    cluster.kill_member(victim)

    # The cluster line: the count and worst severity as words, coloured, linking to the view.
    expect(line_alerts).to_have_attribute(
        "data-worst", re.compile("critical|warning"), timeout=45_000
    )
    expect(line_alerts).to_contain_text(re.compile(r"\d+ firing · worst (critical|warning)"))
    # The link keeps a keyboard user's focus over the line's next poll (a new "as of").
    as_of = page.locator("#cl-as-of").text_content()
    line_alerts.locator("a").focus()
    expect(page.locator("#cl-as-of")).not_to_have_text(as_of)
    expect(line_alerts.locator("a")).to_be_focused()
    line_alerts.locator("a").click()
    expect(page).to_have_url(server.url + "/alerts")
    expect(page.locator("#alerts-view")).to_be_visible()
    row = _firing_member_down(page)
    expect(row).to_have_count(1, timeout=30_000)
    expect(row.locator("td[data-label=State]")).to_contain_text("firing")
    expect(row.locator("td[data-label=Member]")).to_have_text(victim.name)
    alert_id = row.get_attribute("data-alert")
    listed = api.get(
        server.url + "/api/alerts?state=firing&cluster_id=default", headers=admin
    ).json()["alerts"]
    assert [a["id"] for a in listed if a["rule"] == "member_down"] == [int(alert_id)]
    assert not _alert(api, server, admin, alert_id)["acknowledged"]
    expect(
        page.locator("#alerts-rules-table tbody tr[data-rule=member_down] .rule-for")
    ).to_have_value("0")

    found = Findings()
    for theme in ("dark", "light"):
        if page.evaluate("() => document.documentElement.dataset.theme") != theme:
            page.click("#theme-toggle")
        for width in (1440, 390):
            page.set_viewport_size({"width": width, "height": 900 if width > 800 else 844})
            expect(row).to_be_visible()
            found.check(page, f"{theme}/{width}/alerts")
            save_screenshot(page, f"alerts-{theme}-{width}.png", tmp_path)
    page.set_viewport_size({"width": 1440, "height": 900})

    # Ack by keyboard: the API says acknowledged, the button goes, the mark shows.
    # The focused button survives the view's next poll (unchanged rows are not redrawn)...
    with page.expect_response(lambda r: "/api/alerts?cluster_id=" in r.url, timeout=30_000):
        row.locator("button.alert-ack").focus()
    expect(row.locator("button.alert-ack")).to_be_focused()
    # ...and a poll that redraws the row (a silence made elsewhere, like a new probe error in
    # the alert's values) gives the focus back to the same button in the new row.
    now = int(time.time())
    made = api.post(
        server.url + "/api/alerts/silences",
        data={
            "matchers": {"rule": "member_down"},
            "starts_at": now,
            "ends_at": now + 600,
            "comment": "made elsewhere",
        },
        headers=admin,
    )
    assert made.ok, made.text()
    expect(row.locator(".mark.silenced")).to_be_visible(timeout=30_000)
    expect(row.locator("button.alert-ack")).to_be_focused()
    gone = api.delete(
        server.url + f"/api/alerts/silences/{made.json()['silence']['id']}", headers=admin
    )
    assert gone.ok, gone.text()
    expect(row.locator(".mark.silenced")).to_have_count(0, timeout=30_000)
    expect(row.locator("button.alert-ack")).to_be_focused()
    page.keyboard.press("Enter")
    expect(row.locator(".mark.acknowledged")).to_be_visible()
    expect(row.locator("button.alert-ack")).to_have_count(0)
    assert _alert(api, server, admin, alert_id)["acknowledged"]

    # Silence from the row: the form takes its rule and member; the API lists the silence and
    # the alert as silenced.
    row.locator("button.alert-silence").click()
    expect(page.locator("#silence-rule")).to_have_value("member_down")
    expect(page.locator("#silence-comment")).to_be_focused()
    page.keyboard.type("replacing the disk")
    page.select_option("#silence-duration", "7200")
    page.click("#silence-create")
    silence_row = page.locator("#alerts-silences-table tbody tr[data-state=active]")
    expect(silence_row).to_have_count(1)
    expect(silence_row.locator("td[data-label=Comment]")).to_have_text("replacing the disk")
    expect(row.locator(".mark.silenced")).to_be_visible()
    silences = api.get(server.url + "/api/alerts/silences", headers=admin).json()["silences"]
    silences = [s for s in silences if s["state"] == "active"]
    assert len(silences) == 1
    silence = silences[0]
    member_id = _alert(api, server, admin, alert_id)["member_id"]
    assert silence["matchers"] == {
        "rule": "member_down",
        "member_id": member_id,
        "cluster_id": "default",
    }
    assert silence["comment"] == "replacing the disk"
    assert 7100 <= silence["ends_at"] - silence["starts_at"] <= 7300
    assert _alert(api, server, admin, alert_id)["silenced"]
    found.check(page, "light/1440/alerts-acked-silenced")

    # Expiring it (confirmed) ends the silence in the API too.
    silence_row.locator("button.silence-expire").click()
    page.click("#confirm-ok")
    # Two expired: the one made through the API above, and this one.
    expect(page.locator("#alerts-silences-table tbody tr[data-state=expired]")).to_have_count(2)
    expect(row.locator(".mark.silenced")).to_have_count(0)
    assert not _alert(api, server, admin, alert_id)["silenced"]

    # The member back: the alert resolves into the history.
    cluster.start_member(victim)
    history = page.locator("#alerts-history-table tbody tr[data-rule=member_down]")
    expect(history).to_have_count(1, timeout=60_000)
    expect(line_alerts).to_contain_text("none firing", timeout=30_000)

    found.assert_clean()
    assert page_errors == []


def test_a_viewer_sees_alerts_but_no_ack_silence_or_admin_control(
    dashboard_server, page, page_errors, api, etcd_cluster_factory, receiver
):
    cluster = etcd_cluster_factory(size=3, point_settings=False)
    server = dashboard_server(
        ETCD_ENDPOINTS=",".join(cluster.client_urls),
        HEALTH_PROBE_INTERVAL="1",
        ALERT_EVAL_INTERVAL="1",
    )
    sign_in(page, server, ADMIN_PASSWORD)
    admin = bearer(api, server, "admin", ADMIN_PASSWORD)
    assert api.patch(
        server.url + "/api/alerts/rules/member_down", data={"for_seconds": 0}, headers=admin
    ).ok
    created = api.post(
        server.url + "/api/alerts/channels",
        data={"name": "ops-hook", "kind": "webhook", "config": {"url": receiver + "/hook"}},
        headers=admin,
    )
    assert created.status == 201, created.text()
    created = api.post(
        server.url + "/api/users",
        data={"username": "watcher", "password": FIRST, "roles": {"*": "viewer"}},
        headers=admin,
    )
    assert created.status == 201, created.text()
    assert api.post(
        server.url + "/api/auth/change-password",
        data={"username": "watcher", "old_password": FIRST, "new_password": CHOSEN},
    ).ok
    cluster.kill_member(cluster.members[1])

    # The admin sees the controls the viewer will not.
    page.goto(server.url + "/alerts")
    expect_dashboard_ready(page)
    expect(_firing_member_down(page)).to_have_count(1, timeout=45_000)
    expect(_firing_member_down(page).locator("button.alert-ack")).to_have_count(1)
    expect(page.locator("#silence-form")).to_be_visible()
    # "Send test" posts a firing and a resolved test message to the loopback receiver.
    page.click("#alerts-channels-table button.channel-test")
    expect(page.locator("#toasts")).to_contain_text("Test sent to ops-hook: firing and resolved")
    # An admin edits a rule in place: the API has the new values.
    rule_row = page.locator("#alerts-rules-table tbody tr[data-rule=no_leader]")
    rule_row.locator(".rule-for").fill("45")
    rule_row.locator("input[type=checkbox]").uncheck()
    rule_row.locator(".rule-save").click()
    expect(page.locator("#toasts")).to_contain_text("Rule no_leader saved")
    rules = api.get(server.url + "/api/alerts/rules", headers=admin).json()["rules"]
    no_leader = next(r for r in rules if r["id"] == "no_leader")
    assert (no_leader["for_seconds"], no_leader["enabled"]) == (45, False)

    sign_in_as(page, server, "watcher", CHOSEN)
    page.click("#view-alerts")
    row = _firing_member_down(page)
    expect(row).to_have_count(1, timeout=30_000)
    expect(page.locator("#alerts-channels-table tbody tr")).to_have_count(1)
    expect(page.locator("#alerts-rules-table tbody tr[data-rule=member_down]")).to_contain_text(
        "yes"
    )
    expect(page.locator("#alerts-view button.alert-ack")).to_have_count(0)
    expect(page.locator("#alerts-view button.alert-silence")).to_have_count(0)
    expect(page.locator("#silence-form")).to_be_hidden()
    expect(page.locator("#alerts-view button.silence-expire")).to_have_count(0)
    expect(page.locator("#alerts-view button.channel-test")).to_have_count(0)
    expect(page.locator("#alerts-view .rule-save")).to_have_count(0)
    expect(page.locator("#alerts-rules-table input")).to_have_count(0)
    # The API agrees with what the page hides.
    viewer = bearer(api, server, "watcher", CHOSEN)
    refused = api.post(
        f"{server.url}/api/alerts/{row.get_attribute('data-alert')}/ack", headers=viewer
    )
    assert refused.status == 403
    assert page_errors == []
