"""The audit log's move from accounts to audit changes the migration state only: an existing
database keeps its table and rows, a fresh one gets the same table."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from audit.models import AuditLog
from tests.migrating import latest, migrate, table_constraints

LAST_BEFORE_THE_MOVE = ("accounts", "0003_login_throttle")
BEFORE_THE_MOVE = [LAST_BEFORE_THE_MOVE, ("audit", None)]


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_move_are_read_through_the_audit_app():
    content_type_id = ContentType.objects.get_for_model(AuditLog).pk
    try:
        executor = migrate(BEFORE_THE_MOVE)
        old_model = executor.loader.project_state(LAST_BEFORE_THE_MOVE).apps.get_model(
            "accounts", "AuditLog"
        )
        written = old_model.objects.create(
            timestamp=timezone.now(),
            username="alice",
            operation="put",
            target="/app/x",
            params='{"ttl": null}',
            result="ok",
            duration_ms=7,
            success=True,
            client_ip="192.0.2.1",
        )
        assert ContentType.objects.get(pk=content_type_id).app_label == "accounts"
    finally:
        migrate(latest())
        ContentType.objects.clear_cache()

    entry = AuditLog.objects.get(pk=written.pk)
    assert (entry.username, entry.operation, entry.target) == ("alice", "put", "/app/x")
    assert (entry.params, entry.result, entry.duration_ms) == ('{"ttl": null}', "ok", 7)
    assert (entry.success, entry.client_ip) == (True, "192.0.2.1")
    # Permissions and admin history point at the content type, which follows the model.
    assert ContentType.objects.get(pk=content_type_id).app_label == "audit"


@pytest.mark.django_db
def test_a_fresh_database_has_the_table_with_its_indexes():
    constraints = table_constraints("accounts_auditlog")

    assert AuditLog._meta.db_table == "accounts_auditlog"
    assert constraints["audit_op_ts"]["columns"] == ["operation", "timestamp"]
    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"]}
    assert {("timestamp",), ("operation",), ("operation", "timestamp")} <= indexed
