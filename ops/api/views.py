"""DRF viewsets of the ops app: cluster maintenance. Actions stay thin."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from audit.services import Actor
from etcdmonitor_site.api import OpsEnabled, validated
from ops import services
from ops.api import serializers


class OpsViewSet(viewsets.ViewSet):
    permission_classes = [IsAuthenticated, OpsEnabled]


class MaintenanceViewSet(OpsViewSet):
    """Defragment, snapshot, alarms, move-leader, HashKV and compaction."""

    @extend_schema(request=serializers.MemberTargetSerializer, responses=OpenApiTypes.OBJECT)
    def defragment(self, request):
        data = validated(serializers.MemberTargetSerializer, request.data)
        return Response(
            services.member_defragment(
                member_id=data["member_id"], actor=Actor.from_request(request)
            )
        )

    @extend_schema(
        parameters=[serializers.SnapshotQuerySerializer],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def snapshot(self, request):
        data = validated(serializers.SnapshotQuerySerializer, request.query_params)
        stream = services.member_snapshot(
            member_id=data.get("member_id"), actor=Actor.from_request(request)
        )
        response = StreamingHttpResponse(stream.chunks, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{stream.filename}"'
        response["X-Etcd-Member-Id"] = stream.member.id_str
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def alarms(self, request):
        return Response({"alarms": services.alarms_list()})

    @extend_schema(request=serializers.AlarmDisarmSerializer, responses=OpenApiTypes.OBJECT)
    def alarm_disarm(self, request):
        data = validated(serializers.AlarmDisarmSerializer, request.data)
        alarm_type = services.parse_alarm_type(data["alarm_type"])
        return Response(
            services.alarm_disarm(
                member_id=data["member_id"],
                alarm_type=alarm_type,
                actor=Actor.from_request(request),
            )
        )

    @extend_schema(request=serializers.MoveLeaderSerializer, responses=OpenApiTypes.OBJECT)
    def move_leader(self, request):
        data = validated(serializers.MoveLeaderSerializer, request.data)
        return Response(
            services.leader_move(
                target_member_id=data["target_member_id"], actor=Actor.from_request(request)
            )
        )

    @extend_schema(request=None, responses=serializers.HashKVOutputSerializer)
    def hashkv(self, request):
        return Response(services.cluster_hashkv(actor=Actor.from_request(request)))

    @extend_schema(request=serializers.CompactSerializer, responses=OpenApiTypes.OBJECT)
    def compact(self, request):
        data = validated(serializers.CompactSerializer, request.data)
        return Response(
            services.cluster_compact(
                retain_count=data["retain_count"],
                physical=data["physical"],
                actor=Actor.from_request(request),
            )
        )

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def compact_revision(self, request):
        return Response({"revision": services.current_revision()})
