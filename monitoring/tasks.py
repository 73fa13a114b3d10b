"""Celery tasks of the monitoring app: thin wrappers over services."""

from celery import shared_task

from monitoring import services


@shared_task(name="monitoring.tasks.probe_etcd_endpoints", ignore_result=False)
def probe_etcd_endpoints() -> dict[str, bool]:
    """Periodic: refresh the health of every configured etcd endpoint."""
    return services.etcd_endpoints_probe()
