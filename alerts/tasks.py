"""Celery tasks of the alerts app: thin wrappers over services."""

from celery import shared_task

from alerts import services


@shared_task(name="alerts.tasks.evaluate_alerts", ignore_result=False)
def evaluate_alerts() -> list[dict]:
    """Periodic (ALERT_EVAL_INTERVAL): evaluate the rules on every monitored cluster."""
    return [
        {
            "cluster_id": report.cluster_id,
            "skipped": report.skipped,
            "transitions": [
                (t.rule, t.member_id, t.status, t.severity) for t in report.transitions
            ],
            "duration_ms": round(report.duration_ms, 1),
        }
        for report in services.evaluate_all()
    ]


@shared_task(name="alerts.tasks.check_consistency", ignore_result=False)
def check_consistency() -> dict:
    """Periodic (HASHKV_CHECK_INTERVAL): HashKV on every member of every monitored cluster."""
    return {
        check.cluster_id: {
            "outcome": check.outcome,
            "revision": check.revision,
            "detail": check.detail,
        }
        for check in services.consistency_check_all()
    }


@shared_task(name="alerts.tasks.purge_alerts", ignore_result=False)
def purge_alerts() -> int:
    """Hourly: delete alert history older than ALERT_RETENTION_DAYS."""
    return services.alerts_purge()
