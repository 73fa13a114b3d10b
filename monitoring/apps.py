from django.apps import AppConfig
from django.conf import settings
from django.core import checks


def check_health_probe_interval(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """HEALTH_PROBE_INTERVAL must be a positive number of seconds (0 would spin the scheduler)."""
    if settings.HEALTH_PROBE_INTERVAL < 1:
        return [
            checks.Error(
                f"HEALTH_PROBE_INTERVAL must be at least 1 (got {settings.HEALTH_PROBE_INTERVAL})",
                hint="Seconds between health probes of the etcd members; the default is 5.",
                id="monitoring.E001",
            )
        ]
    return []


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        checks.register(check_health_probe_interval, checks.Tags.compatibility)
