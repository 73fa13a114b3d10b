"""Input and output shapes of the alerts API. Errors become `{"error": "<field>: <message>"}`."""

from datetime import UTC, datetime

from rest_framework import serializers

from alerts.models import AlertState, Severity
from etcdmonitor_site.api import StrictStringField

MAX_UNIX = 2**33


class UnixTimeField(serializers.IntegerField):
    """Unix seconds in, an aware datetime out (JSON numbers only, never strings or booleans)."""

    default_error_messages = {"invalid": "must be Unix seconds"}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if not 0 <= data <= MAX_UNIX:
            self.fail("invalid")
        return datetime.fromtimestamp(int(data), tz=UTC)


class AlertQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=AlertState.values, required=False, default="")
    severity = serializers.ChoiceField(choices=Severity.values, required=False, default="")
    cluster_id = serializers.CharField(required=False, default="", max_length=100)


class AlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.CharField()
    severity = serializers.ChoiceField(choices=Severity.values)
    state = serializers.ChoiceField(choices=AlertState.values)
    silenced = serializers.BooleanField()
    acknowledged = serializers.BooleanField()
    cluster_id = serializers.CharField()
    member_id = serializers.CharField(allow_null=True)
    summary = serializers.CharField()
    values = serializers.DictField()
    starts_at = serializers.IntegerField(help_text="firing since; while pending, first seen")
    ends_at = serializers.IntegerField(allow_null=True)


class AlertListSerializer(serializers.Serializer):
    alerts = AlertSerializer(many=True)


class MatchersSerializer(serializers.Serializer):
    rule = StrictStringField(required=False)
    cluster_id = StrictStringField(required=False)
    member_id = StrictStringField(required=False)
    severity = StrictStringField(required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(f"{sorted(unknown)[0]} is not a matcher")
        return super().to_internal_value(data)


class SilenceInputSerializer(serializers.Serializer):
    matchers = MatchersSerializer()
    starts_at = UnixTimeField(required=False, default=None, allow_null=True)
    ends_at = UnixTimeField()
    comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)


class SilenceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    matchers = serializers.DictField(child=serializers.CharField())
    starts_at = serializers.IntegerField()
    ends_at = serializers.IntegerField()
    comment = serializers.CharField()
    created_by = serializers.CharField()
    created_at = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["pending", "active", "expired"])


class RuleSerializer(serializers.Serializer):
    id = serializers.CharField()
    title = serializers.CharField()
    severity = serializers.ChoiceField(choices=Severity.values)
    implemented = serializers.BooleanField(help_text="false: the rule is listed, never fires")
    enabled = serializers.BooleanField()
    for_seconds = serializers.IntegerField()
    thresholds = serializers.DictField()
    cluster_overrides = serializers.DictField()
    runbook_url = serializers.CharField()
    updated_at = serializers.IntegerField(allow_null=True)
    updated_by = serializers.CharField(allow_null=True)


class RulePatchSerializer(serializers.Serializer):
    """Documentation of PATCH's body; the service validates it (unknown names refused)."""

    enabled = serializers.BooleanField(required=False)
    for_seconds = serializers.IntegerField(required=False, min_value=0)
    thresholds = serializers.DictField(child=serializers.FloatField(), required=False)
    cluster_overrides = serializers.DictField(required=False)
