"""The built-in alert rules: what each one checks, its defaults and its runbook (no I/O).

A rule's check reads a `ClusterView` (the health model, the members and their stored samples,
gathered by `alerts.selectors.cluster_view`) and returns `Finding`s: per member (or for the
whole cluster, member None) whether the condition holds (`active` True), is proven not to
hold (False) or cannot be told (None: no data, or data too old to vouch for anything). A
check returning None says nothing about any key this round. The engine
(`alerts.services.evaluate_cluster`) turns findings into alert states; an alert whose key a
check no longer mentions (a member that left) resolves.

Staleness: the health model counts only while its probe round is at most
`monitoring.selectors.health_max_age()` old, a member's values only from a sample at most two
collection intervals old that the collector actually scraped (collector_up = 1), a HashKV
verdict only while younger than two check intervals. Older data gives None: no new alert,
no resolution, and a pending alert is dropped rather than promoted.
"""

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from alerts.models import Severity

DOCS = "https://etcd.io/docs/v3.5"
RUNBOOKS = "https://runbooks.prometheus-operator.dev/runbooks/etcd"


@dataclass(frozen=True)
class MemberView:
    """One current member as the evaluation sees it."""

    member_id: str
    name: str
    is_learner: bool
    health: str  # up / down / unknown (the probe's verdict while fresh)
    error: str | None
    etcd_version: str
    last_seen: datetime | None = None
    learner_since: datetime | None = None  # first seen as a learner (Member.learner_since)


@dataclass
class ClusterView:
    """What one evaluation of one cluster may read. `sample` and `series` read stored samples
    lazily (only the rules that need them pay for them)."""

    cluster_id: str
    now: datetime
    health_fresh: bool
    summary: dict
    members: list[MemberView]
    members_listed_fresh: bool = True
    consistency: dict | None = None  # the newest fresh ConsistencyCheck as a dict
    # member_id → {name: value} of its newest fresh, successfully scraped sample (or None)
    sample: Callable[[str], dict | None] = lambda member_id: None
    # (member_id, name, seconds, bucket) → [(ts, value)] ascending, the last `seconds`
    series: Callable[[str, str, int, int | None], list[tuple[int, float]]] = (
        lambda member_id, name, seconds, bucket: []
    )
    # (member_id, name, seconds) → `counter_increase` of that raw series, where the reads can
    # sum it without handing over every point (a round's, in PostgreSQL)
    increase_of: Callable[[str, str, int], float] | None = None

    def increase(self, member_id: str, name: str, seconds: int) -> float:
        """How much the counter `name` of the member grew over the last `seconds`
        (`counter_increase` of its raw series)."""
        if self.increase_of is not None:
            return self.increase_of(member_id, name, seconds)
        return counter_increase(self.series(member_id, name, seconds, None))

    def member_label(self, member_id: str) -> str:
        for member in self.members:
            if member.member_id == member_id:
                return member.name or member_id
        return member_id


@dataclass(frozen=True)
class Finding:
    """A rule's verdict on one key (member_id None: the whole cluster)."""

    member_id: str | None
    active: bool | None
    severity: str = Severity.WARNING
    summary: str = ""
    description: str = ""
    values: dict = field(default_factory=dict)
    # Since when the condition has held without a gap, when the rule can prove it from stored
    # state (a learner's learner_since): a new alert's for_seconds counts from there.
    since: datetime | None = None


@dataclass(frozen=True)
class Rule:
    """The effective settings of one rule for one cluster."""

    id: str
    enabled: bool
    for_seconds: int
    thresholds: dict


@dataclass(frozen=True)
class RuleSpec:
    """A built-in rule: id, what it is about, defaults, runbook and its check."""

    id: str
    title: str
    severity: str
    for_seconds: int
    thresholds: dict
    runbook_url: str
    check: Callable[[ClusterView, Rule], list[Finding] | None] | None = None

    @property
    def implemented(self) -> bool:
        return self.check is not None


def _fmt_seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms"


def _fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _fmt_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} GiB"


# --- the health model's rules ---------------------------------------------------------------------


