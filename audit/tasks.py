"""Celery tasks of the audit app: thin wrappers over services."""

from celery import shared_task

from audit import services


# The name predates the move from accounts: beat schedules and queued messages keep working.
@shared_task(name="accounts.tasks.purge_audit_log", ignore_result=True)
def purge_audit_log() -> int:
    """Hourly: delete audit entries older than AUDIT_RETENTION_DAYS."""
    return services.audit_log_purge()
