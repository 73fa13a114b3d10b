"""The audit log API (/api/ops/audit-logs): pages, filters, paging limits and the CSV export."""

import pytest

from audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_audit_log_page_is_empty_list_when_nothing_matches(api_client):
    response = api_client.get("/api/ops/audit-logs", {"operation": "nothing-like-this"})

    assert response.json() == {"entries": [], "total": 0, "page": 1, "page_size": 20}


def test_audit_log_pages_filters_and_caps_page_size(api_client):
    for i in range(30):
        audit_record(
            operation="put",
            username="alice" if i % 2 else "bob",
            target=f"/k/{i}",
            success=i % 3 != 0,
        )

    page = api_client.get(
        "/api/ops/audit-logs", {"operation": "put", "username": "alice", "page": 2, "page_size": 5}
    ).json()
    capped = api_client.get("/api/ops/audit-logs", {"page_size": 100000}).json()
    lenient = api_client.get("/api/ops/audit-logs", {"page": 0, "page_size": -3}).json()
    failures = api_client.get("/api/ops/audit-logs", {"success": "false"}).json()

    assert page["total"] == 15 and page["page"] == 2 and len(page["entries"]) == 5
    assert all(e["username"] == "alice" for e in page["entries"])
    assert page["entries"][0]["target"] == "/k/19", "newest first"
    assert capped["page_size"] == 500
    assert (lenient["page"], lenient["page_size"]) == (1, 20)
    assert failures["total"] == 10 and not any(e["success"] for e in failures["entries"])


def test_audit_log_rejects_non_numeric_paging(api_client):
    response = api_client.get("/api/ops/audit-logs", {"page": "two"})

    assert response.status_code == 400 and response.json()["error"].startswith("page")


def test_audit_log_csv_export_neutralises_formulas(api_client):
    audit_record(operation="put", username="=cmd|' /C calc'!A0", target="+1+1")
    audit_record(operation="delete", username="bob", target="@SUM(A1)")

    response = api_client.get("/api/ops/audit-logs", {"format": "csv", "operation": "put"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    assert "'=cmd|' /C calc'!A0" in text and "'+1+1" in text
    assert "@SUM" not in text, "the filter applies to the export"
