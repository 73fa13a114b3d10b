"""The Users view in a real browser: an admin creates a user (the policy's refusal shown in the
dialog), edits roles with selects, deactivates, resets and unlocks; the new user is forced to
change the password, then sees no Users view and is refused by the API. Checked by axe at
1440 and 390 px, keyboard-only for the dialog."""

import re

from playwright.sync_api import expect

from tests.browser.axe import Findings, install
from tests.browser.conftest import (
    expect_dashboard_ready,
    expect_page_ready,
    save_screenshot,
    sign_in,
)

ADMIN_PASSWORD = "users-admin-pass-1"
FIRST = "quiet-harbor-42"
RESET = "steady-lantern-9"
CHOSEN = "amber-canyon-77"


def _row(page, username: str):
    return page.locator(f"#users-table tbody tr[data-username='{username}']")


def _sign_in_as(page, server, username: str, password: str) -> None:
    page.goto(server.url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")


def test_admin_manages_users_and_a_new_user_is_forced_to_change(
    dashboard_server, page, page_errors, tmp_path
):
    install(page)
    server = dashboard_server()
    found = Findings()
    sign_in(page, server, ADMIN_PASSWORD)
    expect(page.locator("#change-password-link")).to_be_visible()

    page.click("#view-users")
    expect(page).to_have_url(server.url + "/users")
    expect(_row(page, "admin")).to_contain_text("every other cluster: admin")

    # Create, keyboard only: the policy's refusal is shown in the dialog, nothing is stored.
    page.focus("#user-new")
    page.keyboard.press("Enter")
    expect(page.locator("#user-dialog")).to_be_visible()
    expect(page.locator("#user-username")).to_be_focused()
    page.keyboard.type("olivia")
    page.keyboard.press("Tab")
    page.keyboard.type("password")
    page.keyboard.press("Enter")
    expect(page.locator("#user-error")).to_have_text("This password is too common.")
    found.check(page, "1440/user-dialog", "#user-dialog")
    page.fill("#user-password", FIRST)
    page.select_option("#user-role-any", "operator")
    page.click("#user-role-add")
    expect(page.locator("#user-role-rows input").first).to_be_focused()
    page.keyboard.type("c-1")
    page.locator("#user-role-rows select").first.select_option("admin")
    # A key prefix scope on c-1: a write prefix outside the read ones is the server's refusal.
    page.click("#user-scope-add")
    expect(page.locator("#user-scope-rows .scope-cluster").first).to_be_focused()
    page.keyboard.type("c-1")
    page.fill("#user-scope-rows .scope-read", "/app/")
    page.fill("#user-scope-rows .scope-write", "/other/")
    page.click("#user-save")
    expect(page.locator("#user-error")).to_contain_text("not within one of its read prefixes")
    page.fill("#user-scope-rows .scope-write", "/app/config/")
    page.click("#user-save")
    expect(page.locator("#user-dialog")).to_be_hidden()
    olivia = _row(page, "olivia")
    expect(olivia).to_contain_text("must change password")
    expect(olivia).to_contain_text("c-1: admin")
    expect(olivia).to_contain_text("every other cluster: operator")
    expect(olivia).to_contain_text("c-1 keys: read /app/; write /app/config/")
    found.check(page, "1440/users")

    # Deactivate (confirmed), then activate again.
    olivia.get_by_role("button", name="Deactivate olivia").click()
    page.click("#confirm-ok")
    expect(olivia).to_contain_text("inactive")
    olivia.get_by_role("button", name="Activate olivia").click()
    expect(olivia).not_to_contain_text("inactive")

    # Reset the password from the edit dialog.
    olivia.get_by_role("button", name="Edit olivia").click()
    expect(page.locator("#user-password")).to_be_focused()
    expect(page.locator("#user-scope-rows .scope-read")).to_have_value("/app/")
    page.fill("#user-password", RESET)
    page.click("#user-save")
    expect(page.locator("#user-dialog")).to_be_hidden()
    expect(olivia).to_contain_text("c-1 keys: read /app/; write /app/config/")

    # Lock her out with wrong passwords (another browser context), then unlock from the view.
    for _ in range(5):
        page.request.post(
            server.url + "/api/auth/login", data={"username": "olivia", "password": "wrong-one-1"}
        )
    page.reload()
    expect_dashboard_ready(page)
    expect(olivia).to_contain_text("locked")
    olivia.get_by_role("button", name="Unlock olivia").click()
    expect(olivia).not_to_contain_text("locked")

    # A phone: the view and its dialog fit 390 px and pass axe.
    page.set_viewport_size({"width": 390, "height": 844})
    found.check(page, "390/users")
    save_screenshot(page, "phone-users.png", tmp_path)
    page.click("#user-new")
    found.check(page, "390/user-dialog", "#user-dialog")
    page.keyboard.press("Escape")
    page.set_viewport_size({"width": 1440, "height": 900})

    # The new user: forced to change the reset password, then a viewer of no Users view.
    page.click("#logout-btn")
    expect(page).to_have_url(re.compile(r"/login$"))
    _sign_in_as(page, server, "olivia", RESET)
    expect(page).to_have_url(re.compile(r"/change-password\?username=olivia&forced=1"))
    expect_page_ready(page)
    page.fill("#cp-old", RESET)
    page.fill("#cp-new", CHOSEN)
    page.fill("#cp-confirm", CHOSEN)
    page.click("#change-submit")
    expect(page).to_have_url(re.compile(r"/login$"), timeout=30_000)
    _sign_in_as(page, server, "olivia", CHOSEN)
    expect(page).to_have_url(server.url + "/")
    expect_dashboard_ready(page)
    expect(page.locator("#view-users")).to_have_count(0)
    expect(page.locator("#change-password-link")).to_have_attribute(
        "href", "/change-password?username=olivia"
    )
    refused = page.request.get(server.url + "/api/users")
    assert refused.status == 403
    assert refused.json() == {"error": "permission denied: managing users needs the admin role"}
    page.goto(server.url + "/users")
    expect_dashboard_ready(page)
    expect(page).to_have_url(server.url + "/")

    found.assert_clean()
    assert page_errors == []


def test_the_change_password_link_leads_to_the_form_for_the_signed_in_user(
    dashboard_server, page, page_errors
):
    server = dashboard_server()
    sign_in(page, server, ADMIN_PASSWORD)

    page.focus("#change-password-link")
    page.keyboard.press("Enter")

    expect(page).to_have_url(server.url + "/change-password?username=admin")
    expect_page_ready(page)  # else the click is the browser's own submit: a reload, no error
    expect(page.locator("#cp-username")).to_have_value("admin")
    page.fill("#cp-old", ADMIN_PASSWORD)
    page.fill("#cp-new", "password")
    page.fill("#cp-confirm", "password")
    page.click("#change-submit")
    expect(page.locator("#change-error")).to_have_text("This password is too common.")
    assert page_errors == []
