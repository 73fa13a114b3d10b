"""Input shapes of the channel endpoints. The config is checked per kind by the service."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from etcdmonitor_site.api import StrictBooleanField, StrictStringField


class ChannelNameField(StrictStringField):
    default_error_messages = {"invalid": "must be a string", "long": "is too long"}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > 200:
            self.fail("long")
        return value


@extend_schema_field(OpenApiTypes.OBJECT)
class ConfigField(serializers.Field):
    """A JSON object, checked field by field by `notifications.channels.config_checked`."""

    default_error_messages = {"invalid": "must be an object"}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class ChannelCreateSerializer(serializers.Serializer):
    """`{"name", "kind", "config", "enabled"?}`."""

    name = ChannelNameField()
    kind = serializers.ChoiceField(choices=["email", "webhook", "slack", "alertmanager"])
    config = ConfigField()
    enabled = StrictBooleanField(required=False, default=True)


class ChannelPatchSerializer(serializers.Serializer):
    """Any of `name`, `config` (merged into the stored one), `enabled`; `kind` only unchanged."""

    name = ChannelNameField(required=False)
    kind = StrictStringField(required=False)
    config = ConfigField(required=False)
    enabled = StrictBooleanField(required=False)
