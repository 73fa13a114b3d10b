"""DRF viewsets of the monitoring app: members, metrics (current, range), status, debug, and
the user's panel layout.

Everything is read from the database the collector writes, so any web process answers the
same; nothing here calls etcd.
"""

import json
import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from alerts import selectors as alert_selectors
from audit.services import Actor
from clusters import selectors as cluster_selectors
from clusters.services import cluster_for_route
from etcdmonitor_site.api import MessageSerializer, cluster_id_param
from etcdmonitor_site.errors import Forbidden, InvalidInput, NotFound, Unavailable
from monitoring import selectors, services
from monitoring.api import serializers
from monitoring.api.range import parse_metric_names, parse_window
from monitoring.metrics import not_exported

LOOPBACK = {"127.0.0.1", "::1"}
MEMBER_ID_MAX = 20  # decimal uint64
NEVER_REACHED = "etcd unavailable: the cluster has not been reached yet"
PANEL_CONFIG_MAX_BYTES = 64 * 1024


def _never_reached(detail: str) -> Unavailable:
    return Unavailable(
        f"{NEVER_REACHED} ({detail})" if detail else NEVER_REACHED, code="etcd_unavailable"
    )


def _record(request):
    """The cluster record a request names with `cluster_id`, None for the default (also when
    absent): a shared cluster or the user's own, resolved as the KV and ops routes resolve it
    (unknown and other users' ids are 404 CLUSTER_NOT_FOUND). No query for the default."""
    _, cluster_id = cluster_id_param(request)
    return cluster_for_route(
        actor=Actor.from_request(request), cluster_id=cluster_id, route=request.path
    )


def _cluster_name(request) -> str:
    """The monitored cluster's name (its record's id) a request names."""
    record = _record(request)
    return record.pk if record is not None else selectors.DEFAULT_CLUSTER


def _members_or_503(name: str):
    cluster, members = selectors.cluster_with_members(name)
    if not members:
        raise _never_reached(cluster.last_error if cluster is not None else "")
    return cluster, members


def _member_id_param(request) -> str:
    # A plain check, not a serializer: this runs on every dashboard poll (bench/perf_notes.md).
    member_id = request.query_params.get("member_id", "").strip()
    if len(member_id) > MEMBER_ID_MAX:
        raise InvalidInput("invalid member_id")
    return member_id


def _member_from(request, cluster, members):
    member_id = _member_id_param(request)
    if not member_id:
        return selectors.member_default(members)
    member = selectors.member_by_id(cluster, member_id)
    if member is None:
        raise NotFound("member not found")
    return member


def _default_id(members) -> str:
    default = selectors.member_default(members)
    return default.member_id if default else ""


MEMBER_ID = OpenApiParameter("member_id", str, description="decimal member id (default member)")
CLUSTER_ID = OpenApiParameter(
    "cluster_id", str, description="the cluster record to read (default: `default`)"
)


class MembersViewSet(viewsets.ViewSet):
    """GET /api/members."""

    @extend_schema(parameters=[CLUSTER_ID], responses=serializers.MembersOutputSerializer)
    def list(self, request):
        _, members = _members_or_503(_cluster_name(request))
        now, max_age = datetime.now(UTC), selectors.health_max_age()
        return Response(
            {
                "members": [m.to_health_info(now=now, max_age=max_age) for m in members],
                "default_member_id": _default_id(members),
                "timestamp": int(time.time()),
            }
        )


class MetricsViewSet(viewsets.ViewSet):
    """GET /api/current and /api/range."""

    @extend_schema(
        parameters=[CLUSTER_ID, MEMBER_ID], responses=serializers.CurrentOutputSerializer
    )
    def current(self, request):
        lookup = selectors.member_latest_json(_member_id_param(request), _cluster_name(request))
        if not lookup.has_members:
            raise _never_reached(lookup.last_error)
        if lookup.member is None:
            raise NotFound("member not found")
        member = lookup.member
        now = time.time()
        stale = "true" if member.is_stale(now=now) else "false"
        as_of = member.latest_ts if member.latest_ts is not None else "null"
        # Stored JSON text spliced in as it is (see selectors.member_latest_json).
        body = (
            f'{{"timestamp":{int(now)},"member_id":{json.dumps(member.member_id)},'
            f'"metrics":{member.latest},"grpc_methods":{member.grpc_methods},'
            f'"basis":{member.basis},"stale":{stale},"as_of":{as_of}}}'
        )
        return HttpResponse(body, content_type="application/json")

    @extend_schema(
        parameters=[
            CLUSTER_ID,
            MEMBER_ID,
            OpenApiParameter("metrics", str, required=True, description="m1,m2,..."),
            OpenApiParameter("range", str, description="e.g. 30m, 1.5h, 7d, 30s"),
            OpenApiParameter("start", int),
            OpenApiParameter("end", int),
        ],
        responses=serializers.RangeOutputSerializer,
    )
    def range(self, request):
        names = parse_metric_names(request.query_params)
        window = parse_window(request.query_params, now=int(time.time()))
        cluster, members = _members_or_503(_cluster_name(request))
        member = _member_from(request, cluster, members)
        series = (
            selectors.metric_series_json(
                member=member,
                names=names,
                start=window.start,
                end=window.end,
                bucket=window.bucket,
            )
            if names is not None
            else "null"
        )
        # Requested series this member's etcd does not export (a renamed or dropped name):
        # reference clients ignore the extra key, ours says so instead of a blank chart.
        missing = not_exported(names or (), member.unexported_metrics or ())
        # The series arrive as JSON text from the database; wrap them without re-parsing.
        body = (
            f'{{"start":{window.start},"end":{window.end},'
            f'"member_id":{json.dumps(member.member_id)},"metrics":{series},'
            f'"not_exported":{json.dumps(missing, separators=(",", ":"))}}}'
        )
        return HttpResponse(body, content_type="application/json")