def check_member_down(view: ClusterView, rule: Rule) -> list[Finding]:
    margin = view.summary.get("quorum_margin") if view.health_fresh else None
    critical_at = rule.thresholds.get("critical_quorum_margin", 0)
    findings = []
    for member in view.members:
        if member.health == "unknown":
            findings.append(Finding(member.member_id, None))
            continue
        if member.health != "down":
            findings.append(Finding(member.member_id, False))
            continue
        # A learner does not vote: its loss never brings the cluster nearer to losing quorum.
        critical = not member.is_learner and margin is not None and margin <= critical_at
        label = member.name or member.member_id
        values = {
            "member_name": member.name,
            "error": member.error,
            "quorum_margin": margin,
            "members_up": view.summary.get("members_up"),
            "members_total": view.summary.get("members_total"),
            "last_seen": int(member.last_seen.timestamp()) if member.last_seen else None,
        }
        description = f"Member {label} did not answer the health probe: {member.error}."
        if margin is not None:
            description += f" Quorum margin is {margin}"
            description += (
                ": one more failure loses quorum." if margin == 0 else "." if margin > 0 else ""
            )
        findings.append(
            Finding(
                member.member_id,
                True,
                Severity.CRITICAL if critical else Severity.WARNING,
                f"etcd member {label} is down",
                description,
                values,
            )
        )
    return findings


def check_insufficient_members(view: ClusterView, rule: Rule) -> list[Finding] | None:
    if not view.health_fresh:
        return None
    margin = view.summary.get("quorum_margin")
    if margin is None:
        return None
    up, quorum = view.summary.get("members_up"), view.summary.get("quorum")
    # Learners answer but do not vote: "3 of 4 members answer" would hide a lost quorum.
    voters = [m for m in view.members if not m.is_learner]
    voters_up = sum(1 for m in voters if m.health == "up")
    values = {
        "members_up": up,
        "members_total": view.summary.get("members_total"),
        "voters_up": voters_up,
        "voters_total": len(voters),
        "quorum": quorum,
        "quorum_margin": margin,
    }
    learners = len(view.members) - len(voters)
    description = (
        f"{voters_up} of {len(voters)} voting members answer; {quorum} are needed. "
        "The cluster refuses writes and linearizable reads."
    )
    if learners:
        description += f" {learners} learner(s) do not count towards the quorum."
    return [
        Finding(
            None, margin < 0, Severity.CRITICAL, "etcd cluster has lost quorum", description, values
        )
    ]


def check_no_leader(view: ClusterView, rule: Rule) -> list[Finding] | None:
    # Only members that answered can prove there is no leader: none answering proves nothing.
    if not view.health_fresh or not view.summary.get("members_up"):
        return None
    leader = view.summary.get("leader_id")
    return [
        Finding(
            None,
            leader is None,
            Severity.CRITICAL,
            "etcd cluster has no leader",
            f"None of the {view.summary.get('members_up')} members that answered is the "
            "leader; the cluster cannot commit anything until one is elected.",
            {"members_up": view.summary.get("members_up"), "leader_id": leader},
        )
    ]


def check_alarm_active(view: ClusterView, rule: Rule) -> list[Finding] | None:
    if not view.health_fresh:
        return None
    by_member: dict[str, list[str]] = {}
    for alarm in view.summary.get("alarms") or []:
        by_member.setdefault(str(alarm.get("member_id")), []).append(str(alarm.get("alarm")))
    findings = []
    for member_id, alarms in sorted(by_member.items()):
        names = sorted(set(alarms))
        label = view.member_label(member_id)
        hint = {
            "NOSPACE": "the backend reached its quota; the cluster accepts only reads and "
            "deletes until space is freed (compact, defragment) and the alarm disarmed",
            "CORRUPT": "a consistency check found this member's data diverged",
        }
        findings.append(
            Finding(
                member_id,
                True,
                Severity.CRITICAL,
                f"etcd alarm {', '.join(names)} active on member {label}",
                "; ".join(f"{name}: {hint.get(name, 'see the etcd alarm')}" for name in names)
                + ".",
                {"alarms": names, "member_name": label},
            )
        )
    # Members without an alarm are proven clear (the list is the cluster's whole alarm list).
    findings.extend(
        Finding(m.member_id, False) for m in view.members if m.member_id not in by_member
    )
    return findings


