"""Browser tests: Playwright drives Debian's Chromium against `manage.py runmonitor`.

Each server is a real subprocess (embedded mode: its own SQLite under a temp DATA_DIR, the
in-process collector every 2 s) pointed at the session etcd cluster, exactly what `make run`
serves. Nothing is mocked.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.servers import runmonitors

# Sync Playwright runs an event loop in the test thread; Django fixtures must still work.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# The suite shares 2 cores with etcd, Postgres and the collector: be patient, not flaky.
expect.set_options(timeout=15_000)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {
        **browser_context_args,
        "viewport": {"width": 1440, "height": 900},
        "accept_downloads": True,
    }


@pytest.fixture
def dashboard_server(etcd_cluster, tmp_path):
    """Start runmonitor servers on the session cluster; each is stopped by its PID afterwards.

    Keyword arguments override the environment, e.g. a private cluster's ETCD_ENDPOINTS.
    """
    endpoints = ",".join(etcd_cluster.client_urls)
    with runmonitors(tmp_path, ETCD_ENDPOINTS=endpoints, COLLECTOR_INTERVAL="2") as start:
        yield start


@pytest.fixture
def api(playwright):
    """An API client apart from the page (its sign-ins must not replace the page's cookie)."""
    context = playwright.request.new_context()
    yield context
    context.dispose()


def bearer(api, server, username: str, password: str) -> dict:
    """The Authorization header of a fresh API sign-in of `username` on `server`."""
    answer = api.post(
        server.url + "/api/auth/login", data={"username": username, "password": password}
    )
    assert answer.ok, answer.text()
    return {"Authorization": f"Bearer {answer.json()['session_token']}"}


def sign_in_as(page, server, username: str, password: str) -> None:
    """Sign the page's user out, then `username` in through the form, to a ready dashboard."""
    page.click("#logout-btn")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    expect(page).to_have_url(server.url + "/")
    expect_dashboard_ready(page)


def sign_in(page, server, password: str) -> None:
    """Set admin's first password through the API, then log in through the form."""
    answer = page.request.post(
        server.url + "/api/auth/change-password",
        data={
            "username": "admin",
            "old_password": server.initial_password(),
            "new_password": password,
        },
    )
    assert answer.ok
    page.goto(server.url + "/login")
    page.fill("#username", "admin")
    page.fill("#password", password)
    page.click("#login-submit")
    expect(page).to_have_url(server.url + "/")
    expect_dashboard_ready(page)


def expect_page_ready(page) -> None:
    """Wait until the page's script (app.js, login.js, change-password.js) has wired its
    controls: a click before that is silently lost, or is the browser's own form submit.

    Needed after a navigation the page made itself (a link, `location.assign`): `to_have_url`
    passes once the address changed, before the new page's module scripts have run."""
    expect(page.locator("html[data-ready='true']")).to_have_count(1)


def expect_dashboard_ready(page) -> None:
    """Wait until app.js has wired the dashboard's controls."""
    expect_page_ready(page)


def open_slash_dir(tree) -> None:
    """Expand the "/" directory (keys starting with "/") under the tree's root."""
    slash = tree.locator(".kv-node[data-key='/']")
    expect(slash).to_have_count(2)  # the root row and, once listed, the "/" directory
    slash.last.click()


@pytest.fixture
def page_errors(page):
    """Uncaught page errors; a test asserts none happened."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def save_screenshot(page, name: str, tmp_path: Path) -> Path:
    """Into the test's tmp dir; also into docs/screenshots when UPDATE_SCREENSHOTS=1."""
    target = tmp_path / name
    page.screenshot(path=str(target))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, SCREENSHOTS / name)
    return target
