"""The Django admin: users with lock state and actions; the audit log read-only with CSV export."""

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditLog
from accounts.selectors import csv_safe_cell
from accounts.services import audit_record
from accounts.tests.conftest import failures, locked_until, profile, seed_failures

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_user):
    browser = Client()
    browser.force_login(admin_user)
    return browser


@pytest.fixture
def entry():
    return audit_record(operation="kv_put", username="alice", target="/app/x", result="ok")


def test_audit_log_changelist_and_detail_are_viewable(staff, entry):
    assert staff.get("/admin/accounts/auditlog/").status_code == 200
    detail = staff.get(f"/admin/accounts/auditlog/{entry.pk}/change/")
    assert detail.status_code == 200
    assert b"/app/x" in detail.content


def test_audit_log_cannot_be_added(staff):
    assert staff.get("/admin/accounts/auditlog/add/").status_code == 403
    assert staff.post("/admin/accounts/auditlog/add/", {"operation": "x"}).status_code == 403
    assert not AuditLog.objects.exists()


def test_audit_log_post_to_change_is_refused(staff, entry):
    response = staff.post(
        f"/admin/accounts/auditlog/{entry.pk}/change/",
        {"operation": "forged", "username": "mallory", "target": "/", "duration_ms": 0},
    )

    assert response.status_code == 403
    entry.refresh_from_db()
    assert (entry.operation, entry.username) == ("kv_put", "alice")


def test_audit_log_post_to_delete_is_refused(staff, entry):
    response = staff.post(f"/admin/accounts/auditlog/{entry.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_audit_log_bulk_delete_action_is_not_offered(staff, entry):
    response = staff.post(
        "/admin/accounts/auditlog/",
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )

    assert AuditLog.objects.filter(pk=entry.pk).exists()
    assert response.status_code in (200, 302)


def test_audit_log_filters_and_search(staff, entry):
    audit_record(operation="login", username="bob", target="10.0.0.1", success=False)

    by_operation = staff.get("/admin/accounts/auditlog/?operation=login")
    by_search = staff.get("/admin/accounts/auditlog/?q=/app/x")
    by_success = staff.get("/admin/accounts/auditlog/?success__exact=0")

    assert b"10.0.0.1" in by_operation.content and b"/app/x" not in by_operation.content
    assert b"/app/x" in by_search.content and b"10.0.0.1" not in by_search.content
    assert b"10.0.0.1" in by_success.content and b"/app/x" not in by_success.content
    assert staff.get("/admin/accounts/auditlog/?username=alice").status_code == 200
    today = timezone.now()
    by_date = staff.get(
        f"/admin/accounts/auditlog/?timestamp__year={today.year}"
        f"&timestamp__month={today.month}&timestamp__day={today.day}"
    )
    assert b"/app/x" in by_date.content
    assert b"/app/x" not in staff.get("/admin/accounts/auditlog/?timestamp__year=2001").content


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("/plain/key", "/plain/key"),
        ("", ""),
    ],
)
def test_csv_cells_are_neutralised(raw, safe):
    assert csv_safe_cell(raw) == safe


def test_csv_export_action_neutralises_formulas(staff):
    evil = audit_record(operation="login", username="=cmd|' /C calc'!A0", target="@evil")

    response = staff.post(
        "/admin/accounts/auditlog/", {"action": "export_csv", "_selected_action": [evil.pk]}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["id", "timestamp", "username", "operation"]
    assert rows[1][2] == "'=cmd|' /C calc'!A0"
    assert rows[1][4] == "'@evil"


def test_users_list_shows_lock_state(staff, make_user):
    make_user("locked-user", failed=5, locked_until=timezone.now() + timedelta(minutes=5))

    response = staff.get("/admin/auth/user/")

    assert response.status_code == 200
    assert b"locked-user" in response.content
    assert b"locked" in response.content


def test_unlock_action_clears_the_lock(staff, make_user):
    user = make_user(failed=5, locked_until=timezone.now() + timedelta(minutes=5))

    staff.post("/admin/auth/user/", {"action": "unlock_accounts", "_selected_action": [user.pk]})

    assert (failures(user), locked_until(user)) == (0, None)
    assert AuditLog.objects.filter(operation="admin_unlock", target=user.username).exists()


def test_force_password_change_action(staff, make_user, client):
    from accounts.services import session_create

    user = make_user()
    token, _ = session_create(user=user)

    staff.post(
        "/admin/auth/user/", {"action": "force_password_change", "_selected_action": [user.pk]}
    )

    assert profile(user).must_change_password is True
    assert (
        client.get("/api/user/panel-config", HTTP_AUTHORIZATION=f"Bearer {token}").status_code
        == 401
    )


def test_admin_login_obeys_the_lockout(admin_user, settings):
    seed_failures("admin", 5, blocked_until=timezone.now() + timedelta(minutes=5))
    browser = Client()

    response = browser.post(
        "/admin/login/", {"username": "admin", "password": "admin-test-password"}
    )

    assert response.status_code == 200  # the form again, not a redirect into the admin
    assert "_auth_user_id" not in browser.session


def test_admin_login_works_for_an_unlocked_staff_user(admin_user):
    browser = Client()

    response = browser.post(
        "/admin/login/", {"username": "admin", "password": "admin-test-password"}
    )

    assert response.status_code == 302
    assert AuditLog.objects.filter(operation="admin_login", success=True).exists()
