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


@pytest.mark.django_db(transaction=True)  # the scheduler closes the connection after a run
def test_the_purge_keeps_its_job_and_task_name_for_both_schedulers(settings):
    from etcdmonitor_site.scheduler import InProcessScheduler

    settings.AUDIT_RETENTION_DAYS = 7
    old = audit_record(operation="login")
    AuditLog.objects.filter(pk=old.pk).update(timestamp=timezone.now() - timedelta(days=8))
    job = settings.PERIODIC_JOBS["purge-audit-log"]

    InProcessScheduler({"purge-audit-log": job}).run_once("purge-audit-log")

    assert job == {"task": "accounts.tasks.purge_audit_log", "interval": 3600}
    assert settings.CELERY_BEAT_SCHEDULE["purge-audit-log"]["task"] == job["task"]
    assert not AuditLog.objects.exists()
