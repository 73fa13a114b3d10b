"""Issue 15 item 7: Django admin sessions follow SESSION_TIMEOUT and end with the user's other
sessions (password change, forced change, reset) and with a dashboard logout in the same
browser. Real admin logins through the login form, real API calls."""

import io

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.conftest import PASSWORD, change_password

pytestmark = pytest.mark.django_db


def _admin_browser(username: str = "alice") -> Client:
    browser = Client()
    response = browser.post("/admin/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    assert browser.get("/admin/").status_code == 200
    return browser


def _still_in_admin(browser: Client) -> bool:
    return browser.get("/admin/").status_code == 200


@pytest.fixture
def staff_user(make_user):
    user = make_user(is_staff=True)
    user.is_superuser = True
    user.save()
    return user


def test_admin_session_lives_session_timeout_not_two_weeks(staff_user, settings):
    assert settings.SESSION_COOKIE_AGE == settings.SESSION_TIMEOUT == 3600
    browser = _admin_browser()

    assert 3590 <= browser.session.get_expiry_age() <= 3600
    assert browser.cookies["sessionid"]["max-age"] == 3600


def test_forced_password_change_ends_the_users_admin_sessions(staff_user, admin_user):
    victim = _admin_browser()
    operator = Client()
    operator.force_login(admin_user)

    operator.post(
        "/admin/auth/user/",
        {"action": "force_password_change", "_selected_action": [staff_user.pk]},
    )

    assert not _still_in_admin(victim)
    assert _still_in_admin(operator)


def test_password_change_ends_the_users_admin_sessions(staff_user):
    browser = _admin_browser()

    assert change_password(APIClient(), "alice", PASSWORD, "another-pass-9").status_code == 200

    assert not _still_in_admin(browser)


def test_reset_password_ends_the_users_admin_sessions(staff_user, monkeypatch):
    browser = _admin_browser()
    monkeypatch.setattr("sys.stdin", io.StringIO("reset-pass-12\n"))

    call_command("reset_password", "--username", "alice", "--password-stdin", stdout=io.StringIO())

    assert not _still_in_admin(browser)


def test_dashboard_logout_ends_the_admin_session_of_the_same_browser(staff_user):
    browser = _admin_browser()
    login = browser.post(
        "/api/auth/login",
        {"username": "alice", "password": PASSWORD},
        content_type="application/json",
    )
    assert login.status_code == 200
    csrf = browser.cookies["csrftoken"].value

    assert browser.post("/api/auth/logout", HTTP_X_CSRFTOKEN=csrf).status_code == 200

    assert not _still_in_admin(browser)
