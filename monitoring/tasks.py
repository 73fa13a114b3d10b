"""Celery tasks of the monitoring app: thin wrappers over services."""

from celery import shared_task

from monitoring import services


@shared_task(name="monitoring.tasks.probe_etcd_endpoints", ignore_result=False)
def probe_etcd_endpoints() -> dict[str, bool]:
    """Periodic: refresh the health of every configured etcd endpoint."""
    return services.etcd_endpoints_probe()


@shared_task(name="monitoring.tasks.collect_metrics", ignore_result=False)
def collect_metrics() -> dict:
    """Periodic (COLLECTOR_INTERVAL): one collection cycle of the monitored cluster.

    Returns a summary; `skipped` is true when another run still holds the cluster's lease.
    """
    report = services.collect_cluster()
    return {
        "ts": report.ts,
        "skipped": report.skipped,
        "members": report.members,
        "duration_ms": round(report.duration_ms, 1),
    }


@shared_task(name="monitoring.tasks.probe_health", ignore_result=False)
def probe_health() -> dict:
    """Periodic (HEALTH_PROBE_INTERVAL): one health round; returns the cluster verdict."""
    report = services.health_probe()
    return {
        "health": report.health,
        "members": report.members,
        "duration_ms": round(report.duration_ms, 1),
    }


@shared_task(name="monitoring.tasks.purge_metrics", ignore_result=False)
def purge_metrics() -> int:
    """Periodic (hourly): delete samples older than RETENTION_DAYS; returns rows deleted."""
    return services.metrics_purge()
