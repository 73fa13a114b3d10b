"""Celery tasks of the monitoring app: thin wrappers over services."""

from celery import shared_task
from django.conf import settings

from monitoring import services


@shared_task(name="monitoring.tasks.probe_etcd_endpoints", ignore_result=False)
def probe_etcd_endpoints() -> dict[str, bool]:
    """Periodic: refresh the health of every configured etcd endpoint."""
    return services.etcd_endpoints_probe()


@shared_task(name="monitoring.tasks.collect_metrics", ignore_result=False)
def collect_metrics() -> dict | None:
    """Periodic (COLLECTOR_INTERVAL): one collection cycle of every monitored cluster, each
    with its own lease. One cluster: this very run. More: in embedded mode all started on this
    process's bounded pool; with workers, in rounds of MONITOR_ROUND_CLUSTERS clusters started
    by this worker process over the first half of the interval (`collect_fleet_spread`), each
    dropped if it could not start before the next run is due.
    """
    ids = services.monitored_cluster_ids()
    if len(ids) == 1:
        return collect_cluster_metrics(ids[0])
    if settings.EMBEDDED_MODE:
        return {"started": sorted(services.collect_fleet(cluster_ids=ids))}
    services.collect_fleet_spread(
        cluster_ids=ids,
        chunk_size=settings.MONITOR_ROUND_CLUSTERS,
        over_seconds=settings.COLLECTOR_INTERVAL * 0.5,
        expires_seconds=max(1.0, settings.COLLECTOR_INTERVAL * 0.9),
    )
    return {"spread": ids}


# Results off: nothing reads a chunk's result, and each would be a Redis write.
@shared_task(name="monitoring.tasks.collect_clusters", ignore_result=True)
def collect_clusters(cluster_ids: list[str]) -> list[str]:
    """One collection cycle of each of `cluster_ids`, started on this worker's bounded pool
    (a slow or dead cluster holds only its own thread); returns the ids started (one still
    being collected in this process is not started again). Nothing here queues it any more:
    it stays so that chunks queued by workers of an earlier version still run after an upgrade."""
    return sorted(services.collect_fleet(cluster_ids=cluster_ids))


# Results off: nothing reads a per-cluster task's result, and each would be a Redis write.
@shared_task(name="monitoring.tasks.collect_cluster_metrics", ignore_result=True)
def collect_cluster_metrics(cluster_id: str) -> dict | None:
    """One collection cycle of one monitored cluster record; None when it is not monitored.

    Returns a summary; `skipped` is true when another run still holds the cluster's lease.
    """
    report = services.collect_cluster_id(cluster_id=cluster_id)
    if report is None:
        return None
    return {
        "cluster_id": cluster_id,
        "ts": report.ts,
        "skipped": report.skipped,
        "members": report.members,
        "duration_ms": round(report.duration_ms, 1),
    }


@shared_task(name="monitoring.tasks.probe_health", ignore_result=False)
def probe_health() -> dict | None:
    """Periodic (HEALTH_PROBE_INTERVAL): one health round of every monitored cluster, all of
    them started on this process's bounded pool, with or without a broker.

    A probe is a few milliseconds of work; as one Celery task per cluster, the message, its
    acknowledgement and the task's bookkeeping cost about as much as the probe (bench/fleet.py).
    The pool keeps a slow or dead cluster from delaying the others, and a cluster whose probe
    in this process is still going is not started again.
    """
    ids = services.monitored_cluster_ids()
    if len(ids) == 1:
        return probe_cluster_health(ids[0])
    return {"started": sorted(services.health_probe_fleet(cluster_ids=ids))}


# Results off: nothing reads a per-cluster task's result, and each would be a Redis write.
@shared_task(name="monitoring.tasks.probe_cluster_health", ignore_result=True)
def probe_cluster_health(cluster_id: str) -> dict | None:
    """One health round of one monitored cluster record; returns its verdict (None: not
    monitored)."""
    report = services.health_probe_id(cluster_id=cluster_id)
    if report is None:
        return None
    return {
        "cluster_id": cluster_id,
        "health": report.health,
        "members": report.members,
        "duration_ms": round(report.duration_ms, 1),
    }


@shared_task(name="monitoring.tasks.purge_metrics", ignore_result=False)
def purge_metrics() -> int:
    """Periodic (hourly): delete samples older than RETENTION_DAYS; returns rows deleted."""
    return services.metrics_purge()
