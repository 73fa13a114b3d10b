"""Input shapes of the channel endpoints. The config is checked per kind by the service."""

from rest_framework import serializers

from etcdmonitor_site.api import JsonObjectField, StrictBooleanField, StrictStringField


class ChannelNameField(StrictStringField):
    default_error_messages = {"invalid": "must be a string", "long": "is too long"}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > 200:
            self.fail("long")
        return value


class ChannelCreateSerializer(serializers.Serializer):
    """`{"name", "kind", "config", "enabled"?}`."""

    name = ChannelNameField()
    kind = serializers.ChoiceField(choices=["email", "webhook", "slack", "alertmanager"])
    config = JsonObjectField()
    enabled = StrictBooleanField(required=False, default=True)


class ChannelPatchSerializer(serializers.Serializer):
    """Any of `name`, `config` (merged into the stored one), `enabled`; `kind` only unchanged."""

    name = ChannelNameField(required=False)
    kind = StrictStringField(required=False)
    config = JsonObjectField(required=False)
    enabled = StrictBooleanField(required=False)
