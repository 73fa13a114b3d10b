"""Models of the monitoring app: the monitored cluster, its members and their time series.

Storage layout (sized in bench/run_monitoring.py): one `Sample` row per member and scrape holding
every value in a compact array indexed by `MetricName.slot` (PostgreSQL `real[]`, SQLite JSON
text), plus `SampleRollup` rows with per-bucket averages for the 300 s and 600 s tiers, so a 7-day
chart reads ~1000 pre-aggregated rows instead of 20 000 raw ones. Exact latest values live in
`Member.latest` (JSON), which `/api/current` serves. `PanelConfig` is each user's dashboard
layout of the panels in `monitoring.panels`.
"""

import json
from datetime import datetime

from django.conf import settings
from django.db import models


class MemberHealth(models.TextChoices):
    """A member's answer to the latest health probe (a Status RPC with a short timeout)."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"  # never probed, or the last probe is too old to vouch for anything


class ClusterHealth(models.TextChoices):
    """The cluster's state as the latest health probe saw it (rules in monitoring.health)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"


def _is_fresh(probed_at: datetime | None, now: datetime, max_age: float) -> bool:
    return probed_at is not None and (now - probed_at).total_seconds() <= max_age


class MonitoredCluster(models.Model):
    """An etcd cluster the collector scrapes: one row per monitored cluster record, named by
    the record's id (`default` is the cluster of ETCD_ENDPOINTS)."""

    name = models.CharField(max_length=100, unique=True)
    endpoints = models.JSONField(default=list)
    last_member_sync = models.DateTimeField(null=True, blank=True)
    last_reached_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_cycle_at = models.DateTimeField(null=True, blank=True)
    # How long that cycle took (scrape to stored); with many clusters per task it is the only
    # per-cluster record of it.
    last_cycle_ms = models.FloatField(null=True, blank=True)
    # Collection lease: a collector owns the cluster while lock_until is in the future.
    lock_until = models.DateTimeField(null=True, blank=True)
    lock_token = models.CharField(max_length=64, blank=True, default="")
    # {tier seconds: first bucket start not yet rolled up}
    rollup_state = models.JSONField(default=dict)
    # The latest health probe's verdict and its numbers (monitoring.health.ClusterSummary).
    health = models.CharField(
        max_length=12, choices=ClusterHealth.choices, default=ClusterHealth.UNKNOWN
    )
    health_at = models.DateTimeField(null=True, blank=True)
    health_summary = models.JSONField(default=dict)

    def __str__(self) -> str:
        return self.name

    def health_now(self, *, now: datetime, max_age: float) -> str:
        """The stored verdict, or `unknown` when no probe has vouched for it within max_age."""
        return self.health if _is_fresh(self.health_at, now, max_age) else ClusterHealth.UNKNOWN


