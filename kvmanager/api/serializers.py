"""Input shapes of the kvmanager API. Types are strict: `"ttl": "5"` or `"ttl": true` is a 400."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from etcdmonitor_site.api import StrictBooleanField, StrictStringField
from kvmanager.history import DELETED_PAGE, DELETED_PAGE_MAX, HISTORY_LIMIT, HISTORY_LIMIT_MAX
from kvmanager.services import MAX_TTL

LIST_MAX = 5000
SEARCH_MAX = 1000


@extend_schema_field(OpenApiTypes.STR)
class KeyField(StrictStringField):
    """An etcd key: a non-empty string without NUL characters or lone surrogates."""

    default_error_messages = {
        "invalid": "must be a string",
        "blank": "is required",
        "nul": "must not contain NUL characters",
        "encoding": "must be valid Unicode text",
    }

    def to_internal_value(self, data):
        key = super().to_internal_value(data)
        if key == "":
            self.fail("blank")
        if "\x00" in key:
            self.fail("nul")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("encoding")
        return key


@extend_schema_field(OpenApiTypes.INT64)
class StrictIntegerField(serializers.Field):
    """A JSON integer (not a string, float or boolean) within [min_value, max_value]."""

    default_error_messages = {
        "invalid": "must be an integer",
        "range": "must be between {min_value} and {max_value}",
    }

    def __init__(self, *, min_value: int, max_value: int, **kwargs):
        self.min_value, self.max_value = min_value, max_value
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        if not self.min_value <= data <= self.max_value:
            self.fail("range", min_value=self.min_value, max_value=self.max_value)
        return data

    def to_representation(self, value):
        return value


class PutSerializer(serializers.Serializer):
    """`{"key", "value"?, "ttl"?, "encoding"?, "dir"?}`; absent/null ttl keeps the current TTL."""

    key = KeyField()
    value = StrictStringField(required=False, default="")
    ttl = StrictIntegerField(min_value=0, max_value=MAX_TTL, required=False, allow_null=True)
    encoding = serializers.ChoiceField(choices=["utf-8", "base64"], required=False, allow_null=True)
    dir = StrictBooleanField(required=False, default=False)


class V3PutSerializer(PutSerializer):
    """The v3 put also takes `expected_mod_revision` (a compare-and-swap; 0 = create only)."""

    expected_mod_revision = StrictIntegerField(
        min_value=0, max_value=2**63 - 1, required=False, allow_null=True
    )


class DeleteSerializer(serializers.Serializer):
    key = KeyField()
    dir = StrictBooleanField(required=False, default=False)


class KeyQuerySerializer(serializers.Serializer):
    key = KeyField()


class ListQuerySerializer(serializers.Serializer):
    prefix = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )
    cursor = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    limit = serializers.IntegerField(required=False, default=500, min_value=1, max_value=LIST_MAX)


class WatchQuerySerializer(serializers.Serializer):
    """A live watch's prefix; empty watches the whole keyspace."""

    prefix = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )


class SearchQuerySerializer(ListQuerySerializer):
    q = serializers.CharField(trim_whitespace=False, max_length=1024)
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=SEARCH_MAX)


REVISION_MAX = 2**63 - 1


class HistoryQuerySerializer(serializers.Serializer):
    """`?key=&revision=&limit=`: a key's history, or with `revision` that revision's value."""

    key = KeyField()
    revision = serializers.IntegerField(required=False, min_value=1, max_value=REVISION_MAX)
    limit = serializers.IntegerField(
        required=False, default=HISTORY_LIMIT, min_value=1, max_value=HISTORY_LIMIT_MAX
    )


class DeletedQuerySerializer(serializers.Serializer):
    """`?prefix=&cursor=&limit=`: the recently deleted keys under a prefix."""

    prefix = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )
    cursor = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    limit = serializers.IntegerField(
        required=False, default=DELETED_PAGE, min_value=1, max_value=DELETED_PAGE_MAX
    )


class RevertSerializer(serializers.Serializer):
    """`{"key", "revision", "expected_mod_revision"?}`: write back the value of `revision`;
    `expected_mod_revision` is the key's mod_revision the client saw (0: it was deleted)."""

    key = KeyField()
    revision = StrictIntegerField(min_value=1, max_value=REVISION_MAX)
    expected_mod_revision = StrictIntegerField(
        min_value=0, max_value=REVISION_MAX, required=False, allow_null=True
    )


class RestoreSerializer(serializers.Serializer):
    """`{"key", "revision"}`: bring back the value deleted at `revision`."""

    key = KeyField()
    revision = StrictIntegerField(min_value=1, max_value=REVISION_MAX)
