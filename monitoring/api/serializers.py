"""Input and output shapes of the monitoring API."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers


class MemberInfoSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    client_urls = serializers.ListField(child=serializers.CharField())
    peer_urls = serializers.ListField(child=serializers.CharField(), allow_null=True)
    endpoint = serializers.CharField()
    is_default = serializers.BooleanField()
    is_leader = serializers.BooleanField()


class MemberHealthInfoSerializer(MemberInfoSerializer):
    """MemberInfo plus the health probe's view; `is_leader` is false for a down member."""

    health = serializers.ChoiceField(choices=["up", "down", "unknown"])
    last_seen = serializers.IntegerField(allow_null=True, help_text="Unix s of the last answer")
    error = serializers.CharField(allow_null=True)
    etcd_version = serializers.CharField(allow_null=True)
    is_learner = serializers.BooleanField(
        help_text="a non-voting member (MemberAdd with is_learner), not counted in the quorum"
    )


class AlarmSerializer(serializers.Serializer):
    member_id = serializers.CharField()
    alarm = serializers.CharField(help_text="NOSPACE or CORRUPT")


class ClusterHealthSerializer(serializers.Serializer):
    """The latest health probe round (every HEALTH_PROBE_INTERVAL), as stored."""

    health = serializers.ChoiceField(
        choices=["healthy", "degraded", "critical", "unreachable", "unknown"]
    )
    members_total = serializers.IntegerField()
    members_up = serializers.IntegerField(allow_null=True)
    quorum = serializers.IntegerField(allow_null=True)
    quorum_margin = serializers.IntegerField(allow_null=True)
    leader_id = serializers.CharField(allow_null=True)
    alarms = AlarmSerializer(many=True)
    db_size_bytes = serializers.IntegerField(allow_null=True)
    db_quota_bytes = serializers.IntegerField(allow_null=True)
    db_quota_ratio = serializers.FloatField(allow_null=True)
    as_of = serializers.IntegerField(allow_null=True, help_text="Unix s of the probe round")


# The view is a ViewSet `list` action, which the schema would otherwise wrap in an array.
@extend_schema_serializer(many=False)
class MembersOutputSerializer(serializers.Serializer):
    members = MemberHealthInfoSerializer(many=True)
    default_member_id = serializers.CharField()
    timestamp = serializers.IntegerField()


class CurrentOutputSerializer(serializers.Serializer):
    timestamp = serializers.IntegerField()
    member_id = serializers.CharField()
    metrics = serializers.DictField(child=serializers.FloatField(), allow_null=True)
    grpc_methods = serializers.ListField(child=serializers.DictField())
    basis = serializers.DictField(
        child=serializers.ChoiceField(choices=["window", "cumulative"]),
        help_text="per latency quantile in `metrics`: over the trailing QUANTILE_WINDOW_SECONDS "
        '("window") or since the member started ("cumulative": the window saw no observation)',
    )
    stale = serializers.BooleanField(
        help_text="the last scrape failed, is older than two intervals, or the member is down"
    )
    as_of = serializers.IntegerField(allow_null=True, help_text="Unix s of the values shown")


class PointSerializer(serializers.Serializer):
    ts = serializers.IntegerField()
    value = serializers.FloatField()


class RangeOutputSerializer(serializers.Serializer):
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    member_id = serializers.CharField()
    metrics = serializers.DictField(child=PointSerializer(many=True), allow_null=True)
    not_exported = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="requested metric → the etcd metric names it comes from, which this member's "
        "etcd does not export (its chart cannot have data); absent names are not listed",
    )


class MonitorStatusOutputSerializer(serializers.Serializer):
    status = serializers.CharField()
    app_version = serializers.CharField()
    collector_up = serializers.BooleanField()
    etcd_endpoint = serializers.CharField()
    etcd_version = serializers.CharField()
    storage_version = serializers.CharField(help_text='db storage version (etcd 3.6+), else ""')
    collect_interval = serializers.IntegerField()
    retention_days = serializers.IntegerField()
    members = MemberHealthInfoSerializer(many=True)
    default_member_id = serializers.CharField()
    member_count = serializers.IntegerField()
    last_collected = serializers.IntegerField(allow_null=True)
    timestamp = serializers.IntegerField()
    cluster = ClusterHealthSerializer()


class FleetAlertsSerializer(serializers.Serializer):
    firing = serializers.IntegerField()
    worst = serializers.CharField(allow_null=True)


class FleetClusterSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField())
    monitored = serializers.BooleanField()
    owner = serializers.CharField(allow_null=True)
    status = ClusterHealthSerializer()
    leader = serializers.CharField(allow_null=True)
    versions = serializers.ListField(child=serializers.CharField())
    last_collected = serializers.IntegerField(allow_null=True)
    wal_fsync_p99 = serializers.FloatField(allow_null=True)
    alerts = FleetAlertsSerializer()


class FleetOutputSerializer(serializers.Serializer):
    clusters = FleetClusterSerializer(many=True)


class DebugOutputSerializer(serializers.Serializer):
    db_member_ids = serializers.DictField(child=serializers.IntegerField())
    collector_members = serializers.ListField(child=serializers.DictField(), allow_null=True)
    default_member_id = serializers.CharField()
    timestamp = serializers.IntegerField()


class LayoutEntrySerializer(serializers.Serializer):
    id = serializers.CharField(max_length=128)
    visible = serializers.BooleanField()
    order = serializers.IntegerField(required=False, default=0)


class PanelConfigSerializer(serializers.Serializer):
    panels = LayoutEntrySerializer(many=True, required=False)
    cards = LayoutEntrySerializer(many=True, required=False)
