"""The audit log's since/until filters (unix seconds); found broken by the schemathesis run."""

from datetime import UTC, datetime, timedelta

import pytest

from audit.models import AuditLog
from audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_since_and_until_filter_by_unix_seconds(api_client):
    audit_record(operation="put", username="alice", target="/old", success=True)
    audit_record(operation="put", username="alice", target="/new", success=True)
    old = AuditLog.objects.get(target="/old")
    AuditLog.objects.filter(pk=old.pk).update(timestamp=datetime.now(UTC) - timedelta(days=2))
    yesterday = int((datetime.now(UTC) - timedelta(days=1)).timestamp())

    recent = api_client.get("/api/ops/audit-logs", {"since": yesterday})
    older = api_client.get("/api/ops/audit-logs", {"until": yesterday})
    both = api_client.get("/api/ops/audit-logs", {"since": 0, "until": 2**33})

    assert recent.status_code == 200, recent.content
    assert [e["target"] for e in recent.json()["entries"]] == ["/new"]
    assert [e["target"] for e in older.json()["entries"]] == ["/old"]
    assert both.json()["total"] == 2


@pytest.mark.parametrize("params", [{"since": -1}, {"until": 2**33 + 1}, {"since": "yesterday"}])
def test_out_of_range_or_non_numeric_times_are_400(api_client, params):
    response = api_client.get("/api/ops/audit-logs", params)

    assert response.status_code == 400
    assert response.json()["error"].startswith(next(iter(params)))
