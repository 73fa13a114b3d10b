"""The fleet view and the cluster in use (issue 19): every cluster a row with its status (a dead
one unreachable), sorting and filters, a row opening that cluster's KV and ops with its name in
the header in its environment's colour and words, the picker and the KV tabs agreeing; axe
clean and no sideways scroll at 1440 and 390 px."""

from playwright.sync_api import expect

from tests.browser.axe import Findings, install
from tests.browser.conftest import expect_dashboard_ready, save_screenshot, sign_in

PASSWORD = "fleet-pass-1"


def _token(client, server) -> str:
    answer = client.post(
        server.url + "/api/auth/login", data={"username": "admin", "password": PASSWORD}
    )
    assert answer.ok, answer.text()
    return answer.json()["session_token"]


def _register(client, server, token: str, url: str, name: str, environment: str) -> str:
    answer = client.post(
        server.url + "/api/clusters",
        data={
            "endpoints": url,
            "name": name,
            "labels": {"environment": environment},
            "monitored": True,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status == 201, answer.text()
    return answer.json()["id"]


def _row(page, cluster_id: str):
    return page.locator(f"#fleet-table tr[data-cluster='{cluster_id}']")


def test_the_fleet_lists_every_cluster_and_opens_one_named_in_its_colour(
    dashboard_server, page, page_errors, etcd_cluster_factory, tmp_path, playwright
):
    install(page)
    staging = etcd_cluster_factory(size=1, point_settings=False)
    doomed = etcd_cluster_factory(size=1, point_settings=False)
    server = dashboard_server(HEALTH_PROBE_INTERVAL="1")
    sign_in(page, server, PASSWORD)
    # A client of its own: a login in the page's context would renew the page's CSRF token.
    client = playwright.request.new_context()
    token = _token(client, server)
    staging_id = _register(client, server, token, staging.client_urls[0], "staging-eu", "staging")
    prod_id = _register(client, server, token, doomed.client_urls[0], "prod-us", "prod")
    client.dispose()
    doomed.kill_member(doomed.members[0])
    found = Findings()

    page.click("#view-fleet")
    expect(page).to_have_url(server.url + "/fleet")
    expect(page.locator("#fleet-table tbody tr")).to_have_count(3)
    expect(_row(page, prod_id).locator(".cl-status")).to_have_text("Unreachable", timeout=30_000)
    expect(_row(page, staging_id).locator(".cl-status")).to_have_text("Healthy", timeout=30_000)
    expect(_row(page, staging_id).locator("td[data-label=Members]")).to_have_text("1/1 · margin 0")
    expect(_row(page, staging_id).locator("td[data-label='Last collection']")).to_contain_text(
        "s ago"
    )
    expect(_row(page, prod_id).locator(".env-badge")).to_have_text("PROD")
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900 if width > 800 else 844})
        found.check(page, f"{width}/fleet")
        save_screenshot(page, f"fleet-{width}.png", tmp_path)
    page.set_viewport_size({"width": 1440, "height": 900})

    # Worst first by default; a header sorts by its column, again the other way.
    expect(page.locator("#fleet-table tbody tr").first).to_have_attribute("data-cluster", prod_id)
    page.click("button.fleet-sort[data-sort=name]")
    names = page.locator("#fleet-table tbody tr .fleet-name-button")
    expect(names).to_have_text(["default", "prod-us", "staging-eu"])
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Cluster")
    page.click("button.fleet-sort[data-sort=name]")
    expect(names).to_have_text(["staging-eu", "prod-us", "default"])
    page.select_option("#fleet-status-filter", "unreachable")
    expect(names).to_have_text(["prod-us"])
    page.select_option("#fleet-status-filter", "")
    page.fill("#fleet-label-filter", "environment=staging")
    expect(names).to_have_text(["staging-eu"])

    # The keyboard opens the staging cluster's KV view: its name and environment in the header,
    # the picker on it, its (shared, fixed) KV tab selected.
    _row(page, staging_id).locator("button.fleet-open[data-view=kv]").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#kv-view")).to_be_visible()
    expect(page).to_have_url(f"{server.url}/kv?cluster={staging_id}")
    header = page.locator("#cluster-current")
    expect(header).to_have_attribute("data-environment", "staging")
    expect(header.locator("#cluster-current-name")).to_have_text("staging-eu")
    expect(header.locator(".env-badge")).to_have_text("STAGING")
    expect(page.locator("#cluster-select")).to_have_value(staging_id)
    expect(page.locator(f".kv-tab[data-tab-id='{staging_id}']")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#kv-info")).to_contain_text("staging-eu")
    expect(page.locator("#kv-info")).to_contain_text("Version")
    found.check(page, "1440/kv-staging")

    page.click("#view-ops")
    expect(page).to_have_url(f"{server.url}/ops?cluster={staging_id}")
    expect(header.locator("#cluster-current-name")).to_have_text("staging-eu")
    expect(page.locator("#ops-info")).to_contain_text("staging-eu")
    expect(page.locator("#ops-info")).to_contain_text("1 member(s)")
    page.click("#ops-menu button[data-ops=defrag]")
    expect(page.locator("#defrag-list li")).to_have_count(1)
    found.check(page, "1440/ops-staging")
    page.set_viewport_size({"width": 390, "height": 844})
    found.check(page, "390/ops-staging")
    save_screenshot(page, "ops-staging-390.png", tmp_path)
    page.set_viewport_size({"width": 1440, "height": 900})

    # The picker takes every view back to the default cluster; the KV tabs follow it.
    page.select_option("#cluster-select", "default")
    expect(page.locator("#defrag-list li")).to_have_count(3)
    expect(header).not_to_have_attribute("data-environment", "staging")
    page.click("#view-kv")
    expect(page.locator(".kv-tab[data-tab-id='default']")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator(f".kv-tab[data-tab-id='{staging_id}']")).to_have_count(0)

    # A reload keeps the cluster the address names.
    page.goto(f"{server.url}/?cluster={staging_id}")
    expect_dashboard_ready(page)
    expect(header.locator("#cluster-current-name")).to_have_text("staging-eu")
    expect(page.locator("#member-select option")).to_have_count(1)

    found.assert_clean()
    assert page_errors == []