def check_db_quota_high(view: ClusterView, rule: Rule) -> list[Finding] | None:
    if not view.health_fresh:
        return None
    ratio = view.summary.get("db_quota_ratio")
    if ratio is None:
        return None
    limit = rule.thresholds["ratio"]
    size, quota = view.summary.get("db_size_bytes"), view.summary.get("db_quota_bytes")
    return [
        Finding(
            None,
            ratio >= limit,
            Severity.CRITICAL,
            f"etcd database at {ratio:.0%} of its quota",
            f"The largest member database is {_fmt_bytes(size)} of a {_fmt_bytes(quota)} quota "
            f"(threshold {limit:.0%}). At the quota etcd raises NOSPACE and refuses writes.",
            {"db_size_bytes": size, "db_quota_bytes": quota, "ratio": round(ratio, 4)},
        )
    ]


def check_version_skew(view: ClusterView, rule: Rule) -> list[Finding] | None:
    up = [m for m in view.members if m.health == "up" and m.etcd_version]
    if not up:
        return None
    versions = {m.member_id: m.etcd_version for m in up}
    distinct = sorted(set(versions.values()))
    if len(distinct) == 1 and len(up) < len(view.members):
        return None  # a member we cannot see may run another version
    listing = ", ".join(f"{view.member_label(i)}={v}" for i, v in sorted(versions.items()))
    return [
        Finding(
            None,
            len(distinct) > 1,
            Severity.INFO,
            f"etcd members run different versions ({', '.join(distinct)})",
            f"Members run {listing}. A mixed cluster is normal during a rolling upgrade only.",
            {"versions": versions},
        )
    ]


def check_learner_stuck(view: ClusterView, rule: Rule) -> list[Finding] | None:
    if not view.members_listed_fresh:
        return None
    findings = []
    for member in view.members:
        if not member.is_learner:
            findings.append(Finding(member.member_id, False))
            continue
        label = member.name or member.member_id
        # etcd never demotes: a member still a learner has been one since first seen as one.
        since = min(member.learner_since or view.now, view.now)
        age = (view.now - since).total_seconds()
        findings.append(
            Finding(
                member.member_id,
                True,
                Severity.WARNING,
                f"etcd learner {label} is not promoted after {_fmt_duration(age)}",
                f"Member {label} has been a learner (non-voting) since "
                f"{since:%Y-%m-%d %H:%M:%S} UTC at least ({_fmt_duration(age)}); promote it "
                "once it caught up (etcdctl member promote), or remove it.",
                {
                    "member_name": member.name,
                    "learner_since": int(since.timestamp()),
                    "learner_seconds": int(age),
                },
                since=since,
            )
        )
    return findings


# --- rules on the stored samples ------------------------------------------------------------------


def _latency_check(key: str, what: str) -> Callable[[ClusterView, Rule], list[Finding]]:
    """p99 of one stored latency quantile (the collector's trailing window) over thresholds:
    `warning_p99_seconds` (or `p99_seconds`) and optional `critical_p99_seconds`."""

    def check(view: ClusterView, rule: Rule) -> list[Finding]:
        warning = rule.thresholds.get("warning_p99_seconds", rule.thresholds.get("p99_seconds"))
        critical = rule.thresholds.get("critical_p99_seconds")
        findings = []
        for member in view.members:
            values = view.sample(member.member_id)
            if values is None:
                findings.append(Finding(member.member_id, None))
                continue
            # Absent from a fresh sample: nothing observed in the window, so nothing slow.
            p99 = values.get(key)
            if p99 is None:
                findings.append(Finding(member.member_id, False))
                continue
            severity = Severity.CRITICAL if critical is not None and p99 > critical else None
            label = member.name or member.member_id
            findings.append(
                Finding(
                    member.member_id,
                    p99 > warning,
                    severity or Severity.WARNING,
                    f"etcd member {label}: {what} p99 {_fmt_seconds(p99)}",
                    f"The 99th percentile {what} of member {label} over the collector's window "
                    f"is {_fmt_seconds(p99)} (threshold {_fmt_seconds(warning)}"
                    + (f", critical above {_fmt_seconds(critical)}" if critical else "")
                    + ").",
                    {"p99_seconds": round(p99, 6), "member_name": member.name},
                )
            )
        return findings

    return check


def counter_increase(points: list[tuple[int, float]]) -> float:
    """How much a counter grew over `points` (ascending): the sum of its rises. A drop is a
    restart; the new count is not added (it may hold events from before the window)."""
    total = 0.0
    for (_, before), (_, after) in itertools.pairwise(points):
        if after >= before:
            total += after - before
    return total


