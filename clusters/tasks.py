"""Celery tasks of the clusters app: thin wrappers over services."""

from celery import shared_task

from clusters import services


# The name predates the move from kvmanager: beat schedules and queued messages keep working.
@shared_task(name="kvmanager.tasks.probe_kv_tabs", ignore_result=False)
def probe_kv_tabs() -> dict:
    """Periodic (30 s): liveness round over every user's KV tabs; returns the counts."""
    return services.tabs_probe()
