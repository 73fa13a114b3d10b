"""The cluster health rules: from one probe round (a Status per member) to a verdict.

Pure functions, no I/O: `monitoring.services.health_probe` gathers the answers and stores what
these return. Every verdict rests on what the members said in that round, never on older data:
a member that did not answer is down, and a down member is never the leader.
"""

from dataclasses import dataclass

from etcdgateway import MemberStatus
from monitoring.models import ClusterHealth

# A live member answers Status in milliseconds; a hung one must not stall the round.
PROBE_TIMEOUT = 2.0
DB_QUOTA_DEGRADED_RATIO = 0.8
CRITICAL_ALARMS = frozenset({"NOSPACE", "CORRUPT"})


@dataclass(frozen=True)
class Probe:
    """One member's answer to the probe: its Status, or the error it failed with."""

    member_id: str
    is_learner: bool = False
    status: MemberStatus | None = None
    error: str = ""

    @property
    def up(self) -> bool:
        return self.status is not None


def leader_of(probes: list[Probe]) -> str | None:
    """The member that answered and says it leads (several: the one with the highest term).

    Only a member's own claim counts: a follower that still names a dead leader during an
    election proves nothing about that leader.
    """
    claims = [p for p in probes if p.up and p.status.is_leader]
    if not claims:
        return None
    return max(claims, key=lambda p: p.status.raft_term).member_id


def summarise(probes: list[Probe], *, alarms: list[dict], quotas: list[int]) -> dict[str, object]:
    """The cluster summary of one round (the `cluster` object of /api/status minus `as_of`).

    quotas: the members' backend quotas (bytes) as last scraped; the smallest one is the limit
    the cluster hits first, so the ratio never under-states the risk.
    """
    up = [p for p in probes if p.up]
    voters = [p for p in probes if not p.is_learner]
    quorum = len(voters) // 2 + 1 if voters else 0
    margin = sum(1 for p in voters if p.up) - quorum if voters else None
    leader = leader_of(up)
    db_size = max((p.status.db_size for p in up), default=None)
    quota = min((q for q in quotas if q and q > 0), default=None)
    ratio = db_size / quota if db_size is not None and quota else None
    active = {alarm["alarm"] for alarm in alarms}
    if not up:
        health = ClusterHealth.UNREACHABLE
    elif leader is None or (margin is not None and margin < 0) or active & CRITICAL_ALARMS:
        health = ClusterHealth.CRITICAL
    elif len(up) < len(probes) or (ratio is not None and ratio >= DB_QUOTA_DEGRADED_RATIO):
        health = ClusterHealth.DEGRADED
    else:
        health = ClusterHealth.HEALTHY
    return {
        "health": str(health),
        "members_total": len(probes),
        "members_up": len(up),
        "quorum": quorum or None,
        "quorum_margin": margin,
        "leader_id": leader,
        "alarms": alarms,
        "db_size_bytes": db_size,
        "db_quota_bytes": quota,
        "db_quota_ratio": ratio,
    }
