"""System checks of the monitoring settings (stable ids: monitoring.W001, …)."""

from django.conf import settings
from django.core import checks


def quantile_window_seconds() -> int:
    """The effective quantile window: QUANTILE_WINDOW_SECONDS, at least two collection
    intervals (a window of one interval is the old per-interval quantile, empty on a quiet
    cluster most of the time)."""
    return max(settings.QUANTILE_WINDOW_SECONDS, 2 * settings.COLLECTOR_INTERVAL)


@checks.register(checks.Tags.compatibility)
def check_quantile_window(app_configs, **kwargs):
    """Warn when QUANTILE_WINDOW_SECONDS is raised to two intervals (it still works)."""
    configured = settings.QUANTILE_WINDOW_SECONDS
    effective = quantile_window_seconds()
    if configured >= effective:
        return []
    return [
        checks.Warning(
            f"QUANTILE_WINDOW_SECONDS={configured} is shorter than two collection intervals "
            f"(COLLECTOR_INTERVAL={settings.COLLECTOR_INTERVAL}); {effective} s is used.",
            hint="Set QUANTILE_WINDOW_SECONDS to at least twice COLLECTOR_INTERVAL.",
            id="monitoring.W001",
        )
    ]
