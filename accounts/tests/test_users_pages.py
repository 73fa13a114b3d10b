"""The dashboard page for users: the Users view only for admins, the change-password link,
and the forced change before anything else."""

import pytest
from django.test import Client

from accounts.models import AccountProfile
from accounts.services import session_create

pytestmark = pytest.mark.django_db


def browser_of(user) -> Client:
    token, _ = session_create(user=user)
    browser = Client()
    browser.cookies["etcdmonitor_session"] = token
    return browser


def test_an_admin_sees_the_users_view_and_the_password_link(admin_user):
    response = browser_of(admin_user).get("/users")

    assert response.status_code == 200
    assert b'id="view-users"' in response.content and b'id="users-view"' in response.content
    assert b'href="/change-password?username=admin"' in response.content
    assert b'"view": "users"' in response.content


def test_a_viewer_gets_no_users_view_even_by_its_address(make_user):
    response = browser_of(make_user("bob")).get("/users")

    assert response.status_code == 200
    assert b'id="view-users"' not in response.content and b'id="users-view"' not in response.content
    assert b'"view": "monitor"' in response.content
    assert b'href="/change-password?username=bob"' in response.content


def test_a_session_that_must_change_the_password_is_sent_to_the_form(make_user):
    bob = make_user("bob")
    browser = browser_of(bob)
    AccountProfile.objects.filter(user=bob).update(must_change_password=True)

    response = browser.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/change-password?username=bob&forced=1"
