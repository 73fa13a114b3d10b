"""The Django admin: users with lock state and actions."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from accounts.tests.conftest import failures, locked_until, login, profile, seed_failures
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


def _inline(**fields):
    base = {
        "account_profile-TOTAL_FORMS": "1",
        "account_profile-INITIAL_FORMS": "0",
        "account_profile-MIN_NUM_FORMS": "0",
        "account_profile-MAX_NUM_FORMS": "1",
    }
    return base | {f"account_profile-0-{name}": value for name, value in fields.items()}


def test_a_user_added_in_the_admin_must_change_the_password(staff, client):
    response = staff.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "password1": "quiet-harbor-42",
            "password2": "quiet-harbor-42",
            "usable_password": "true",
            **_inline(roles='{"*": "operator"}'),
        },
    )

    assert response.status_code == 302, response.content[:2000]
    user = get_user_model().objects.get(username="newbie")
    assert (profile(user).must_change_password, profile(user).roles) == (True, {"*": "operator"})
    assert login(client, "newbie", "quiet-harbor-42").json()["must_change_password"] is True


def test_the_admin_add_form_refuses_a_common_password(staff, settings):
    settings.MIN_PASSWORD_LENGTH = 8
    response = staff.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "password1": "password",
            "password2": "password",
            "usable_password": "true",
            **_inline(roles="{}"),
        },
    )

    assert response.status_code == 200
    assert b"This password is too common." in response.content
    assert not get_user_model().objects.filter(username="newbie").exists()


def test_the_admin_refuses_a_bad_role_map(staff, make_user):
    user = make_user()
    response = staff.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": "alice",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "account_profile-TOTAL_FORMS": "1",
            "account_profile-INITIAL_FORMS": "1",
            "account_profile-MIN_NUM_FORMS": "0",
            "account_profile-MAX_NUM_FORMS": "1",
            "account_profile-0-id": profile(user).pk,
            "account_profile-0-user": user.pk,
            "account_profile-0-roles": '{"*": "root"}',
        },
    )

    assert response.status_code == 200
    assert b"must be one of" in response.content
    assert profile(user).roles == {}


def test_a_password_set_in_the_admin_is_a_reset(staff, make_user, client):
    user = make_user()

    response = staff.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "quiet-harbor-42", "password2": "quiet-harbor-42", "usable_password": "true"},
    )

    assert response.status_code == 302
    assert profile(user).must_change_password is True
    assert login(client, "alice", "quiet-harbor-42").json()["must_change_password"] is True
    assert AuditLog.objects.filter(operation="admin_force_password_change").exists()


def test_the_admin_sets_kv_scopes_and_refuses_a_write_outside_the_reads(staff):
    def add(username, scopes):
        return staff.post(
            "/admin/auth/user/add/",
            {
                "username": username,
                "password1": "quiet-harbor-42",
                "password2": "quiet-harbor-42",
                "usable_password": "true",
                **_inline(roles="{}", kv_scopes=scopes),
            },
        )

    good = add("scoped", '{"c-1": {"read": ["/app/"], "write": ["/app/config/"]}}')
    bad = add("wrong", '{"c-1": {"read": ["/app/"], "write": ["/etc/"]}}')

    assert good.status_code == 302, good.content[:2000]
    user = get_user_model().objects.get(username="scoped")
    assert profile(user).kv_scopes == {"c-1": {"read": ["/app/"], "write": ["/app/config/"]}}
    assert bad.status_code == 200 and b"not within one of its read prefixes" in bad.content
    assert not get_user_model().objects.filter(username="wrong").exists()