class Member(models.Model):
    """One etcd member, keyed by its decimal id within a cluster (never by endpoint order)."""

    # int4: it is part of every sample row's key, and four bytes there matter.
    id = models.AutoField(primary_key=True)
    cluster = models.ForeignKey(MonitoredCluster, on_delete=models.CASCADE, related_name="members")
    member_id = models.CharField(max_length=20)
    name = models.CharField(max_length=255, blank=True, default="")
    client_urls = models.JSONField(default=list)
    peer_urls = models.JSONField(default=list)
    scrape_url = models.CharField(max_length=500, blank=True, default="")
    in_cluster = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    is_leader = models.BooleanField(default=False)
    is_learner = models.BooleanField(default=False)
    # When this monitor first saw the member as a learner (null: a voter). etcd never demotes,
    # so a member that is still a learner has been one since then: learner_stuck measures the
    # learner's age from here, not from an alert that a restart or a data gap may have dropped.
    learner_since = models.DateTimeField(null=True, blank=True)
    collector_up = models.BooleanField(default=False)
    etcd_version = models.CharField(max_length=32, blank=True, default="")
    # The db file's version from Status (etcd 3.6+); "" for members that do not report it.
    storage_version = models.CharField(max_length=32, blank=True, default="")
    # Source metric names the last successful scrape lacked (etcd versions rename and drop
    # names): /api/range says which requested series this member cannot have.
    unexported_metrics = models.JSONField(default=list)
    last_seen = models.DateTimeField(null=True, blank=True)
    last_scrape_at = models.DateTimeField(null=True, blank=True)
    last_scrape_error = models.TextField(blank=True, default="")
    latest_ts = models.BigIntegerField(null=True, blank=True)
    latest = models.JSONField(null=True, blank=True)
    grpc_methods = models.JSONField(default=list)
    # Per quantile in `latest`: "window" (QUANTILE_WINDOW_SECONDS) or "cumulative" (since start).
    quantile_basis = models.JSONField(default=dict)
    # What the next scrape's rates and windowed quantiles need (survives restarts).
    scrape_state = models.JSONField(default=dict)
    sample_count = models.BigIntegerField(default=0)
    # The health probe's view (every HEALTH_PROBE_INTERVAL); the collector never writes these.
    health = models.CharField(
        max_length=8, choices=MemberHealth.choices, default=MemberHealth.UNKNOWN
    )
    probed_at = models.DateTimeField(null=True, blank=True)
    probe_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "member_id"], name="member_unique_id")
        ]
        ordering = ["cluster_id", "name", "member_id"]

    def __str__(self) -> str:
        return f"{self.name or '?'} ({self.member_id})"

    @property
    def endpoint(self) -> str:
        """The first advertised client URL (display only)."""
        return self.client_urls[0] if self.client_urls else self.scrape_url

    def health_now(self, *, now: datetime, max_age: float) -> tuple[str, str | None]:
        """(health, error): the latest probe's verdict while it is at most max_age old."""
        if self.probed_at is None:
            return MemberHealth.UNKNOWN, "not probed yet"
        if not _is_fresh(self.probed_at, now, max_age):
            age = int((now - self.probed_at).total_seconds())
            return MemberHealth.UNKNOWN, f"no health probe for {age} s"
        if self.health == MemberHealth.DOWN:
            return MemberHealth.DOWN, self.probe_error or "did not answer the health probe"
        return self.health, None

    def learner_since_at(self, *, is_learner: bool, now: datetime) -> datetime | None:
        """`learner_since` for a member now reported as a learner or not: kept while it stays
        a learner, `now` when it becomes one, None once promoted."""
        if not is_learner:
            return None
        return self.learner_since or now

    def to_info(self, *, health: str | None = None) -> dict:
        """The reference's MemberInfo shape; a member known to be down is never the leader."""
        return {
            "id": self.member_id,
            "name": self.name,
            "client_urls": list(self.client_urls),
            "peer_urls": list(self.peer_urls) or None,
            "endpoint": self.endpoint,
            "is_default": self.is_default,
            "is_leader": self.is_leader and health != MemberHealth.DOWN,
        }

    def to_health_info(self, *, now: datetime, max_age: float) -> dict:
        """MemberInfo plus the health fields /api/members and /api/status add."""
        health, error = self.health_now(now=now, max_age=max_age)
        return {
            **self.to_info(health=health),
            "health": str(health),
            "last_seen": int(self.last_seen.timestamp()) if self.last_seen else None,
            "error": error,
            "etcd_version": self.etcd_version or None,
            "is_learner": self.is_learner,
        }


class MetricName(models.Model):
    """The registry of stored metric names; `slot` is the position in every values array."""

    slot = models.SmallAutoField(primary_key=True)
    name = models.CharField(max_length=200, unique=True)

    def __str__(self) -> str:
        return f"{self.slot}:{self.name}"


class ValuesArrayField(models.Field):
    """A float array: `real[]` on PostgreSQL (4 B per value), JSON text elsewhere (SQLite).

    Index i holds the value of MetricName slot i+1; NULL means "not measured in this scrape".
    """

    description = "compact array of floats"

    def db_type(self, connection):
        return "real[]" if connection.vendor == "postgresql" else "text"

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if connection.vendor == "postgresql":
            return list(value)
        return json.dumps(list(value), separators=(",", ":"))

    def from_db_value(self, value, expression, connection):
        if isinstance(value, str):
            return json.loads(value)
        return value

    @staticmethod
    def postgres_literal(values) -> str:
        """The array as one `{…}` text literal for a `%s::real[]` parameter (the collector's
        write): psycopg would otherwise adapt it element by element in Python."""
        return "{" + ",".join("NULL" if v is None else repr(float(v)) for v in values) + "}"


class Sample(models.Model):
    """All values of one member at one scrape (ts = the cycle's start, Unix seconds).

    On PostgreSQL the table is partitioned by RANGE (ts), one partition per UTC day plus a
    DEFAULT one (migration 0005, monitoring.partitions), so retention drops whole days; the
    model is unchanged, and every query through it reaches the parent table.
    """

    pk = models.CompositePrimaryKey("member_id", "ts")
    ts = models.BigIntegerField()
    member = models.ForeignKey(
        Member, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False
    )
    vals = ValuesArrayField()

    def __str__(self) -> str:
        return f"sample {self.member_id}@{self.ts}"


class SampleRollup(models.Model):
    """Per-slot averages of a member's samples over one bucket of `tier` seconds."""

    pk = models.CompositePrimaryKey("member_id", "tier", "bucket")
    bucket = models.BigIntegerField()
    member = models.ForeignKey(
        Member, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False
    )
    tier = models.SmallIntegerField()
    vals = ValuesArrayField()

    def __str__(self) -> str:
        return f"rollup {self.member_id}/{self.tier}@{self.bucket}"


class PanelConfig(models.Model):
    """A user's dashboard layout: panel/card visibility and order (shape of §3.4), merged with
    the registry in `monitoring.panels` whenever it is read or saved."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="panel_config"
    )
    panels = models.JSONField(default=list)
    cards = models.JSONField(null=True, blank=True)  # None: never saved (legacy shape)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "accounts_panelconfig"  # created by accounts, which held the model before

    def __str__(self) -> str:
        return f"panel config of {self.user}"
