"""Input shapes of the ops API. Errors become `{"error": "<field>: <message>"}` (400)."""

from rest_framework import serializers


class MemberIdField(serializers.CharField):
    """A decimal uint64 member id, given as a JSON string or number."""

    default_error_messages = {"invalid": "must be the decimal member id"}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int):
            self.fail("invalid")
        text = str(data).strip()
        if not text.isdigit() or len(text) > 20 or int(text) >= 2**64:
            self.fail("invalid")
        return int(text)


class MemberTargetSerializer(serializers.Serializer):
    member_id = MemberIdField()


class SnapshotQuerySerializer(serializers.Serializer):
    member_id = MemberIdField(required=False)


class AlarmDisarmSerializer(serializers.Serializer):
    member_id = MemberIdField()
    alarm_type = serializers.CharField(max_length=32)


class MoveLeaderSerializer(serializers.Serializer):
    target_member_id = MemberIdField()


class CompactSerializer(serializers.Serializer):
    retain_count = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    physical = serializers.BooleanField(default=False)

    def to_internal_value(self, data):
        # JSON true is not a count of 1, and "5" is not a number: strict types only.
        if isinstance(data, dict) and (isinstance(data.get("retain_count"), bool | str)):
            raise serializers.ValidationError(
                {"retain_count": "retain_count must be a positive integer"}
            )
        return super().to_internal_value(data)


class HashKVMemberSerializer(serializers.Serializer):
    member_id = serializers.CharField()
    member_name = serializers.CharField()
    hash = serializers.IntegerField()
    revision = serializers.IntegerField()
    compact_revision = serializers.IntegerField()
    error = serializers.CharField(required=False, help_text="present when it did not answer")


class UnreachableMemberSerializer(serializers.Serializer):
    member_id = serializers.CharField()
    member_name = serializers.CharField()
    error = serializers.CharField()


class HashKVOutputSerializer(serializers.Serializer):
    consistent = serializers.BooleanField(help_text="every member answered and all agree")
    incomplete = serializers.BooleanField(help_text="some member did not answer")
    mismatch = serializers.BooleanField(help_text="the members that answered disagree")
    unreachable = UnreachableMemberSerializer(many=True)
    revision = serializers.IntegerField()
    results = HashKVMemberSerializer(many=True)
    duration_ms = serializers.IntegerField()
