"""What the alerts engine hands to notifications: one `AlertNotice` per alert state to tell.

A plain value, so that notifications never imports the alerts app: the engine builds notices and
calls `notifications.services.notices_enqueue`, and the outbox stores each notice as JSON
(`to_dict` / `from_dict`), so a row can be delivered long after the alert itself changed.
"""

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("firing", "resolved")


@dataclass(frozen=True)
class AlertNotice:
    """One alert's state to notify: `status` "firing" (new, changed or repeated) or "resolved".

    `fingerprint` identifies the alert (rule x cluster x member) across evaluations; the
    channels' repeat interval and the receivers' de-duplication key on it. Times are Unix
    seconds; `ends_at` is set once the alert resolved.
    """

    alert_id: int
    fingerprint: str
    rule: str
    severity: str  # info | warning | critical
    status: str  # "firing" | "resolved"
    cluster_id: str
    cluster_name: str
    member_id: str | None
    summary: str
    description: str
    values: dict = field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float | None = None
    runbook_url: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AlertNotice":
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})

    def labels(self) -> dict[str, str]:
        """Prometheus-style labels: `alertname`, `severity`, `cluster` (the cluster's name),
        `cluster_id`, and `member` only for a member's alert (an empty label is no label)."""
        labels = {
            "alertname": self.rule,
            "severity": self.severity,
            "cluster": self.cluster_name or self.cluster_id,
            "cluster_id": self.cluster_id,
        }
        if self.member_id:
            labels["member"] = str(self.member_id)
        return labels

    def annotations(self) -> dict[str, str]:
        annotations = {"summary": self.summary, "description": self.description}
        if self.runbook_url:
            annotations["runbook_url"] = self.runbook_url
        return annotations


def rfc3339(unix_seconds: float | None) -> str:
    """`2024-05-01T12:00:00.123Z` (UTC, milliseconds), or "0001-01-01T00:00:00Z" for no time,
    which is how Alertmanager's webhook says "not ended"."""
    if not unix_seconds:
        return "0001-01-01T00:00:00Z"
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
