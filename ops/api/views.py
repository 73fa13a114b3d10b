"""DRF viewsets of the ops app: cluster maintenance. Actions stay thin.

Every action acts on the default cluster unless the request names another with `cluster_id`
(query parameter, or a body field on writes): a shared cluster or the user's own.
"""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from audit.services import Actor
from clusters.services import route_cluster
from etcdgateway import ClusterGateway
from etcdmonitor_site.api import OpsEnabled, cluster_id_param, validated
from etcdmonitor_site.policy import RoutePolicy
from ops import services
from ops.api import serializers

CLUSTER_ID = OpenApiParameter(
    "cluster_id", str, description="the cluster to act on (default: `default`)"
)


@extend_schema(parameters=[CLUSTER_ID])
class OpsViewSet(viewsets.ViewSet):
    permission_classes = [RoutePolicy, OpsEnabled]

    def target(self) -> tuple[ClusterGateway, Actor]:
        """The gateway of the cluster the request names, and the actor acting on it."""
        _, cluster_id = cluster_id_param(self.request)
        record, gateway = route_cluster(
            actor=Actor.from_request(self.request),
            cluster_id=cluster_id,
            route=self.request.path,
        )
        actor = Actor.from_request(
            self.request, cluster_id=record.pk if record is not None else "default"
        )
        return gateway, actor


class MaintenanceViewSet(OpsViewSet):
    """Defragment, snapshot, alarms, move-leader, HashKV and compaction."""

    @extend_schema(request=serializers.MemberTargetSerializer, responses=OpenApiTypes.OBJECT)
    def defragment(self, request):
        data = validated(serializers.MemberTargetSerializer, request.data)
        gateway, actor = self.target()
        return Response(
            services.member_defragment(member_id=data["member_id"], actor=actor, gateway=gateway)
        )

    @extend_schema(
        parameters=[serializers.SnapshotQuerySerializer],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def snapshot(self, request):
        data = validated(serializers.SnapshotQuerySerializer, request.query_params)
        gateway, actor = self.target()
        stream = services.member_snapshot(
            member_id=data.get("member_id"), actor=actor, gateway=gateway
        )
        response = StreamingHttpResponse(stream.chunks, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{stream.filename}"'
        response["X-Etcd-Member-Id"] = stream.member.id_str
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def alarms(self, request):
        gateway, _ = self.target()
        return Response({"alarms": services.alarms_list(gateway=gateway)})

    @extend_schema(request=serializers.AlarmDisarmSerializer, responses=OpenApiTypes.OBJECT)
    def alarm_disarm(self, request):
        data = validated(serializers.AlarmDisarmSerializer, request.data)
        alarm_type = services.parse_alarm_type(data["alarm_type"])
        gateway, actor = self.target()
        return Response(
            services.alarm_disarm(
                member_id=data["member_id"], alarm_type=alarm_type, actor=actor, gateway=gateway
            )
        )

    @extend_schema(request=serializers.MoveLeaderSerializer, responses=OpenApiTypes.OBJECT)
    def move_leader(self, request):
        data = validated(serializers.MoveLeaderSerializer, request.data)
        gateway, actor = self.target()
        return Response(
            services.leader_move(
                target_member_id=data["target_member_id"], actor=actor, gateway=gateway
            )
        )

    @extend_schema(request=None, responses=serializers.HashKVOutputSerializer)
    def hashkv(self, request):
        gateway, actor = self.target()
        return Response(services.cluster_hashkv(actor=actor, gateway=gateway))

    @extend_schema(request=serializers.CompactSerializer, responses=OpenApiTypes.OBJECT)
    def compact(self, request):
        data = validated(serializers.CompactSerializer, request.data)
        gateway, actor = self.target()
        return Response(
            services.cluster_compact(
                retain_count=data["retain_count"],
                physical=data["physical"],
                actor=actor,
                gateway=gateway,
            )
        )

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def compact_revision(self, request):
        gateway, _ = self.target()
        return Response({"revision": services.current_revision(gateway=gateway)})
