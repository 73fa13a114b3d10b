"""Input shapes of the KV tab endpoints. Types are strict: a number for a string is a 400."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from etcdmonitor_site.api import JsonObjectField, StrictBooleanField, StrictStringField

CA_CERT_MAX = 64 * 1024


class BoundedString(StrictStringField):
    default_error_messages = {"invalid": "must be a string", "long": "is too long"}

    def __init__(self, *, max_length: int, **kwargs):
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > self.max_length:
            self.fail("long")
        return value


class TabConnectionSerializer(serializers.Serializer):
    """`{"endpoint", "username"?, "password"?, "ca_cert"?, "insecure_skip_verify"?}`: how to
    reach a cluster, tested by `POST /api/kv/tabs/test` before a tab exists."""

    endpoint = BoundedString(max_length=2048)
    username = BoundedString(max_length=255, required=False, default="")
    password = BoundedString(max_length=1024, required=False, default="")
    ca_cert = BoundedString(max_length=CA_CERT_MAX, required=False, default="")
    insecure_skip_verify = StrictBooleanField(required=False, default=False)

    def validate_endpoint(self, value):
        if not value.strip():
            raise serializers.ValidationError("is required")
        return value


class TabCreateSerializer(TabConnectionSerializer):
    """The connection fields plus `"name"?`."""

    name = BoundedString(max_length=200, required=False, default="")


class TabPatchSerializer(serializers.Serializer):
    """Any of the create fields, plus `clear_password: true` to remove the stored password."""

    endpoint = BoundedString(max_length=2048, required=False)
    name = BoundedString(max_length=200, required=False)
    username = BoundedString(max_length=255, required=False)
    password = BoundedString(max_length=1024, required=False)
    clear_password = StrictBooleanField(required=False, default=False)
    ca_cert = BoundedString(max_length=CA_CERT_MAX, required=False)
    insecure_skip_verify = StrictBooleanField(required=False)


class TabTestSerializer(serializers.Serializer):
    """Optional credentials to try instead of the stored ones (absent password = stored)."""

    username = BoundedString(max_length=255, required=False)
    password = BoundedString(max_length=1024, required=False)


class TabOrderSerializer(serializers.Serializer):
    ids = serializers.ListField(child=BoundedString(max_length=64), min_length=1, max_length=64)


@extend_schema_field(
    {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}
)
class EndpointsField(serializers.Field):
    """A list of URL strings, or (on create) one comma-separated string; checked by the
    service (`endpoints_validate`), which names the bad one."""

    default_error_messages = {"invalid": "must be a list of URLs or a comma-separated string"}

    def to_internal_value(self, data):
        if isinstance(data, str) and len(data) <= 16 * 2048:
            return data
        if (
            isinstance(data, list)
            and len(data) <= 64
            and all(isinstance(item, str) and len(item) <= 2048 for item in data)
        ):
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value


class ClusterCreateSerializer(serializers.Serializer):
    """`POST /api/clusters`: endpoints (list or comma-separated string) and the optional name,
    credentials, TLS fields, labels and monitored flag."""

    endpoints = EndpointsField()
    name = BoundedString(max_length=200, required=False, default="")
    username = BoundedString(max_length=255, required=False, default="")
    password = BoundedString(max_length=1024, required=False, default="")
    ca_cert = BoundedString(max_length=CA_CERT_MAX, required=False, default="")
    insecure_skip_verify = StrictBooleanField(required=False, default=False)
    labels = JsonObjectField(required=False, default=dict)
    monitored = StrictBooleanField(required=False, default=False)


class ClusterPatchSerializer(serializers.Serializer):
    """`PATCH /api/clusters/{id}`: any create field, plus `clear_password: true`. A list of
    endpoints must be a JSON list here (a change names exactly what it becomes)."""

    endpoints = serializers.ListField(
        child=BoundedString(max_length=2048), min_length=1, max_length=64, required=False
    )
    name = BoundedString(max_length=200, required=False)
    username = BoundedString(max_length=255, required=False)
    password = BoundedString(max_length=1024, required=False)
    clear_password = StrictBooleanField(required=False, default=False)
    ca_cert = BoundedString(max_length=CA_CERT_MAX, required=False)
    insecure_skip_verify = StrictBooleanField(required=False)
    labels = JsonObjectField(required=False)
    monitored = StrictBooleanField(required=False)
