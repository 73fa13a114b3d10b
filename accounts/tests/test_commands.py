"""manage.py reset_password and unlock."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import UserSession
from accounts.services import session_create
from accounts.tests.conftest import failures, locked_until, login, profile
from audit.models import AuditLog

pytestmark = pytest.mark.django_db


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_reset_password_refuses_a_non_tty(make_user, monkeypatch):
    make_user()
    monkeypatch.setattr("sys.stdin", io.StringIO("new-password-1\n"))

    with pytest.raises(CommandError, match="interactive terminal"):
        call_command("reset_password", "--username", "alice")


def test_reset_password_prompts_twice_and_resets_everything(client, make_user, monkeypatch):
    user = make_user(failed=5, locked_until=timezone.now() + timedelta(minutes=10))
    token, _ = session_create(user=user)
    monkeypatch.setattr("sys.stdin", FakeTty())
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "reset-pass-1")
    out = io.StringIO()

    call_command("reset_password", "--username", "alice", stdout=out)

    assert prompts == ["New password: ", "Retype new password: "]
    assert (profile(user).must_change_password, failures(user), locked_until(user)) == (
        True,
        0,
        None,
    )
    assert not UserSession.objects.filter(user=user).exists()
    assert (
        client.get("/api/auth/status", HTTP_AUTHORIZATION=f"Bearer {token}").json()["authenticated"]
        is False
    )
    entry = AuditLog.objects.get(operation="cli_reset_password")
    assert entry.target.startswith("local@") and "reset-pass-1" not in entry.params + entry.result
    assert login(client, "alice", "reset-pass-1").json()["must_change_password"] is True
    assert "reset-pass-1" not in out.getvalue()


def test_reset_password_refuses_mismatched_prompts(make_user, monkeypatch):
    make_user()
    monkeypatch.setattr("sys.stdin", FakeTty())
    answers = iter(["first-password", "second-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))

    with pytest.raises(CommandError, match="do not match"):
        call_command("reset_password", "--username", "alice")


def test_reset_password_from_stdin_enforces_the_policy(make_user, monkeypatch, settings):
    settings.MIN_PASSWORD_LENGTH = 8
    user = make_user()
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))

    with pytest.raises(CommandError, match="too short"):
        call_command("reset_password", "--username", "alice", "--password-stdin")

    monkeypatch.setattr("sys.stdin", io.StringIO("long-enough-1\n"))
    call_command("reset_password", "--username", "alice", "--password-stdin", stdout=io.StringIO())
    user.refresh_from_db()
    assert user.check_password("long-enough-1")


def test_reset_password_of_unknown_user_fails(db):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("reset_password", "--username", "ghost", "--password-stdin")


def test_unlock_clears_the_lock_and_keeps_the_password(client, make_user):
    user = make_user(failed=5, locked_until=timezone.now() + timedelta(minutes=10))

    call_command("unlock", "--username", "alice", stdout=io.StringIO())

    assert (failures(user), locked_until(user)) == (0, None)
    assert AuditLog.objects.get(operation="cli_unlock").success is True
    assert login(client, "alice", "correct-horse-1").json()["authenticated"] is True
