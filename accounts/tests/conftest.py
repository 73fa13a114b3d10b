"""Fixtures of the accounts tests: users in known states and a plain API client."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import AccountProfile

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
        username="alice", *, password=PASSWORD, must_change=False, failed=0, locked_until=None
    ):
        user = get_user_model().objects.create_user(username=username, password=password)
        AccountProfile.objects.create(
            user=user,
            must_change_password=must_change,
            failed_attempts=failed,
            locked_until=locked_until,
        )
        return user

    return make


def profile(user) -> AccountProfile:
    return AccountProfile.objects.get(user=user)


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
