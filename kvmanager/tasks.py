"""Celery tasks of the kvmanager app: thin wrappers over services."""

from celery import shared_task

from kvmanager import tab_services


@shared_task(name="kvmanager.tasks.probe_kv_tabs", ignore_result=False)
def probe_kv_tabs() -> dict:
    """Periodic (30 s): liveness round over every user's KV tabs; returns the counts."""
    return tab_services.tabs_probe()