def _has_fresh_sample(view: ClusterView, member_id: str) -> bool:
    return view.sample(member_id) is not None


def check_leader_changes(view: ClusterView, rule: Rule) -> list[Finding] | None:
    window = int(rule.thresholds["window_seconds"])
    limit = rule.thresholds["changes"]
    seen = {}
    for member in view.members:
        if not _has_fresh_sample(view, member.member_id):
            continue
        seen[member.member_id] = view.increase(
            member.member_id, "etcd_server_leader_changes_seen_total", window
        )
    if not seen:
        return None
    # Every member sees the same elections: the largest count is the cluster's.
    changes = max(seen.values())
    return [
        Finding(
            None,
            changes >= limit,
            Severity.WARNING,
            f"etcd leader changed {int(changes)} times in {window // 60} min",
            f"{int(changes)} leader changes within {window // 60} minutes (threshold "
            f"{limit}). Frequent elections point at overloaded members, slow disks or an "
            "unreliable network.",
            {"changes": int(changes), "window_seconds": window},
        )
    ]


def check_proposals_failed(view: ClusterView, rule: Rule) -> list[Finding]:
    window = int(rule.thresholds["window_seconds"])
    limit = rule.thresholds["failures"]
    findings = []
    for member in view.members:
        if not _has_fresh_sample(view, member.member_id):
            findings.append(Finding(member.member_id, None))
            continue
        failed = view.increase(member.member_id, "etcd_server_proposals_failed_total", window)
        label = member.name or member.member_id
        findings.append(
            Finding(
                member.member_id,
                failed > limit,
                Severity.WARNING,
                f"etcd member {label}: {int(failed)} failed proposals in {window // 60} min",
                f"{int(failed)} proposals failed on member {label} within {window // 60} "
                f"minutes (threshold {limit}): elections or a loss of quorum.",
                {"failed": int(failed), "window_seconds": window, "member_name": member.name},
            )
        )
    return findings


def check_grpc_failed_ratio(view: ClusterView, rule: Rule) -> list[Finding]:
    """Unary requests the server failed (Unknown, Unavailable, DeadlineExceeded... never
    Canceled or client mistakes) over all unary requests, per member, over `window_seconds`;
    fewer than `min_requests` requests in the window prove nothing either way."""
    window = int(rule.thresholds["window_seconds"])
    warning, critical = rule.thresholds["warning_ratio"], rule.thresholds["critical_ratio"]
    findings = []
    for member in view.members:
        if not _has_fresh_sample(view, member.member_id):
            findings.append(Finding(member.member_id, None))
            continue
        total = view.increase(member.member_id, "grpc_server_handled_unary_total", window)
        failed = view.increase(member.member_id, "grpc_server_handled_unary_failed_total", window)
        if total < rule.thresholds["min_requests"]:
            findings.append(Finding(member.member_id, False))
            continue
        ratio = failed / total
        label = member.name or member.member_id
        findings.append(
            Finding(
                member.member_id,
                ratio > warning,
                Severity.CRITICAL if ratio > critical else Severity.WARNING,
                f"etcd member {label}: {ratio:.1%} of unary gRPC requests failed",
                f"{int(failed)} of {int(total)} unary requests to member {label} failed on the "
                f"server side within {window // 60} min (warning above {warning:.0%}, critical "
                f"above {critical:.0%}); watch and lease streams and Canceled are not counted.",
                {
                    "failed": int(failed),
                    "requests": int(total),
                    "ratio": round(ratio, 4),
                    "member_name": member.name,
                },
            )
        )
    return findings


def check_fragmentation(view: ClusterView, rule: Rule) -> list[Finding]:
    in_use_limit = rule.thresholds["in_use_ratio"]
    quota_limit = rule.thresholds["quota_ratio"]
    findings = []
    for member in view.members:
        values = view.sample(member.member_id)
        size = values and values.get("etcd_mvcc_db_total_size_in_bytes")
        in_use = values and values.get("etcd_mvcc_db_total_size_in_use_in_bytes")
        quota = values and values.get("etcd_server_quota_backend_bytes")
        if not size or in_use is None or not quota:
            findings.append(Finding(member.member_id, None))
            continue
        used, of_quota = in_use / size, size / quota
        label = member.name or member.member_id
        findings.append(
            Finding(
                member.member_id,
                used < in_use_limit and of_quota > quota_limit,
                Severity.WARNING,
                f"etcd member {label}: database {1 - used:.0%} fragmented",
                f"Member {label} uses {_fmt_bytes(in_use)} of its {_fmt_bytes(size)} database "
                f"({used:.0%}, threshold {in_use_limit:.0%}) and the file is {of_quota:.0%} of "
                f"the {_fmt_bytes(quota)} quota (threshold {quota_limit:.0%}): defragment it.",
                {
                    "db_size_bytes": int(size),
                    "db_in_use_bytes": int(in_use),
                    "db_quota_bytes": int(quota),
                    "in_use_ratio": round(used, 4),
                    "quota_ratio": round(of_quota, 4),
                    "member_name": member.name,
                },
            )
        )
    return findings


