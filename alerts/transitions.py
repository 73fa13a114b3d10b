"""What an evaluation hands on: one `AlertTransition` per alert that started firing, rose in
severity while firing (`update`), or resolved. A plain value, so whatever sends notifications
can take the list without this app knowing about channels."""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AlertTransition:
    """One alert's change of state as notifications need it.

    status: "firing" (a new firing alert, or with `update` a severity rise of one already
    firing) or "resolved". `silenced`: a silence matched it at the time; send nothing.
    """

    alert_id: int
    fingerprint: str
    rule: str
    severity: str
    status: str
    cluster_id: str
    member_id: str | None
    summary: str
    description: str
    values: dict = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    runbook_url: str = ""
    silenced: bool = False
    update: bool = False
