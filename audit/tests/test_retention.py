"""Retention: the hourly task deletes only entries older than AUDIT_RETENTION_DAYS."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from audit.services import audit_record


@pytest.mark.django_db
def test_purge_deletes_only_entries_older_than_retention(settings):
    from audit.tasks import purge_audit_log

    settings.AUDIT_RETENTION_DAYS = 7
    old = audit_record(operation="login")
    recent = audit_record(operation="login")
    AuditLog.objects.filter(pk=old.pk).update(timestamp=timezone.now() - timedelta(days=8))
    AuditLog.objects.filter(pk=recent.pk).update(timestamp=timezone.now() - timedelta(days=6))

    assert purge_audit_log() == 1
    assert list(AuditLog.objects.values_list("pk", flat=True)) == [recent.pk]