class StatusViewSet(viewsets.ViewSet):
    """GET /api/status: collector and cluster state from storage (no live etcd call)."""

    @extend_schema(parameters=[CLUSTER_ID], responses=serializers.MonitorStatusOutputSerializer)
    def retrieve(self, request):
        record = _record(request)
        cluster, members = selectors.cluster_with_members(
            record.pk if record is not None else selectors.DEFAULT_CLUSTER
        )
        endpoints = record.endpoints if record is not None else settings.ETCD_ENDPOINTS
        default = selectors.member_default(members)
        last = cluster.last_cycle_at if cluster is not None else None
        now, max_age = datetime.now(UTC), selectors.health_max_age()
        return Response(
            {
                "status": "running",
                "app_version": settings.APP_VERSION,
                "collector_up": bool(default and default.collector_up),
                "etcd_endpoint": ",".join(endpoints),
                "etcd_version": default.etcd_version if default else "",
                "storage_version": default.storage_version if default else "",
                "collect_interval": settings.COLLECTOR_INTERVAL,
                "retention_days": settings.RETENTION_DAYS,
                "members": [m.to_health_info(now=now, max_age=max_age) for m in members],
                "default_member_id": default.member_id if default else "",
                "member_count": len(members),
                "last_collected": int(last.timestamp()) if last else None,
                "timestamp": int(time.time()),
                "cluster": selectors.cluster_health(cluster, members, now=now),
            }
        )


class FleetViewSet(viewsets.ViewSet):
    """GET /api/fleet: every cluster the user may see (shared ones and the user's own) with its
    health object, etcd versions, last collection, worst WAL fsync p99 and firing alerts."""

    @extend_schema(responses=serializers.FleetOutputSerializer)
    def list(self, request):
        records = cluster_selectors.fleet_clusters(user=request.user)
        ids = [record.pk for record in records]
        monitoring = selectors.fleet_monitoring(ids, now=datetime.now(UTC))
        firing = alert_selectors.firing_by_cluster(ids)
        return Response(
            {
                "clusters": [
                    {
                        "id": record.pk,
                        "name": record.name,
                        "labels": dict(record.labels or {}),
                        "monitored": record.monitored,
                        "owner": record.owner.get_username() if record.owner_id else None,
                        **monitoring[record.pk],
                        "alerts": firing.get(record.pk, {"firing": 0, "worst": None}),
                    }
                    for record in records
                ]
            }
        )


class DebugViewSet(viewsets.ViewSet):
    """GET /api/debug: loopback clients (by REMOTE_ADDR, never X-Forwarded-For) or staff."""

    @extend_schema(parameters=[CLUSTER_ID], responses=serializers.DebugOutputSerializer)
    def retrieve(self, request):
        user = request.user
        if request.META.get("REMOTE_ADDR") not in LOOPBACK and not getattr(user, "is_staff", False):
            raise Forbidden("debug endpoint restricted to localhost")
        cluster, members = selectors.cluster_with_members(_cluster_name(request))
        return Response(
            {
                "db_member_ids": selectors.sample_counts(cluster),
                "collector_members": [
                    {
                        "id": m.member_id,
                        "name": m.name,
                        "endpoint": m.endpoint,
                        "is_default": m.is_default,
                    }
                    for m in members
                ]
                or None,
                "default_member_id": _default_id(members),
                "timestamp": int(time.time()),
            }
        )


def _layout_body(request) -> dict:
    """The PUT body as a layout: over PANEL_CONFIG_MAX_BYTES, unparsable, no JSON object or not
    the layout's shape are all answered "invalid JSON", as the reference."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > PANEL_CONFIG_MAX_BYTES:
        raise InvalidInput("invalid JSON")
    try:
        body = request.body
    except RequestDataTooBig:
        raise InvalidInput("invalid JSON") from None
    if len(body) > PANEL_CONFIG_MAX_BYTES:
        raise InvalidInput("invalid JSON")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("invalid JSON") from None
    serializer = serializers.PanelConfigSerializer(data=data)
    if not isinstance(data, dict) or not serializer.is_valid():
        raise InvalidInput("invalid JSON")
    return serializer.validated_data


class PanelConfigViewSet(viewsets.ViewSet):
    """/api/user/panel-config: the session user's dashboard layout."""

    @extend_schema(responses=serializers.PanelConfigSerializer)
    def retrieve(self, request):
        return Response(selectors.panel_config_for(request.user))

    @extend_schema(request=serializers.PanelConfigSerializer, responses=MessageSerializer)
    def update(self, request):
        services.panel_config_save(user=request.user, config=_layout_body(request))
        return Response({"message": "ok"})
