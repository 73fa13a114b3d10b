"""POST /api/auth/change-password (zero-token): every row of the reference's table, plus the
differences we chose: sessions end on change, length counted in characters."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import UserSession
from accounts.services import initial_password_path, session_create
from accounts.tests.conftest import PASSWORD, change_password, failures, login
from audit.models import AuditLog

pytestmark = pytest.mark.django_db

NEW = "brand-new-pass"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "alice", "old_password": PASSWORD},
        {"username": "alice", "new_password": NEW},
        {"old_password": PASSWORD, "new_password": NEW},
        {"username": "alice", "old_password": "", "new_password": NEW},
    ],
)
def test_change_password_without_all_fields_is_400(client, make_user, body):
    make_user()

    response = client.post("/api/auth/change-password", body, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": "username, old_password and new_password required"}


def test_change_password_of_unknown_user_is_401_and_audited(client):
    response = change_password(client, "nobody", "x" * 10, NEW)

    assert response.status_code == 401
    assert response.json() == {"error": "wrong username or old password"}
    assert AuditLog.objects.get(operation="change_password").success is False


def test_change_password_of_locked_account_is_refused_before_any_check(client, make_user):
    user = make_user(failed=5, locked_until=timezone.now() + timedelta(seconds=30))

    response = change_password(client, "alice", PASSWORD, NEW)

    assert response.status_code == 401
    assert response.json() == {"error": "too many failed sign-in attempts, try again in 1 minute"}
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert AuditLog.objects.get(operation="change_password").success is False


def test_wrong_old_password_counts_on_the_shared_counter(client, make_user):
    user = make_user()

    response = change_password(client, "alice", "not-the-password", NEW)

    assert response.status_code == 401
    assert response.json() == {"error": "wrong username or old password"}
    assert failures(user) == 1


def test_too_short_new_password_is_400_not_counted_not_audited(client, make_user, settings):
    settings.MIN_PASSWORD_LENGTH = 8
    user = make_user()

    response = change_password(client, "alice", PASSWORD, "short")

    assert response.status_code == 400
    assert response.json() == {
        "error": "This password is too short. It must contain at least 8 characters."
    }
    assert failures(user) == 0
    assert not AuditLog.objects.exists()


def test_minimum_length_counts_characters_not_bytes(client, make_user, settings):
    settings.MIN_PASSWORD_LENGTH = 8
    make_user()

    short = change_password(client, "alice", PASSWORD, "ü" * 7)  # 14 bytes, 7 characters
    ok = change_password(client, "alice", PASSWORD, "ü" * 8)

    assert short.status_code == 400
    assert ok.status_code == 200


def test_very_long_passwords_work(client, make_user):
    make_user()
    long_password = "p" * 200  # bcrypt would fail past 72 bytes; Argon2 does not

    assert change_password(client, "alice", PASSWORD, long_password).status_code == 200
    assert login(client, "alice", long_password).json()["authenticated"] is True


def test_new_password_equal_to_old_is_400_and_not_counted(client, make_user):
    user = make_user()

    response = change_password(client, "alice", PASSWORD, PASSWORD)

    assert response.status_code == 400
    assert response.json() == {"error": "new password must differ from the old one"}
    assert failures(user) == 0
    assert not AuditLog.objects.exists()


def test_successful_change_resets_state_ends_sessions_and_issues_none(client, make_user):
    user = make_user(failed=3)
    token, _ = session_create(user=user)

    response = change_password(client, "alice", PASSWORD, NEW)

    assert response.status_code == 200
    assert response.json() == {"message": "password changed, please log in with the new password"}
    assert "etcdmonitor_session" not in response.cookies
    user.refresh_from_db()
    assert user.check_password(NEW) and user.password.startswith("argon2")
    assert failures(user) == 0
    assert not UserSession.objects.filter(user=user).exists()
    me = client.get("/api/user/panel-config", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == 401
    assert AuditLog.objects.get(operation="change_password").success is True
    assert not AuditLog.objects.filter(operation="initial_password_file_deleted").exists()


def test_forced_change_deletes_initial_password_file_then_normal_login_works(client, settings):
    from accounts.services import admin_bootstrap

    get_user_model().objects.all().delete()
    path = admin_bootstrap()
    initial = path.read_text().strip()
    assert login(client, "admin", initial).json()["must_change_password"] is True

    response = change_password(client, "admin", initial, NEW)

    assert response.status_code == 200
    assert not initial_password_path().exists()
    entry = AuditLog.objects.get(operation="initial_password_file_deleted")
    assert (entry.username, entry.target, entry.result, entry.success) == (
        "system",
        "system",
        "ok",
        True,
    )
    body = login(client, "admin", NEW).json()
    assert body["authenticated"] is True and body["session_token"]
    status = client.get("/api/auth/status").json()
    assert status["initial_setup_pending"] is False
