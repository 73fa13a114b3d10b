"""POST /api/auth/login: every row of the reference's table (§1.1), in English."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import UserSession
from accounts.services import token_hash
from accounts.tests.conftest import PASSWORD, failures, login
from audit.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "alice"},
        {"password": "x"},
        {"username": "", "password": "x"},
        {"username": "alice", "password": ""},
    ],
)
def test_login_without_both_fields_is_400(client, make_user, body):
    make_user()

    response = client.post("/api/auth/login", body, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": "username and password required"}
    assert not AuditLog.objects.filter(operation="login").exists()


def test_login_with_malformed_json_is_400(client):
    response = client.post("/api/auth/login", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"error": "username and password required"}


def test_login_of_unknown_user_is_401_and_audited(client):
    response = login(client, "nobody", "whatever", REMOTE_ADDR="10.1.2.3")

    assert response.status_code == 401
    assert response.json() == {"error": "wrong username or password"}
    entry = AuditLog.objects.get(operation="login")
    assert (entry.username, entry.success, entry.target, entry.client_ip) == (
        "nobody",
        False,
        "10.1.2.3",
        "10.1.2.3",
    )
    assert "whatever" not in entry.params + entry.result


def test_login_with_wrong_password_counts_a_failure(client, make_user):
    user = make_user()

    response = login(client, "alice", "wrong-password")

    assert response.status_code == 401
    assert response.json() == {"error": "wrong username or password"}
    assert failures(user) == 1
    assert AuditLog.objects.get(operation="login").success is False


def test_login_of_locked_account_reports_minutes_even_with_the_right_password(client, make_user):
    user = make_user(failed=5, locked_until=timezone.now() + timedelta(seconds=630))

    response = login(client, "alice", PASSWORD)

    assert response.status_code == 401
    assert response.json() == {"error": "too many failed sign-in attempts, try again in 11 minutes"}
    assert not UserSession.objects.filter(user=user).exists()
    entry = AuditLog.objects.get(operation="login")
    assert (entry.success, entry.result) == (
        False,
        "too many failed sign-in attempts, try again in 11 minutes",
    )


def test_must_change_login_issues_no_session_and_clears_the_lock_counter(client, make_user):
    user = make_user(must_change=True, failed=2)

    response = login(client, "alice", PASSWORD)

    assert response.status_code == 200
    assert response.json() == {
        "username": "alice",
        "must_change_password": True,
        "authenticated": False,
    }
    assert "etcdmonitor_session" not in response.cookies
    assert not UserSession.objects.filter(user=user).exists()
    assert failures(user) == 0  # the right password from this address
    entry = AuditLog.objects.get(operation="login")
    assert (entry.success, entry.result) == (True, "must_change_password")


def test_login_issues_a_hashed_session_token_and_cookie(client, make_user, settings):
    settings.SESSION_TIMEOUT = 3600
    user = make_user(failed=3)
    before = int(timezone.now().timestamp())

    response = login(client, "alice", PASSWORD)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "username",
        "expires_at",
        "session_token",
        "must_change_password",
        "authenticated",
    }
    assert (body["username"], body["must_change_password"], body["authenticated"]) == (
        "alice",
        False,
        True,
    )
    assert before + 3599 <= body["expires_at"] <= before + 3602
    token = body["session_token"]
    assert len(token) == 64 and int(token, 16) >= 0
    stored = UserSession.objects.get(user=user)
    assert stored.token_hash == token_hash(token) and token not in stored.token_hash
    cookie = response.cookies["etcdmonitor_session"]
    assert cookie.value == token
    assert cookie["httponly"] and cookie["path"] == "/" and cookie["samesite"] == "Lax"
    assert cookie["expires"]
    user.refresh_from_db()
    assert user.last_login is not None
    assert failures(user) == 0
    assert AuditLog.objects.get(operation="login").result == "ok"
    assert token not in json.dumps([e.to_dict() for e in AuditLog.objects.all()])


def test_session_timeout_zero_means_never_expires(client, make_user, settings):
    settings.SESSION_TIMEOUT = 0
    make_user()

    response = login(client, "alice", PASSWORD)

    assert response.json()["expires_at"] == 0
    assert int(response.cookies["etcdmonitor_session"]["max-age"]) >= 10 * 365 * 24 * 3600
    token = response.json()["session_token"]
    status = client.get("/api/auth/status", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert (status["authenticated"], status["expires_at"]) == (True, 0)


def test_each_login_gets_a_distinct_token(client, make_user):
    make_user()

    tokens = {login(client, "alice", PASSWORD).json()["session_token"] for _ in range(3)}

    assert len(tokens) == 3
