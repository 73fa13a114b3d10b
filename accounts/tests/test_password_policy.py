"""Django's password validators on every password set: change, CLI reset, user creation and
admin reset, the bootstrap draw. Refusals are 400 {"error": <every validator's message>}."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.services import admin_bootstrap, password_policy_error
from accounts.tests.conftest import PASSWORD, change_password, failures, login
from audit.models import AuditLog

pytestmark = pytest.mark.django_db

TOO_SHORT = "This password is too short. It must contain at least 8 characters."
TOO_COMMON = "This password is too common."
TOO_SIMILAR = "The password is too similar to the username."
ALL_DIGITS = "This password is entirely numeric."


@pytest.fixture(autouse=True)
def _eight_characters(settings):
    settings.MIN_PASSWORD_LENGTH = 8


@pytest.mark.parametrize(
    ("new", "messages"),
    [
        ("qz7#", [TOO_SHORT]),
        ("password", [TOO_COMMON]),
        ("alice1234", [TOO_SIMILAR]),
        ("48151623429", [ALL_DIGITS]),
        ("1234", [TOO_SHORT, TOO_COMMON, ALL_DIGITS]),
    ],
    ids=["short", "common", "similar-to-username", "numeric", "several"],
)
def test_change_password_refuses_what_a_validator_refuses(client, make_user, new, messages):
    user = make_user()

    response = change_password(client, "alice", PASSWORD, new)

    assert response.status_code == 400
    assert response.json() == {"error": " ".join(messages)}
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert failures(user) == 0  # the old password was right: nothing counts against it
    assert not AuditLog.objects.filter(operation="change_password").exists()


def test_the_bootstrap_admin_cannot_choose_password(client):
    get_user_model().objects.all().delete()
    initial = admin_bootstrap().read_text().strip()

    response = change_password(client, "admin", initial, "password")

    assert response.status_code == 400
    assert response.json() == {"error": TOO_COMMON}
    assert login(client, "admin", "password").status_code == 401
    assert login(client, "admin", initial).json()["must_change_password"] is True


def test_the_length_follows_min_password_length_at_each_check(client, make_user, settings):
    make_user()
    settings.MIN_PASSWORD_LENGTH = 12

    short = change_password(client, "alice", PASSWORD, "velvet-mo7")

    assert short.status_code == 400
    assert "at least 12 characters" in short.json()["error"]
    assert change_password(client, "alice", PASSWORD, "velvet-moon7").status_code == 200


def test_bootstrap_draws_a_password_that_passes_a_longer_minimum(settings):
    get_user_model().objects.all().delete()
    settings.MIN_PASSWORD_LENGTH = 24

    password = admin_bootstrap().read_text().strip()

    assert len(password) == 24
    admin = get_user_model().objects.get(username="admin")
    assert password_policy_error(new_password=password, user=admin) is None
    assert admin.account_profile.roles == {"*": "admin"}


def test_cli_reset_refuses_a_common_password(make_user, monkeypatch):
    user = make_user()
    monkeypatch.setattr("sys.stdin", io.StringIO("password\n"))

    with pytest.raises(CommandError, match="too common"):
        call_command("reset_password", "--username", "alice", "--password-stdin")

    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_policy_error_is_none_for_a_good_password(make_user):
    assert password_policy_error(new_password="quiet-harbor-42", user=make_user()) is None


def test_a_minimum_below_eight_is_a_system_check_warning(settings):
    from django.core import checks

    def ids():
        return [m.id for m in checks.run_checks(tags=["security"]) if m.id == "accounts.W002"]

    assert ids() == []
    settings.MIN_PASSWORD_LENGTH = 6
    assert ids() == ["accounts.W002"]
