"""AUTH_CACHE_SECONDS: a validated session row is reused per process, and anything that ends a
session or changes its user in this process drops the cached rows at once."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import selectors
from accounts.models import UserSession
from accounts.services import session_create

pytestmark = pytest.mark.django_db

PROTECTED = "/api/user/panel-config"


@pytest.fixture
def cached_sessions(settings):
    settings.AUTH_CACHE_SECONDS = 60
    selectors.forget_session_rows()
    yield
    selectors.forget_session_rows()


def _get(client, token):
    return client.get(PROTECTED, HTTP_AUTHORIZATION=f"Bearer {token}")


def _session_queries(captured) -> int:
    return sum('"accounts_usersession"' in query["sql"] for query in captured.captured_queries)


def test_a_cached_session_is_not_looked_up_again(client, make_user, cached_sessions):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    token, _ = session_create(user=make_user())
    with CaptureQueriesContext(connection) as first:
        assert _get(client, token).status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert _get(client, token).status_code == 200

    assert _session_queries(first) == 1
    assert _session_queries(second) == 0


def test_without_the_cache_every_request_looks_the_session_up(client, make_user, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.AUTH_CACHE_SECONDS = 0
    token, _ = session_create(user=make_user())
    _get(client, token)
    with CaptureQueriesContext(connection) as again:
        assert _get(client, token).status_code == 200

    assert _session_queries(again) == 1


def test_logout_revokes_a_cached_session_at_once(client, make_user, cached_sessions):
    token, _ = session_create(user=make_user())
    assert _get(client, token).status_code == 200

    response = client.post("/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert _get(client, token).status_code == 401


def test_deactivating_the_user_revokes_a_cached_session_at_once(client, make_user, cached_sessions):
    user = make_user()
    token, _ = session_create(user=user)
    assert _get(client, token).status_code == 200

    user.is_active = False
    user.save()

    assert _get(client, token).status_code == 401


def test_expiry_is_checked_on_every_request_even_when_cached(client, make_user, cached_sessions):
    token, session = session_create(user=make_user())
    expires_at = timezone.now() + timedelta(seconds=1)
    UserSession.objects.filter(pk=session.pk).update(expires_at=expires_at)
    assert _get(client, token).status_code == 200  # cached while still valid

    time.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()) + 0.05)

    assert _get(client, token).status_code == 401


def test_another_processs_revocation_is_seen_once_the_entry_ages_out(client, make_user, settings):
    settings.AUTH_CACHE_SECONDS = 60
    selectors.forget_session_rows()
    token, session = session_create(user=make_user())
    assert _get(client, token).status_code == 200
    # Another process deleting the row sends no signal here: only the entry's age protects us.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_usersession WHERE id = %s", [session.pk])
    assert _get(client, token).status_code == 200  # still inside AUTH_CACHE_SECONDS

    settings.AUTH_CACHE_SECONDS = 0.000_001  # the entry is now older than the limit
    assert _get(client, token).status_code == 401
    selectors.forget_session_rows()


def _race_a_lookup_with(revoke, *, make_user, settings) -> tuple[str, int]:
    """A lookup in another thread reads the session row, then the revocation runs in this
    thread, then the lookup stores what it read: the red-team's interleaving, made exact by
    holding the reader between its SELECT and its store. Returns (token, status afterwards)."""
    import threading

    from rest_framework.test import APIClient

    settings.AUTH_CACHE_SECONDS = 60
    selectors.forget_session_rows()
    user = make_user()
    token, _ = session_create(user=user)
    read, revoked = threading.Event(), threading.Event()
    window = selectors._session_rows
    original_put = window.put

    def held_put(key, value, **kwargs):
        if threading.current_thread() is reader:
            read.set()
            revoked.wait(10)
        original_put(key, value, **kwargs)

    def look_up():
        from django.db import connection

        try:
            _get(APIClient(), token)
        finally:
            connection.close()  # the thread's own connection (teardown drops the database)

    reader = threading.Thread(target=look_up)
    window.put = held_put
    try:
        reader.start()
        assert read.wait(10)
        revoke(user, token)
        revoked.set()
        reader.join(10)
    finally:
        window.put = original_put
    status = _get(APIClient(), token).status_code
    selectors.forget_session_rows()
    return token, status


@pytest.mark.django_db(transaction=True)
def test_a_lookup_racing_a_logout_does_not_re_cache_the_session(make_user, settings):
    from rest_framework.test import APIClient

    def logout(_user, token):
        response = APIClient().post("/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200

    _, status = _race_a_lookup_with(logout, make_user=make_user, settings=settings)

    assert status == 401


@pytest.mark.django_db(transaction=True)
def test_a_lookup_racing_a_password_change_does_not_re_cache_the_session(make_user, settings):
    from rest_framework.test import APIClient

    from accounts.tests.conftest import PASSWORD, change_password

    def change(_user, _token):
        response = change_password(APIClient(), "alice", PASSWORD, "another-password-2")
        assert response.status_code == 200

    _, status = _race_a_lookup_with(change, make_user=make_user, settings=settings)

    assert status == 401
