"""The Django admin: users with lock state and actions."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.tests.conftest import failures, locked_until, profile, seed_failures
from audit.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_user):
    browser = Client()
    browser.force_login(admin_user)
    return browser


def test_users_list_shows_lock_state(staff, make_user):
    make_user("locked-user", failed=5, locked_until=timezone.now() + timedelta(minutes=5))

    response = staff.get("/admin/auth/user/")

    assert response.status_code == 200
    assert b"locked-user" in response.content
    assert b"locked" in response.content


def test_unlock_action_clears_the_lock(staff, make_user):
    user = make_user(failed=5, locked_until=timezone.now() + timedelta(minutes=5))

    staff.post("/admin/auth/user/", {"action": "unlock_accounts", "_selected_action": [user.pk]})

    assert (failures(user), locked_until(user)) == (0, None)
    assert AuditLog.objects.filter(operation="admin_unlock", target=user.username).exists()


def test_force_password_change_action(staff, make_user, client):
    from accounts.services import session_create

    user = make_user()
    token, _ = session_create(user=user)

    staff.post(
        "/admin/auth/user/", {"action": "force_password_change", "_selected_action": [user.pk]}
    )

    assert profile(user).must_change_password is True
    assert (
        client.get("/api/user/panel-config", HTTP_AUTHORIZATION=f"Bearer {token}").status_code
        == 401
    )


def test_admin_login_obeys_the_lockout(admin_user, settings):
    seed_failures("admin", 5, blocked_until=timezone.now() + timedelta(minutes=5))
    browser = Client()

    response = browser.post(
        "/admin/login/", {"username": "admin", "password": "admin-test-password"}
    )

    assert response.status_code == 200  # the form again, not a redirect into the admin
    assert "_auth_user_id" not in browser.session


def test_admin_login_works_for_an_unlocked_staff_user(admin_user):
    browser = Client()

    response = browser.post(
        "/admin/login/", {"username": "admin", "password": "admin-test-password"}
    )

    assert response.status_code == 302
    assert AuditLog.objects.filter(operation="admin_login", success=True).exists()
