"""What the dashboard says when a member dies (issue 17): the cluster line, the member picker and
list, stale cards, HashKV "could not verify", and ops views that mark and skip the dead member.

The server runs with the production intervals (30 s collection, 5 s health probe) against a
private cluster, so the page shows what an operator would see after a real failure.
"""

import re

from playwright.sync_api import expect

from tests.browser.axe import Findings, install
from tests.browser.conftest import save_screenshot, sign_in

PASSWORD = "health-pass-1"
WITHIN = 20_000  # ms: probe (5 s) + page poll (5 s), with slack for a busy 2-core machine


def test_a_killed_follower_shows_everywhere_within_seconds(
    dashboard_server, etcd_cluster_factory, page, page_errors, tmp_path
):
    cluster = etcd_cluster_factory(point_settings=False)
    server = dashboard_server(ETCD_ENDPOINTS=cluster.endpoints, COLLECTOR_INTERVAL="30")
    install(page)  # the failure views' colours (stale, degraded, down) are checked by axe too
    found = Findings()
    sign_in(page, server, PASSWORD)
    line = page.locator("#cluster-line")
    expect(page.locator("#cluster-health")).to_have_text("Healthy", timeout=WITHIN)
    expect(line).to_contain_text("3/3 up · quorum margin 1")
    expect(line).to_contain_text("Alarms none")
    expect(line).to_contain_text(re.compile(r"DB \d+\.\d % of \S+ \S+ quota"))
    members = page.request.get(server.url + "/api/members").json()["members"]
    leader = next(m for m in members if m["is_leader"])
    expect(line).to_contain_text(f"Leader {leader['name']}")
    victim = next(m for m in members if not m["is_leader"])
    local = next(m for m in cluster.members if m.client_url == victim["client_urls"][0])
    page.select_option("#member-select", victim["id"])
    expect(page.locator("#cardLeader")).to_contain_text(leader["name"])
    expect(page.locator("#cardLeader")).to_contain_text("this member: follower")
    option = page.locator(f"#member-select option[value='{victim['id']}']")
    expect(option).to_contain_text("follower · up · v3.")
    expect(page.locator("#stale-note")).to_be_hidden()

    cluster.kill_member(local)

    expect(page.locator("#cluster-health")).to_have_text("Degraded", timeout=WITHIN)
    expect(line).to_contain_text("2/3 up · quorum margin 0")
    expect(option).to_contain_text("DOWN")
    expect(page.locator("#cardLeader")).to_contain_text("this member: down")
    expect(page.locator("#cardMemberSize")).to_contain_text("2/3 up")
    expect(page.locator(f".member-tip [data-member='{victim['id']}'] .dot.down")).to_have_count(1)
    expect(page.locator("#stale-note")).to_be_visible(timeout=WITHIN)
    expect(page.locator("#stale-note")).to_contain_text(re.compile(r"as of \d\d:\d\d:\d\d"))
    expect(page.locator("#cards")).to_have_class(re.compile(r"\bstale\b"))
    page.evaluate("() => window.scrollTo(0, 0)")
    save_screenshot(page, "monitor-member-down.png", tmp_path)
    found.check(page, "dark/monitor-member-down")

    # --- ops: HashKV cannot verify; the dead member is marked and never pre-selected ---
    page.click("#view-ops")
    page.click("#ops-menu [data-ops='hashkv']")
    page.click("#hashkv-run")
    banner = page.locator("#hashkv-banner")
    expect(banner).to_have_text(
        re.compile(rf"^Could not verify: 1 member\(s\) unreachable \({victim['name']}\)")
    )
    expect(banner).not_to_contain_text("nconsisten")
    save_screenshot(page, "ops-hashkv-member-down.png", tmp_path)
    found.check(page, "dark/ops-hashkv-member-down")
    page.click("#ops-menu [data-ops='leader']")
    target = page.locator(f"#leader-target option[value='{victim['id']}']")
    expect(target).to_be_disabled()
    expect(target).to_contain_text("DOWN")
    assert page.locator("#leader-target").input_value() not in ("", victim["id"])
    page.click("#ops-menu [data-ops='defrag']")
    expect(page.locator(f"#defrag-{victim['id']}")).to_be_disabled()
    expect(page.locator(f"#defrag-list li[data-member='{victim['id']}']")).to_contain_text("down")
    found.check(page, "dark/ops-defrag-member-down")
    page.click("#theme-toggle")
    expect(page.locator("html[data-theme='light']")).to_have_count(1)
    found.check(page, "light/ops-defrag-member-down")
    page.click("#ops-menu [data-ops='hashkv']")
    expect(banner).to_be_visible()
    found.check(page, "light/ops-hashkv-member-down")
    page.click("#view-monitor")
    expect(page.locator("#cards")).to_have_class(re.compile(r"\bstale\b"))
    found.check(page, "light/monitor-member-down")
    page.click("#view-ops")
    page.click("#ops-menu [data-ops='snapshot']")
    expect(page.locator(f"#snapshot-member option[value='{victim['id']}']")).to_be_disabled()
    assert page.locator("#snapshot-member").input_value() == leader["id"]

    # --- recovery: up again, the cluster line healthy ---
    cluster.start_member(local)
    expect(page.locator("#cluster-health")).to_have_text("Healthy", timeout=WITHIN)
    expect(line).to_contain_text("3/3 up")
    found.assert_clean()
    assert page_errors == []


SERIES_JS = """(id) => echarts.getInstanceByDom(document.getElementById(id))
  .getOption().series[0].data.map(p => p[1])"""


def test_a_killed_leader_is_replaced_on_the_page_and_its_outage_is_a_gap(
    dashboard_server, etcd_cluster_factory, page, page_errors
):
    cluster = etcd_cluster_factory(point_settings=False)
    server = dashboard_server(ETCD_ENDPOINTS=cluster.endpoints)  # 2 s collection: quick gaps
    sign_in(page, server, PASSWORD)
    line = page.locator("#cluster-line")
    expect(page.locator("#cluster-health")).to_have_text("Healthy", timeout=WITHIN)
    members = page.request.get(server.url + "/api/members").json()["members"]
    old = next(m for m in members if m["is_leader"])
    local = next(m for m in cluster.members if m.client_url == old["client_urls"][0])
    option = page.locator(f"#member-select option[value='{old['id']}']")
    expect(option).to_contain_text("★")

    cluster.kill_member(local)

    expect(line).not_to_contain_text(f"Leader {old['name']}", timeout=WITHIN)
    expect(line).to_contain_text(re.compile(r"Leader m\d"), timeout=WITHIN)
    expect(option).to_contain_text("DOWN")
    expect(option).not_to_contain_text("★")
    page.wait_for_timeout(6000)  # several collection cycles with the member down
    expect(line).not_to_contain_text(f"Leader {old['name']}")
    cluster.start_member(local)
    expect(option).to_contain_text("· up", timeout=WITHIN)

    # The dead member's memory chart breaks where it was down instead of bridging the outage.
    page.select_option("#member-select", old["id"])
    page.wait_for_timeout(5000)  # samples after the restart
    page.select_option("#range-select", "5m")
    page.wait_for_function(
        f"() => {{ const v = ({SERIES_JS})('chartMemory'); "
        "const i = v.indexOf(null); return i > 0 && i < v.length - 1; }",
        timeout=WITHIN,
    )
    assert page_errors == []
