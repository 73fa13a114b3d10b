"""What the apps' API views share: input validation, strict JSON fields, a message body, and
the ops switch (the audit log is behind it too)."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import BasePermission

from etcdmonitor_site.errors import InvalidInput


def validated(serializer_class, data) -> dict:
    """`data` checked by `serializer_class`; a refusal is DRF's ValidationError, which the
    one exception handler words for the route (etcdmonitor_site.exceptions)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def validated_body(
    request, serializer_class, *, not_an_object: str, code: str = "", optional: bool = False
) -> dict:
    """The request's JSON object body, validated; `not_an_object` is the refusal's text when
    the body is JSON but no object (an `optional` body may also be absent)."""
    data = request.data
    if optional and not data:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput(not_an_object, code=code)
    return validated(serializer_class, data)


@extend_schema_field(OpenApiTypes.STR)
class StrictStringField(serializers.Field):
    """A JSON string, taken as is: no trimming, no number coercion; NUL allowed (values)."""

    default_error_messages = {"invalid": "must be a string"}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanField(serializers.Field):
    default_error_messages = {"invalid": "must be a boolean"}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.OBJECT)
class JsonObjectField(serializers.Field):
    """A JSON object, passed on as it is: the service checks its names and values."""

    default_error_messages = {"invalid": "must be an object"}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class OpsEnabled(BasePermission):
    """OPS_ENABLED=false turns every /api/ops/* route into 403 {"error": "ops disabled"}."""

    message = "ops disabled"

    def has_permission(self, request, view) -> bool:
        return settings.OPS_ENABLED


def cluster_id_param(
    request, *, names: tuple[str, ...] = ("cluster_id",), code: str = ""
) -> tuple[str, str]:
    """(the parameter used, the cluster id) a request names: a query parameter, or on a write
    also a body field; ("", "") when it names none (the default cluster). Aliases (the KV
    routes' `tab_id`) may be given too, but never for two different clusters."""
    body = {}
    if request.method not in ("GET", "HEAD", "OPTIONS") and isinstance(request.data, dict):
        body = request.data
    found: dict[str, str] = {}
    for name in names:
        for value in (request.query_params.get(name), body.get(name)):
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise InvalidInput(f"{name} must be a string", code=code)
            found.setdefault(name, value)
            if found[name] != value:
                raise InvalidInput(f"{name} names two different clusters", code=code)
    if len(set(found.values())) > 1:
        raise InvalidInput(f"{' and '.join(found)} name different clusters", code=code)
    return next(iter(found.items()), ("", ""))
