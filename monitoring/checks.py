"""System checks of the monitoring settings (stable ids: monitoring.W001, …)."""

from django.conf import settings
from django.core import checks

from etcdgateway.config import metrics_urls_problem
from monitoring import metrics


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


@checks.register(checks.Tags.compatibility)
def check_metrics_urls(app_configs, **kwargs):
    """ETCD_METRICS_URLS must be http(s) URLs, or one template whose host is {host}."""
    problem = metrics_urls_problem(settings.ETCD_METRICS_URLS)
    if problem is None:
        return []
    return [
        checks.Error(
            f"ETCD_METRICS_URLS: {problem}",
            hint="A comma list such as http://10.0.0.5:2381/metrics,… (matched to members by "
            "host) or one template such as http://{host}:2381/metrics.",
            id="monitoring.E001",
        )
    ]


@checks.register(checks.Tags.compatibility)
def check_health_probe_interval(app_configs=None, **kwargs):
    """HEALTH_PROBE_INTERVAL must be a positive number of seconds (0 would spin the scheduler)."""
    if settings.HEALTH_PROBE_INTERVAL < 1:
        return [
            checks.Error(
                f"HEALTH_PROBE_INTERVAL must be at least 1 (got {settings.HEALTH_PROBE_INTERVAL})",
                hint="Seconds between health probes of the etcd members; the default is 5.",
                id="monitoring.E002",
            )
        ]
    return []


@checks.register(checks.Tags.compatibility)
def check_native_parser(app_configs=None, **kwargs):
    """Warn when the C parser (native/promtext) is not installed: the same samples, more CPU."""
    if metrics.promtext is not None:
        return []
    return [
        checks.Warning(
            "The C Prometheus text parser (etcdmonitor_promtext) is not installed: each "
            "member's scrape is parsed in Python, at about four times the CPU.",
            hint="Run `make venv` (needs gcc and the Python headers), or "
            "`pip install ./native/promtext` into the environment that runs etcdmonitor.",
            id="monitoring.W002",
        )
    ]
