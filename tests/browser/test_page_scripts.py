"""Every page's scripts load and run cleanly: the ES modules are served as JavaScript (a module
served as anything else is refused), the import graph reaches every file under static/js, and no
page or dashboard view logs a JavaScript error or a failed load."""

from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import ROOT, sign_in

PASSWORD = "scripts-pass-1"
SCRIPTS = {path.name for path in (ROOT / "static" / "js").glob("*.js")}


def test_every_page_and_view_loads_its_modules_without_an_error(dashboard_server, page):
    server = dashboard_server()
    problems: list[str] = []
    served: dict[str, str] = {}  # script file name -> its Content-Type

    def console(message):
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    def record(response):
        if "/static/js/" in response.url:
            served[Path(response.url.split("?")[0]).name] = response.headers.get("content-type", "")

    def failed(request):
        # page.goto() cancels the old page's API polls and the browser's own favicon request
        # in flight: navigation, not a fault.
        if request.failure == "net::ERR_ABORTED" and (
            "/api/" in request.url or request.url.endswith("/favicon.svg")
        ):
            return
        problems.append(f"failed: {request.url} ({request.failure})")

    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("console", console)
    page.on("requestfailed", failed)
    page.on("response", record)

    page.goto(server.url + "/change-password")
    expect(page.locator("#change-form")).to_be_visible()
    sign_in(page, server, PASSWORD)  # the login page, then the dashboard's monitor view
    expect(page.locator("#panels .chart").first).to_be_visible()

    page.click("#view-kv")
    expect(page.locator("#kv-tree [role=treeitem]").first).to_be_visible()
    page.click("#view-alerts")
    expect(page.locator("#alerts-rules-table tbody tr").first).to_be_visible()
    page.click("#view-ops")
    expect(page.locator("#audit-table tbody tr").first).to_be_visible()
    page.click("#view-users")
    expect(page.locator("#users-table tbody tr").first).to_be_visible()
    page.click("#view-monitor")
    expect(page.locator("#monitor-view")).to_be_visible()
    # Each view opened straight from its address too, as a bookmark would.
    for path, ready in [
        ("/kv", "#kv-tree [role=treeitem]"),
        ("/alerts", "#alerts-rules-table tbody tr"),
        ("/ops", "#audit-table tbody tr"),
        ("/users", "#users-table tbody tr"),
    ]:
        page.goto(server.url + path)
        expect(page.locator(ready).first).to_be_visible()
    page.wait_for_load_state("networkidle")

    assert problems == []
    assert set(served) == SCRIPTS
    wrong = {name: kind for name, kind in served.items() if not kind.startswith("text/javascript")}
    assert wrong == {}
