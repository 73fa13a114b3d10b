"""Celery tasks of the notifications app: thin wrappers over services."""

from celery import shared_task

from notifications import services


@shared_task(name="notifications.tasks.deliver_notifications", ignore_result=False)
def deliver_notifications() -> dict:
    """Periodic (NOTIFICATIONS_DELIVERY_INTERVAL): send what the outbox has due; safe to run
    in several workers at once (rows are claimed, see services.outbox_deliver)."""
    report = services.outbox_deliver()
    return {"sent": report.sent, "failed": report.failed, "given_up": report.given_up}


@shared_task(name="notifications.tasks.purge_notifications", ignore_result=False)
def purge_notifications() -> int:
    """Periodic (hourly): delete settled outbox rows older than NOTIFICATIONS_RETENTION_DAYS."""
    return services.outbox_purge()
