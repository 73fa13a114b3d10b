"""Input shapes of the audit log API. Errors become `{"error": "<field>: <message>"}` (400)."""

from datetime import UTC, datetime

from rest_framework import serializers

MAX_PAGE_SIZE = 500


class UnixTimeField(serializers.IntegerField):
    """Unix seconds in, an aware datetime out; min/max are checked on the number."""

    def to_internal_value(self, data):
        seconds = super().to_internal_value(data)
        super().run_validators(seconds)
        return datetime.fromtimestamp(seconds, tz=UTC)

    def run_validators(self, value):
        """Already run on the seconds: the numeric validators cannot compare a datetime."""


class AuditQuerySerializer(serializers.Serializer):
    """The reference's lenient paging (page <= 0 → 1, page_size <= 0 → 20), plus a 500 cap."""

    page = serializers.IntegerField(required=False, default=1, max_value=10**6)
    page_size = serializers.IntegerField(required=False, default=20)
    operation = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
    username = serializers.CharField(required=False, default="", allow_blank=True, max_length=150)
    success = serializers.BooleanField(required=False, allow_null=True, default=None)
    since = UnixTimeField(
        required=False, default=None, allow_null=True, min_value=0, max_value=2**33
    )
    until = UnixTimeField(
        required=False, default=None, allow_null=True, min_value=0, max_value=2**33
    )
    format = serializers.ChoiceField(choices=["json", "csv"], required=False, default="json")

    def validate_page(self, value: int) -> int:
        return value if value > 0 else 1

    def validate_page_size(self, value: int) -> int:
        return min(value, MAX_PAGE_SIZE) if value > 0 else 20