def linear_fit(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """(slope per second, value at the last point's time) of a least-squares line."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = math.fsum(t for t, _ in points) / n
    mean_v = math.fsum(v for _, v in points) / n
    var = math.fsum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    slope = math.fsum((t - mean_t) * (v - mean_v) for t, v in points) / var
    return slope, mean_v + slope * (points[-1][0] - mean_t)


def check_db_quota_forecast(view: ClusterView, rule: Rule) -> list[Finding] | None:
    horizon = int(rule.thresholds["horizon_seconds"])
    fit = int(rule.thresholds["fit_seconds"])
    min_span = int(rule.thresholds["min_span_seconds"])
    verdicts = []
    for member in view.members:
        values = view.sample(member.member_id)
        quota = values and values.get("etcd_server_quota_backend_bytes")
        if not quota:
            continue
        points = view.series(member.member_id, "etcd_mvcc_db_total_size_in_bytes", fit, 300)
        if len(points) < 4 or points[-1][0] - points[0][0] < min_span:
            continue  # too little history for a trend
        line = linear_fit(points)
        if line is None:
            continue
        slope, now_value = line
        eta = (quota - now_value) / slope if slope > 0 else math.inf
        verdicts.append((eta, member, quota, now_value, slope))
    if not verdicts:
        return None
    eta, member, quota, now_value, slope = min(verdicts, key=lambda v: v[0])
    label = member.name or member.member_id
    hours = eta / 3600 if math.isfinite(eta) else None
    return [
        Finding(
            None,
            eta <= horizon,
            Severity.WARNING,
            f"etcd database of {label} fills its quota in {hours or 0:.1f} h",
            f"A linear fit of the last {fit // 3600} h of member {label}'s database size "
            f"({_fmt_bytes(now_value)} now, +{_fmt_bytes(slope * 3600)}/h) reaches the "
            f"{_fmt_bytes(quota)} quota within {horizon // 3600} h.",
            {
                "member_id": member.member_id,
                "member_name": member.name,
                "db_size_bytes": int(now_value),
                "db_quota_bytes": int(quota),
                "growth_bytes_per_hour": round(slope * 3600),
                "seconds_to_full": round(eta) if math.isfinite(eta) else None,
            },
        )
    ]


def check_hashkv_mismatch(view: ClusterView, rule: Rule) -> list[Finding] | None:
    check = view.consistency
    if check is None or check["outcome"] == "inconclusive":
        return None
    return [
        Finding(
            None,
            check["outcome"] == "mismatch",
            Severity.CRITICAL,
            f"etcd members disagree on the keyspace hash at revision {check['revision']}",
            "Every member answered HashKV at the same revision and compact revision, twice, "
            f"and the hashes differ: {check['detail']}. A member's data has diverged.",
            {"revision": check["revision"], "results": check["results"]},
        )
    ]


SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        "member_down",
        "A member does not answer the health probe",
        Severity.WARNING,
        30,
        {"critical_quorum_margin": 0},
        f"{RUNBOOKS}/etcdmembersdown/",
        check_member_down,
    ),
    RuleSpec(
        "insufficient_members",
        "Fewer members answer than quorum needs",
        Severity.CRITICAL,
        15,
        {},
        f"{RUNBOOKS}/etcdinsufficientmembers/",
        check_insufficient_members,
    ),
    RuleSpec(
        "no_leader",
        "No member that answers is the leader",
        Severity.CRITICAL,
        30,
        {},
        f"{RUNBOOKS}/etcdnoleader/",
        check_no_leader,
    ),
    RuleSpec(
        "alarm_active",
        "A NOSPACE or CORRUPT alarm is active",
        Severity.CRITICAL,
        0,
        {},
        f"{DOCS}/op-guide/maintenance/#space-quota",
        check_alarm_active,
    ),
    RuleSpec(
        "db_quota_high",
        "The database is near its quota",
        Severity.CRITICAL,
        60,
        {"ratio": 0.95},
        f"{RUNBOOKS}/etcdbackendquotalowspace/",
        check_db_quota_high,
    ),
    RuleSpec(
        "leader_changes",
        "Frequent leader elections",
        Severity.WARNING,
        0,
        {"changes": 4, "window_seconds": 900},
        f"{DOCS}/tuning/#time-parameters",
        check_leader_changes,
    ),
    RuleSpec(
        "wal_fsync_slow",
        "Slow WAL fsync",
        Severity.WARNING,
        600,
        {"warning_p99_seconds": 0.5, "critical_p99_seconds": 1.0},
        f"{RUNBOOKS}/etcdhighfsyncdurations/",
        _latency_check("etcd_disk_wal_fsync_duration_seconds_p99", "WAL fsync"),
    ),
    RuleSpec(
        "backend_commit_slow",
        "Slow backend commits",
        Severity.WARNING,
        600,
        {"p99_seconds": 0.25},
        f"{RUNBOOKS}/etcdhighcommitdurations/",
        _latency_check("etcd_disk_backend_commit_duration_seconds_p99", "backend commit"),
    ),
    RuleSpec(
        "peer_rtt_slow",
        "Slow round trips between members",
        Severity.WARNING,
        600,
        {"p99_seconds": 0.15},
        f"{DOCS}/tuning/#time-parameters",
        _latency_check("etcd_network_peer_round_trip_time_seconds_p99", "peer round trip"),
    ),
    RuleSpec(
        "proposals_failed",
        "Failed raft proposals",
        Severity.WARNING,
        0,
        {"failures": 5, "window_seconds": 3600},
        f"{DOCS}/metrics/",
        check_proposals_failed,
    ),
    RuleSpec(
        "grpc_failed_ratio",
        "Failed unary gRPC requests",
        Severity.WARNING,
        600,
        {"warning_ratio": 0.01, "critical_ratio": 0.05, "window_seconds": 300, "min_requests": 20},
        f"{RUNBOOKS}/etcdhighnumberoffailedgrpcrequests/",
        check_grpc_failed_ratio,
    ),
    RuleSpec(
        "grpc_slow",
        "Slow unary gRPC requests",
        Severity.WARNING,
        600,
        {"p99_seconds": 0.15},
        f"{RUNBOOKS}/etcdgrpcrequestsslow/",
        # Unary calls but Defragment (the collector's filter); a member not started with
        # --metrics=extensive exports no handling times and never fires.
        _latency_check("grpc_server_unary_handling_seconds_p99", "unary gRPC handling time"),
    ),
    RuleSpec(
        "fragmentation",
        "A fragmented database",
        Severity.WARNING,
        600,
        {"in_use_ratio": 0.5, "quota_ratio": 0.25},
        f"{DOCS}/op-guide/maintenance/#defragmentation",
        check_fragmentation,
    ),
    RuleSpec(
        "db_quota_forecast",
        "The database fills its quota soon",
        Severity.WARNING,
        600,
        {"horizon_seconds": 4 * 3600, "fit_seconds": 6 * 3600, "min_span_seconds": 3600},
        f"{DOCS}/op-guide/maintenance/#space-quota",
        check_db_quota_forecast,
    ),
    RuleSpec(
        "version_skew",
        "Members run different etcd versions",
        Severity.INFO,
        3600,
        {},
        f"{DOCS}/upgrades/",
        check_version_skew,
    ),
    RuleSpec(
        "learner_stuck",
        "A learner is not promoted",
        Severity.WARNING,
        3600,
        {},
        f"{DOCS}/op-guide/runtime-configuration/#add-a-new-member-as-learner",
        check_learner_stuck,
    ),
    RuleSpec(
        "hashkv_mismatch",
        "Members disagree on the keyspace hash",
        Severity.CRITICAL,
        0,
        {},
        f"{DOCS}/op-guide/data_corruption/",
        check_hashkv_mismatch,
    ),
)

SPEC_BY_ID = {spec.id: spec for spec in SPECS}
