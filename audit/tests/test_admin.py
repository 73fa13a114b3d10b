"""The audit log in the Django admin: read-only, filterable, with a formula-safe CSV export."""

import csv
import io

import pytest
from django.utils import timezone

from audit.models import AuditLog
from audit.selectors import csv_safe_cell
from audit.services import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry():
    return audit_record(operation="kv_put", username="alice", target="/app/x", result="ok")


def test_audit_log_changelist_and_detail_are_viewable(admin_client, entry):
    assert admin_client.get("/admin/audit/auditlog/").status_code == 200
    detail = admin_client.get(f"/admin/audit/auditlog/{entry.pk}/change/")
    assert detail.status_code == 200
    assert b"/app/x" in detail.content


def test_audit_log_cannot_be_added(admin_client):
    assert admin_client.get("/admin/audit/auditlog/add/").status_code == 403
    assert admin_client.post("/admin/audit/auditlog/add/", {"operation": "x"}).status_code == 403
    assert not AuditLog.objects.exists()


def test_audit_log_post_to_change_is_refused(admin_client, entry):
    response = admin_client.post(
        f"/admin/audit/auditlog/{entry.pk}/change/",
        {"operation": "forged", "username": "mallory", "target": "/", "duration_ms": 0},
    )

    assert response.status_code == 403
    entry.refresh_from_db()
    assert (entry.operation, entry.username) == ("kv_put", "alice")


def test_audit_log_post_to_delete_is_refused(admin_client, entry):
    response = admin_client.post(f"/admin/audit/auditlog/{entry.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_audit_log_bulk_delete_action_is_not_offered(admin_client, entry):
    response = admin_client.post(
        "/admin/audit/auditlog/",
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )

    assert AuditLog.objects.filter(pk=entry.pk).exists()
    assert response.status_code in (200, 302)


def test_audit_log_filters_and_search(admin_client, entry):
    audit_record(operation="login", username="bob", target="10.0.0.1", success=False)

    by_operation = admin_client.get("/admin/audit/auditlog/?operation=login")
    by_search = admin_client.get("/admin/audit/auditlog/?q=/app/x")
    by_success = admin_client.get("/admin/audit/auditlog/?success__exact=0")

    assert b"10.0.0.1" in by_operation.content and b"/app/x" not in by_operation.content
    assert b"/app/x" in by_search.content and b"10.0.0.1" not in by_search.content
    assert b"10.0.0.1" in by_success.content and b"/app/x" not in by_success.content
    assert admin_client.get("/admin/audit/auditlog/?username=alice").status_code == 200
    today = timezone.now()
    by_date = admin_client.get(
        f"/admin/audit/auditlog/?timestamp__year={today.year}"
        f"&timestamp__month={today.month}&timestamp__day={today.day}"
    )
    assert b"/app/x" in by_date.content
    assert b"/app/x" not in admin_client.get("/admin/audit/auditlog/?timestamp__year=2001").content


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


def test_csv_export_action_neutralises_formulas(admin_client):
    evil = audit_record(operation="login", username="=cmd|' /C calc'!A0", target="@evil")

    response = admin_client.post(
        "/admin/audit/auditlog/", {"action": "export_csv", "_selected_action": [evil.pk]}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["id", "timestamp", "username", "operation"]
    assert rows[1][2] == "'=cmd|' /C calc'!A0"
    assert rows[1][4] == "'@evil"


def test_the_old_admin_address_redirects_to_the_audit_app(admin_client, entry):
    changelist = admin_client.get("/admin/accounts/auditlog/?operation=kv_put")
    detail = admin_client.get(f"/admin/accounts/auditlog/{entry.pk}/change/", follow=True)

    assert changelist.status_code == 302
    assert changelist["Location"] == "/admin/audit/auditlog/?operation=kv_put"
    assert detail.status_code == 200 and b"/app/x" in detail.content
