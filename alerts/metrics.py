"""Our own `/metrics` in the Prometheus text format, so a Prometheus can watch the watcher:
collection cycles and scrape errors per member, health probes, alert evaluations and the
active alerts by state and severity. Everything is read from the database, so every process
serves the same numbers.

Access: with METRICS_TOKEN set, only `Authorization: Bearer <METRICS_TOKEN>`; without it,
only loopback clients (REMOTE_ADDR, never X-Forwarded-For).
"""

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from alerts import selectors
from alerts.models import ClusterEvaluation, Severity
from monitoring.models import Member, MonitoredCluster

LOOPBACK = {"127.0.0.1", "::1"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


class _Page:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, text: str) -> None:
        self.lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]

    def sample(self, metric: str, value, /, **labels) -> None:
        shown = _labels(**labels) if labels else ""
        self.lines.append(f"{metric}{shown} {float(value):.17g}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def metrics_text() -> str:
    """The page's text (one read of each table involved)."""
    page = _Page()
    clusters = list(MonitoredCluster.objects.all())
    members = list(
        Member.objects.filter(in_cluster=True)
        .select_related("cluster")
        .only(
            "member_id",
            "name",
            "cluster__name",
            "sample_count",
            "collector_up",
            "last_scrape_error",
            "health",
        )
    )
    page.family(
        "etcdmonitor_collector_last_cycle_timestamp_seconds",
        "gauge",
        "End of the last collection cycle per cluster.",
    )
    for cluster in clusters:
        if cluster.last_cycle_at:
            page.sample(
                "etcdmonitor_collector_last_cycle_timestamp_seconds",
                cluster.last_cycle_at.timestamp(),
                cluster=cluster.name,
            )
    page.family(
        "etcdmonitor_collector_samples_total",
        "counter",
        "Samples stored per member (one per successful or failed collection cycle).",
    )
    for member in members:
        page.sample(
            "etcdmonitor_collector_samples_total",
            member.sample_count,
            cluster=member.cluster.name,
            member=member.member_id,
            name=member.name,
        )
    page.family(
        "etcdmonitor_collector_scrape_up",
        "gauge",
        "1 when the member's last scrape succeeded, 0 when it failed (scrape error).",
    )
    for member in members:
        page.sample(
            "etcdmonitor_collector_scrape_up",
            1 if member.collector_up and not member.last_scrape_error else 0,
            cluster=member.cluster.name,
            member=member.member_id,
            name=member.name,
        )
    page.family(
        "etcdmonitor_member_health_up",
        "gauge",
        "1 when the member answered the last health probe, 0 when not.",
    )
    for member in members:
        page.sample(
            "etcdmonitor_member_health_up",
            1 if member.health == "up" else 0,
            cluster=member.cluster.name,
            member=member.member_id,
            name=member.name,
        )
    page.family(
        "etcdmonitor_alert_evaluations_total",
        "counter",
        "Alert rule evaluations run per cluster.",
    )
    evaluations = list(ClusterEvaluation.objects.all())
    for evaluation in evaluations:
        page.sample(
            "etcdmonitor_alert_evaluations_total",
            evaluation.evaluations,
            cluster=evaluation.cluster_id,
        )
    page.family(
        "etcdmonitor_alert_last_evaluation_timestamp_seconds",
        "gauge",
        "When the alert rules were last evaluated per cluster.",
    )
    for evaluation in evaluations:
        if evaluation.evaluated_at:
            page.sample(
                "etcdmonitor_alert_last_evaluation_timestamp_seconds",
                evaluation.evaluated_at.timestamp(),
                cluster=evaluation.cluster_id,
            )
    page.family("etcdmonitor_alerts", "gauge", "Active alerts by state and severity.")
    counts = selectors.alert_counts()
    for state in ("pending", "firing"):
        for severity in Severity.values:
            page.sample(
                "etcdmonitor_alerts",
                counts.get((state, severity), 0),
                state=state,
                severity=severity,
            )
    return page.text()


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), token.encode()
        )
    return request.META.get("REMOTE_ADDR") in LOOPBACK


def metrics_view(request):
    """GET /metrics (Prometheus text), or 401/403 with the contract's JSON body."""
    if request.method != "GET":
        return JsonResponse({"error": "method not allowed"}, status=405)
    if not _allowed(request):
        if settings.METRICS_TOKEN:
            response = JsonResponse({"error": "not authenticated"}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return JsonResponse({"error": "metrics restricted to localhost"}, status=403)
    response = HttpResponse(metrics_text(), content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
