"""DRF viewsets of the alerts app: alerts, rules, silences. Actions stay thin."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from alerts import selectors, services
from alerts.api import serializers
from alerts.models import Alert
from audit.services import Actor
from etcdmonitor_site.api import validated, validated_body
from etcdmonitor_site.errors import InvalidInput, NotFound


class AlertViewSet(viewsets.ViewSet):
    """Active alerts and the last 24 h of resolved ones; one alert's detail; acknowledge."""

    @extend_schema(
        parameters=[serializers.AlertQuerySerializer], responses=serializers.AlertListSerializer
    )
    def list(self, request):
        query = validated(serializers.AlertQuerySerializer, request.query_params)
        return Response({"alerts": selectors.alerts_list(now=timezone.now(), **query)})

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def retrieve(self, request, pk: int):
        alert = Alert.objects.filter(pk=pk).first()
        if alert is None:
            raise NotFound("alert not found")
        return Response({"alert": selectors.alert_detail(alert, now=timezone.now())})

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def ack(self, request, pk: int):
        alert = services.alert_acknowledge(alert_id=pk, actor=Actor.from_request(request))
        return Response({"alert": alert})


class RuleViewSet(viewsets.ViewSet):
    """The built-in rules with their settings; PATCH changes one (staff)."""

    @extend_schema(responses=serializers.RuleSerializer(many=True))
    def list(self, request):
        services.rules_ensure()
        return Response({"rules": selectors.rules_list()})

    @extend_schema(request=serializers.RulePatchSerializer, responses=serializers.RuleSerializer)
    def partial_update(self, request, pk: str):
        # The service validates the body itself: strict types, unknown names refused.
        if not isinstance(request.data, dict):
            raise InvalidInput("body must be an object")
        rule = services.rule_update(
            rule_id=pk, changes=dict(request.data), actor=Actor.from_request(request)
        )
        return Response({"rule": rule})


class SilenceViewSet(viewsets.ViewSet):
    """Silences: list, create, expire (DELETE). Writes are staff only."""

    @extend_schema(responses=serializers.SilenceSerializer(many=True))
    def list(self, request):
        return Response({"silences": selectors.silences_list(now=timezone.now())})

    @extend_schema(
        request=serializers.SilenceInputSerializer, responses={201: serializers.SilenceSerializer}
    )
    def create(self, request):
        data = validated_body(
            request, serializers.SilenceInputSerializer, not_an_object="body must be an object"
        )
        silence = services.silence_create(
            matchers=dict(data["matchers"]),
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            comment=data["comment"],
            actor=Actor.from_request(request),
        )
        return Response({"silence": silence}, status=201)

    @extend_schema(request=None, responses=serializers.SilenceSerializer)
    def destroy(self, request, pk: int):
        silence = services.silence_expire(silence_id=pk, actor=Actor.from_request(request))
        return Response({"silence": silence})
