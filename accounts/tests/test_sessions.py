"""Bearer sessions: the authentication class, the cookie with its CSRF rule, logout, status and
revocation."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import UserSession
from accounts.services import session_create, sessions_purge_expired, token_hash
from accounts.tests.conftest import PASSWORD, login
from audit.models import AuditLog

pytestmark = pytest.mark.django_db

PROTECTED = "/api/user/panel-config"


def test_no_credentials_is_401_with_bearer_challenge(client):
    response = client.get(PROTECTED)

    assert response.status_code == 401
    assert response.json() == {"error": "not authenticated"}
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer ", "Bearer nonsense", "Bearer " + "a" * 64])
def test_wrong_bearer_token_is_401(client, header):
    response = client.get(PROTECTED, HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json() == {"error": "not authenticated"}


def test_scheme_is_case_sensitive(client, make_user):
    token, _ = session_create(user=make_user())

    assert client.get(PROTECTED, HTTP_AUTHORIZATION=f"bearer {token}").status_code == 401
    assert client.get(PROTECTED, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_expired_session_is_refused_and_removed(client, make_user):
    token, session = session_create(user=make_user())
    UserSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert client.get(PROTECTED, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert not UserSession.objects.filter(pk=session.pk).exists()


def test_inactive_user_session_is_refused(client, make_user):
    user = make_user()
    token, _ = session_create(user=user)
    user.is_active = False
    user.save()

    assert client.get(PROTECTED, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_sessions_survive_a_restart_because_they_live_in_the_database(client, make_user):
    token = login(client, "alice", PASSWORD).json()["session_token"] if make_user() else None
    fresh_process_client = APIClient()  # nothing in memory is shared with the login

    response = fresh_process_client.get(PROTECTED, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert UserSession.objects.filter(token_hash=token_hash(token)).exists()


def test_cookie_authenticates_safe_requests(make_user):
    token, _ = session_create(user=make_user())
    browser = APIClient(enforce_csrf_checks=True)
    browser.cookies["etcdmonitor_session"] = token

    assert browser.get(PROTECTED).status_code == 200


def test_cookie_authenticated_unsafe_request_needs_the_csrf_token(make_user):
    token, _ = session_create(user=make_user())
    browser = APIClient(enforce_csrf_checks=True)
    browser.cookies["etcdmonitor_session"] = token

    refused = browser.put(PROTECTED, {"panels": []}, format="json")

    assert refused.status_code == 403
    assert refused.json()["error"].startswith("CSRF failed")
    csrf = browser.get("/api/auth/status").cookies["csrftoken"].value
    accepted = browser.put(PROTECTED, {"panels": []}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert accepted.status_code == 200


def test_bearer_requests_need_no_csrf_token(make_user):
    token, _ = session_create(user=make_user())
    api = APIClient(enforce_csrf_checks=True)

    response = api.put(
        PROTECTED, {"panels": []}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert response.status_code == 200


def test_invalid_cookie_is_401(client):
    client.cookies["etcdmonitor_session"] = "stale"

    assert client.get(PROTECTED).status_code == 401


def test_logout_ends_the_session_clears_cookie_and_audits(client, make_user):
    make_user()
    token = login(client, "alice", PASSWORD, REMOTE_ADDR="10.9.9.9").json()["session_token"]

    response = client.post(
        "/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="10.9.9.9"
    )

    assert response.status_code == 200
    assert response.json() == {"message": "logged out"}
    cookie = response.cookies["etcdmonitor_session"]
    assert cookie.value == "" and cookie["max-age"] == 0
    assert not UserSession.objects.exists()
    entry = AuditLog.objects.get(operation="logout")
    assert (entry.username, entry.target) == ("alice", "10.9.9.9")
    again = client.post("/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert again.status_code == 401


def test_logout_ends_only_the_presented_session(client, make_user):
    user = make_user()
    first, _ = session_create(user=user)
    second, _ = session_create(user=user)

    client.post("/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {first}")

    assert client.get(PROTECTED, HTTP_AUTHORIZATION=f"Bearer {second}").status_code == 200


def test_status_unauthenticated_shape(client, settings):
    settings.OPS_ENABLED = False
    settings.APP_VERSION = "9.9.9"

    response = client.get("/api/auth/status", HTTP_AUTHORIZATION="Bearer garbage")

    assert response.status_code == 200
    assert response.json() == {
        "auth_required": True,
        "authenticated": False,
        "initial_setup_pending": False,
        "app_version": "9.9.9",
        "ops_enabled": False,
        "etcd_auth_required": False,
    }


def test_status_authenticated_adds_username_and_expiry(client, make_user):
    token, session = session_create(user=make_user())

    body = client.get("/api/auth/status", HTTP_AUTHORIZATION=f"Bearer {token}").json()

    assert body["authenticated"] is True
    assert body["username"] == "alice"
    assert body["expires_at"] == int(session.expires_at.timestamp())
    assert "must_change_password" not in body


def test_status_with_expired_session_says_not_authenticated(client, make_user):
    token, session = session_create(user=make_user())
    UserSession.objects.filter(pk=session.pk).update(expires_at=timezone.now())

    body = client.get("/api/auth/status", HTTP_AUTHORIZATION=f"Bearer {token}").json()

    assert body["authenticated"] is False and "username" not in body


def test_status_initial_setup_pending_follows_the_file(client, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    assert client.get("/api/auth/status").json()["initial_setup_pending"] is False

    (tmp_path / "initial-admin-password").write_text("x\n")

    body = client.get("/api/auth/status").json()
    assert body["initial_setup_pending"] is True
    assert "must_change_password" not in body


def test_purge_removes_only_expired_sessions(make_user):
    user = make_user()
    _, live = session_create(user=user)
    _, old = session_create(user=user)
    UserSession.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(hours=1))

    from accounts.tasks import purge_expired_sessions

    assert purge_expired_sessions() == 1
    assert list(UserSession.objects.values_list("pk", flat=True)) == [live.pk]
    assert sessions_purge_expired() == 0
