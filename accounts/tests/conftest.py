"""Fixtures of the accounts tests: users in known states and a plain API client."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AccountProfile, LoginThrottle

PASSWORD = "correct-horse-1"


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    """Each accounts test has its own DATA_DIR (0700) for the initial password file."""
    directory = tmp_path / "data"
    directory.mkdir(mode=0o700)
    settings.DATA_DIR = directory
    return directory


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def make_user(db):
    """`make_user("alice", must_change=False, failed=0, locked_until=None)` with PASSWORD."""

    def make(
        username="alice",
        *,
        password=PASSWORD,
        must_change=False,
        failed=0,
        locked_until=None,
        is_staff=False,
    ):
        user = get_user_model().objects.create_user(
            username=username, password=password, is_staff=is_staff
        )
        AccountProfile.objects.create(user=user, must_change_password=must_change)
        if failed or locked_until:
            seed_failures(username, failed, blocked_until=locked_until)
        return user

    return make


def profile(user) -> AccountProfile:
    return AccountProfile.objects.get(user=user)


TEST_CLIENT_IP = "127.0.0.1"  # REMOTE_ADDR of Django's test clients


def _lock_row(username: str, client_ip: str) -> LoginThrottle | None:
    from accounts.services import _throttle_key

    return LoginThrottle.objects.filter(key=_throttle_key("user_addr", username, client_ip)).first()


def seed_failures(username, failures, *, blocked_until=None, client_ip=TEST_CLIENT_IP):
    """Store `failures` failed sign-ins of `username` from `client_ip` (locked until ...)."""
    from accounts.services import _throttle_key

    LoginThrottle.objects.update_or_create(
        key=_throttle_key("user_addr", username, client_ip),
        defaults={
            "scope": "user_addr",
            "username": username,
            "client_ip": client_ip,
            "failures": failures,
            "window_started_at": timezone.now(),
            "blocked_until": blocked_until,
        },
    )


def failures(user, client_ip=TEST_CLIENT_IP) -> int:
    """The lock counter of `user` from `client_ip` (0 once cleared)."""
    row = _lock_row(user.get_username(), client_ip)
    return row.failures if row else 0


def locked_until(user, client_ip=TEST_CLIENT_IP):
    row = _lock_row(user.get_username(), client_ip)
    return row.blocked_until if row else None


def login(client, username, password, **extra):
    return client.post(
        "/api/auth/login", {"username": username, "password": password}, format="json", **extra
    )


def change_password(client, username, old, new):
    return client.post(
        "/api/auth/change-password",
        {"username": username, "old_password": old, "new_password": new},
        format="json",
    )
