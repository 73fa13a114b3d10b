"""Models of the alerts app: rule settings, alerts and their history, silences, and the
per-cluster evaluation and consistency-check records.

The rules themselves (what each checks, its defaults) are code in `alerts.rules`; `AlertRule`
holds what an operator changed: enabled, `for_seconds`, thresholds and per-cluster overrides.
A cluster is named by its `cluster_id` string (today `MonitoredCluster.name`, "default").
"""

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce


class Severity(models.TextChoices):
    """How bad an alert is; `RANK` orders them (a rise keeps the alert and sends an update)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertState(models.TextChoices):
    """pending: the condition holds, not yet for `for_seconds`; firing; resolved (history).

    "inactive" is no row at all: a pending alert whose condition clears is deleted.
    """

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


ACTIVE_STATES = (AlertState.PENDING, AlertState.FIRING)


class AlertRule(models.Model):
    """An operator's settings of one built-in rule (its id is the rule id, e.g. member_down).

    `thresholds` holds every threshold of the rule (defaults filled in); `cluster_overrides`
    maps a cluster_id to {"enabled"?, "for_seconds"?, "thresholds"?} that win for that cluster.
    """

    id = models.CharField(primary_key=True, max_length=64)
    enabled = models.BooleanField(default=True)
    for_seconds = models.PositiveIntegerField(default=0)
    thresholds = models.JSONField(default=dict)
    cluster_overrides = models.JSONField(default=dict)
    updated_at = models.DateTimeField(null=True, blank=True)
    updated_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


def alert_fingerprint(rule: str, cluster_id: str, member_id: str | None) -> str:
    """A stable id of what an alert is about (rule x cluster x member), as Alertmanager's."""
    text = "\x1f".join((rule, cluster_id, member_id or ""))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Alert(models.Model):
    """One alert: a rule's condition on one cluster (and member) from pending to resolved.

    At most one pending/firing alert exists per rule x cluster x member (a partial unique
    constraint). `starts_at` is when it began firing (null while pending), `ends_at` when it
    resolved. `severity` only rises while the alert is active; every change is an AlertEvent.
    """

    rule = models.CharField(max_length=64)
    cluster_id = models.CharField(max_length=100)
    # NULL: the alert is about the whole cluster (the API shows null, not "").
    member_id = models.CharField(max_length=20, null=True, blank=True)  # noqa: DJ001
    fingerprint = models.CharField(max_length=16, db_index=True)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    state = models.CharField(max_length=8, choices=AlertState.choices)
    values = models.JSONField(default=dict)
    summary = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    pending_at = models.DateTimeField()
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()
    acknowledged_by = models.CharField(max_length=150, blank=True, default="")
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pending_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                "rule",
                "cluster_id",
                Coalesce("member_id", Value("")),
                condition=Q(state__in=["pending", "firing"]),
                name="alert_one_active_per_key",
            )
        ]
        indexes = [
            models.Index(fields=["state", "cluster_id"], name="alert_state_cluster"),
            models.Index(fields=["ends_at"], name="alert_ends_at"),
        ]

    def __str__(self) -> str:
        member = f"/{self.member_id}" if self.member_id else ""
        return f"{self.rule}@{self.cluster_id}{member} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES


class AlertEvent(models.Model):
    """One step of an alert's history: pending, firing, escalated, resolved, acknowledged."""

    class Kind(models.TextChoices):
        PENDING = "pending"
        FIRING = "firing"
        ESCALATED = "escalated"
        RESOLVED = "resolved"
        ACKNOWLEDGED = "acknowledged"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    values = models.JSONField(default=dict)
    username = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.alert_id} {self.kind} at {self.at:%Y-%m-%d %H:%M:%S}"


class Silence(models.Model):
    """Mutes the alerts its matchers all match (empty matcher: any value) from starts_at to
    ends_at. A silenced alert is still evaluated and listed, marked silenced, and sends
    nothing. Deleting one through the API expires it (ends_at = now), keeping the record."""

    rule = models.CharField(max_length=64, blank=True, default="")
    cluster_id = models.CharField(max_length=100, blank=True, default="")
    member_id = models.CharField(max_length=20, blank=True, default="")
    severity = models.CharField(max_length=8, blank=True, default="", choices=Severity.choices)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    comment = models.TextField(blank=True, default="")
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField()
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["ends_at"], name="silence_ends_at")]

    def __str__(self) -> str:
        return f"silence {self.pk} until {self.ends_at:%Y-%m-%d %H:%M:%S}"

    @property
    def matchers(self) -> dict[str, str]:
        """The non-empty matchers, as the API shows them."""
        fields = ("rule", "cluster_id", "member_id", "severity")
        return {name: getattr(self, name) for name in fields if getattr(self, name)}

    def matches(self, *, rule: str, cluster_id: str, member_id: str | None, severity: str) -> bool:
        """Whether every set matcher equals the alert's label."""
        labels = {
            "rule": rule,
            "cluster_id": cluster_id,
            "member_id": member_id or "",
            "severity": severity,
        }
        return all(labels[name] == value for name, value in self.matchers.items())

    def is_active(self, now) -> bool:
        return self.starts_at <= now < self.ends_at


class ClusterEvaluation(models.Model):
    """One row per evaluated cluster: the lock two evaluators contend for (SELECT … FOR UPDATE
    SKIP LOCKED inside the evaluation's transaction) and when the last evaluation ran."""

    cluster_id = models.CharField(primary_key=True, max_length=100)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(default=0)
    evaluations = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"evaluation of {self.cluster_id}"


class ConsistencyCheck(models.Model):
    """One periodic HashKV round of a cluster and its verdict (what `hashkv_mismatch` reads).

    consistent: every member answered at the same revision with equal hashes. mismatch: every
    member answered at the same revision and compact revision, and hashes differ, twice in a
    row. inconclusive: anything else (a member did not answer, compaction in flight...).
    """

    class Outcome(models.TextChoices):
        CONSISTENT = "consistent"
        MISMATCH = "mismatch"
        INCONCLUSIVE = "inconclusive"

    cluster_id = models.CharField(max_length=100)
    checked_at = models.DateTimeField()
    revision = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    detail = models.TextField(blank=True, default="")
    results = models.JSONField(default=list)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["cluster_id", "checked_at"], name="check_cluster_at")]

    def __str__(self) -> str:
        return f"hashkv {self.cluster_id} {self.outcome} at {self.checked_at:%Y-%m-%d %H:%M:%S}"
