"""Lockout (per username x client address): threshold, shared counter, no hash comparison while
locked, reset at expiry, and an unknown user costing what a wrong password costs."""

import statistics
import time
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.utils import timezone

from accounts.models import LoginThrottle
from accounts.tests.conftest import (
    PASSWORD,
    change_password,
    failures,
    locked_until,
    login,
)
from audit.models import AuditLog

pytestmark = pytest.mark.django_db


def test_login_locks_after_threshold_failures(client, make_user, settings):
    settings.LOCKOUT_THRESHOLD = 5
    settings.LOCKOUT_DURATION_SECONDS = 900
    user = make_user()

    for _ in range(5):
        assert login(client, "alice", "wrong").json() == {"error": "wrong username or password"}

    assert failures(user) == 5
    remaining = (locked_until(user) - timezone.now()).total_seconds()
    assert 895 < remaining <= 900
    assert login(client, "alice", PASSWORD).json() == {
        "error": "too many failed sign-in attempts, try again in 15 minutes"
    }
    lockout = AuditLog.objects.get(operation="login_lockout")
    assert lockout.username == "alice"


def test_login_and_change_password_share_the_counter(client, make_user, settings):
    settings.LOCKOUT_THRESHOLD = 5
    user = make_user()

    for _ in range(3):
        login(client, "alice", "wrong")
    for _ in range(2):
        change_password(client, "alice", "wrong", "new-password-1")

    assert locked_until(user) > timezone.now()
    response = login(client, "alice", PASSWORD)
    assert response.status_code == 401
    assert response.json()["error"].startswith("too many failed sign-in attempts")
    assert AuditLog.objects.filter(operation="login_lockout").count() == 1


def test_no_hash_comparison_while_locked(client, make_user, monkeypatch):
    user = make_user(failed=5, locked_until=timezone.now() + timedelta(minutes=5))
    calls = []
    original = Argon2PasswordHasher.verify
    monkeypatch.setattr(
        Argon2PasswordHasher,
        "verify",
        lambda self, *a: calls.append(1) or original(self, *a),
    )

    login(client, "alice", PASSWORD)
    change_password(client, "alice", PASSWORD, "new-password-1")

    assert calls == []
    assert failures(user) == 5


def test_counter_resets_when_the_lock_expires(client, make_user, settings):
    settings.LOCKOUT_THRESHOLD = 5
    user = make_user(failed=5, locked_until=timezone.now() - timedelta(seconds=1))

    response = login(client, "alice", "wrong")

    assert response.json() == {"error": "wrong username or password"}
    assert failures(user) == 1 and locked_until(user) is None


def test_correct_password_after_lock_expiry_logs_in(client, make_user):
    user = make_user(failed=5, locked_until=timezone.now() - timedelta(seconds=1))

    assert login(client, "alice", PASSWORD).json()["authenticated"] is True
    assert (failures(user), locked_until(user)) == (0, None)


def test_successful_login_resets_the_counter(client, make_user):
    user = make_user(failed=4)

    login(client, "alice", PASSWORD)

    assert failures(user) == 0


def test_unknown_usernames_count_like_known_ones_but_on_their_own_name(client, make_user):
    user = make_user()

    login(client, "alice-typo", "wrong")

    assert failures(user) == 0
    assert LoginThrottle.objects.get(scope="user_addr", username="alice-typo").failures == 1


def _median_seconds(call, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def test_unknown_user_costs_the_same_time_as_a_wrong_password(client, make_user, settings):
    settings.LOCKOUT_THRESHOLD = 10_000  # the wrong-password series must not lock
    make_user()
    login(client, "nobody", "warm-up")  # builds the dummy hash once
    ratios = []
    for _ in range(3):
        unknown = _median_seconds(lambda: login(client, "nobody", "wrong"), 7)
        wrong = _median_seconds(lambda: login(client, "alice", "wrong"), 7)
        ratios.append(unknown / wrong)
    print(f"unknown-user / wrong-password median time ratios: {ratios}")

    # Without the dummy hash the ratio is ~0.05 (no Argon2 at all); loose bounds, median of 3.
    assert 0.5 < statistics.median(ratios) < 2.0
