"""Reads of the alerts app: what one evaluation sees of a cluster (health model, members,
stored samples, the latest consistency check), and the alerts, rules and silences the API lists."""

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q

from alerts.models import (
    ACTIVE_STATES,
    SEVERITY_RANK,
    Alert,
    AlertRule,
    AlertState,
    ConsistencyCheck,
    Silence,
)
from alerts.rules import SPEC_BY_ID, SPECS, ClusterView, MemberView, Rule, counter_increase
from clusters.models import DEFAULT_CLUSTER_ID, Cluster
from clusters.selectors import monitored_cluster_ids
from etcdmonitor_site import rawsql
from monitoring import selectors as monitoring_selectors
from monitoring import timeseries
from monitoring.models import Member, MemberHealth, MetricName, MonitoredCluster, Sample

RESOLVED_SHOWN = timedelta(hours=24)
# members_sync runs at most every 60 s inside collection cycles: a list older than this is
# no longer evidence of who is a learner.
MEMBER_LIST_MAX_AGE = 300


def cluster_ids() -> list[str]:
    """Every cluster the engine evaluates: each monitored cluster record (the default first),
    then any other cluster that still has active alerts (no longer monitored, or deleted),
    whose evaluation resolves them."""
    monitored = monitored_cluster_ids()
    leftover = (
        Alert.objects.filter(state__in=ACTIVE_STATES)
        .exclude(cluster_id__in=monitored)
        .order_by("cluster_id")
        .values_list("cluster_id", flat=True)
        .distinct()
    )
    return [*monitored, *leftover]


def cluster_name(cluster_id: str) -> str:
    """The name a cluster record carries (notifications show it); its id when it is gone."""
    name = Cluster.objects.filter(pk=cluster_id).values_list("name", flat=True).first()
    return name or cluster_id


def sample_max_age() -> float:
    """A sample older than two collection intervals no longer describes the member (the same
    bound /api/current uses for `stale`)."""
    return 2 * settings.COLLECTOR_INTERVAL


def consistency_max_age() -> float:
    return 2 * settings.HASHKV_CHECK_INTERVAL + 60


@dataclass
class RoundInputs:
    """What every cluster's evaluation in one round reads alike, read once for the round: at
    80 clusters, reading these per cluster was most of the engine's queries (bench/fleet.py)."""

    now: datetime
    rules: dict[str, AlertRule]
    silences: list[Silence]
    names: dict[str, str]  # cluster record id -> its name
    monitored: set[str]
    metric_names: dict[int, str]
    # member row pk -> the values of its newest sample in the freshness window; None when not
    # read ahead (SQLite: each evaluation asks for its members' own).
    latest: dict[int, list] | None
    # rule id -> its effective Rule for clusters without an override (see round_rule)
    shared_rules: dict[str, Rule] = field(default_factory=dict)


def round_inputs(*, now: datetime, rules: dict[str, AlertRule]) -> RoundInputs:
    """The shared inputs of one evaluation round at `now` (see RoundInputs)."""
    records = Cluster.objects.values_list("pk", "name", "monitored")
    latest = None
    if connection.vendor == "postgresql":
        # One query for every member's newest fresh sample instead of one per member.
        rows = (
            Sample.objects.filter(ts__gte=_sample_cutoff(now), ts__lte=now.timestamp())
            .order_by("member_id", "-ts")
            .distinct("member_id")
            .values_list("member_id", "vals")
        )
        latest = dict(rows)
    return RoundInputs(
        now=now,
        rules=rules,
        silences=silences_active(now=now),
        names={pk: name for pk, name, _ in records},
        monitored={pk for pk, _, monitored in records if monitored}
        | {monitoring_selectors.DEFAULT_CLUSTER},
        metric_names=dict(MetricName.objects.values_list("slot", "name")),
        latest=latest,
    )


# What the engine reads of every cluster record per round (the default's environment fields
# too: clusters.services.default_cluster_current compares them).
_RECORD_FIELDS = [
    "id",
    "owner",
    "name",
    "endpoints",
    "username",
    "insecure_skip_verify",
    "labels",
    "monitored",
    "created_at",
]
_RULE_FIELDS = [f.name for f in AlertRule._meta.concrete_fields]
_SILENCE_FIELDS = [f.name for f in Silence._meta.concrete_fields]
_ALERT_FIELDS = [f.name for f in Alert._meta.concrete_fields]
_ACTIVE = rawsql.array_literal(state.value for state in ACTIVE_STATES)
_RULE_IDS = rawsql.array_literal(SPEC_BY_ID)


@dataclass
class FleetRound:
    """The start of a round over the whole fleet (PostgreSQL): its shared inputs, the clusters
    to evaluate (`cluster_ids`' order) and the default record as read (None: there is none)."""

    inputs: RoundInputs
    cluster_ids: list[str]
    default: Cluster | None


def fleet_round(*, now: datetime) -> FleetRound:
    """`round_inputs` and `cluster_ids` in hand-written queries, one per kind of row (each
    ORM query cost ~0.6 ms of CPU, a round's whole budget at a dozen clusters). `inputs.rules`
    holds the rows that exist (the caller makes missing ones)."""
    with connection.cursor() as cursor:
        cursor.execute(_fleet_sql("records"), [DEFAULT_CLUSTER_ID])
        records = cursor.fetchall()  # (id, name, monitored, *_RECORD_FIELDS)
        cursor.execute(_fleet_sql("leftover"), [_ACTIVE])
        with_alerts = [row[0] for row in cursor.fetchall()]
        cursor.execute(_fleet_sql("rules"), [_RULE_IDS])
        rules = {row.id: row for row in _instances(AlertRule, _RULE_FIELDS, cursor)}
        cursor.execute(_fleet_sql("silences"), [now, now])
        silences = _instances(Silence, _SILENCE_FIELDS, cursor)
        cursor.execute(_fleet_sql("metric_names"))
        metric_names = dict(cursor.fetchall())
        # Every member's newest fresh sample (ts__lte=now.timestamp() as round_inputs reads it).
        cursor.execute(_fleet_sql("latest"), [_sample_cutoff(now), now.timestamp()])
        latest = dict(cursor.fetchall())
    monitored = [pk for pk, _, is_monitored, *_ in records if is_monitored]
    known = set(monitored)
    default = next((row[3:] for row in records if row[0] == DEFAULT_CLUSTER_ID), None)
    return FleetRound(
        inputs=RoundInputs(
            now=now,
            rules=rules,
            silences=silences,
            names={pk: name for pk, name, *_ in records},
            monitored=known | {monitoring_selectors.DEFAULT_CLUSTER},
            metric_names=metric_names,
            latest=latest,
        ),
        cluster_ids=[*monitored, *(cid for cid in with_alerts if cid not in known)],
        default=rawsql.instance(Cluster, _RECORD_FIELDS, default) if default else None,
    )


def _instances(model, fields: list[str], cursor) -> list:
    return [rawsql.instance(model, fields, row) for row in cursor.fetchall()]


@functools.cache
def _fleet_sql(name: str) -> str:
    if name == "records":
        # monitored_cluster_ids' order: the default, then shared records, then users' own; by name.
        # Rows as tuples: only the default's become an instance (its JSON decoded).
        owner = rawsql.column(Cluster, "owner")
        return (
            f"SELECT r.id, r.{rawsql.column(Cluster, 'name')}, "  # noqa: S608
            f"r.{rawsql.column(Cluster, 'monitored')}, "
            f"{rawsql.select_list(Cluster, 'r', _RECORD_FIELDS)} "
            f"FROM {rawsql.table(Cluster)} r ORDER BY CASE WHEN r.id = %s THEN 0 "
            f"WHEN r.{owner} IS NULL THEN 1 ELSE 2 END, r.{rawsql.column(Cluster, 'name')}, "
            f"r.{rawsql.column(Cluster, 'created_at')}"
        )
    if name == "leftover":
        a = functools.partial(rawsql.column, Alert)
        return (
            f"SELECT DISTINCT {a('cluster_id')} FROM {rawsql.table(Alert)} "  # noqa: S608
            f"WHERE {a('state')} = ANY(%s::text[]) ORDER BY 1"
        )
    if name == "rules":
        return (
            f"SELECT {rawsql.select_list(AlertRule, 'r', _RULE_FIELDS)} "  # noqa: S608
            f"FROM {rawsql.table(AlertRule)} r WHERE r.id = ANY(%s::text[])"
        )
    if name == "silences":
        s = functools.partial(rawsql.column, Silence)
        return (
            f"SELECT {rawsql.select_list(Silence, 's', _SILENCE_FIELDS)} "  # noqa: S608
            f"FROM {rawsql.table(Silence)} s "
            f"WHERE s.{s('starts_at')} <= %s AND s.{s('ends_at')} > %s"
        )
    if name == "metric_names":
        n = functools.partial(rawsql.column, MetricName)
        return f"SELECT {n('slot')}, {n('name')} FROM {rawsql.table(MetricName)}"  # noqa: S608
    return (
        "SELECT DISTINCT ON (member_id) member_id, vals FROM monitoring_sample "
        "WHERE ts >= %s AND ts <= %s ORDER BY member_id, ts DESC"
    )


def _sample_cutoff(now: datetime) -> int:
    return int(now.timestamp() - sample_max_age())


def cluster_view(*, cluster_id: str, now: datetime, inputs: RoundInputs) -> ClusterView | None:
    """What the rules may read of `cluster_id` at `now` (None: no such cluster, or one no
    longer monitored: its data only ages, so its alerts resolve)."""
    if cluster_id not in inputs.monitored:
        return None
    cluster = MonitoredCluster.objects.filter(name=cluster_id).first()
    if cluster is None:
        return None
    rows = list(
        cluster.members.filter(in_cluster=True).defer("scrape_state", "latest", "grpc_methods")
    )
    for row in rows:
        row.cluster = cluster
    check = (
        ConsistencyCheck.objects.filter(
            cluster_id=cluster_id,
            checked_at__gte=now - timedelta(seconds=consistency_max_age()),
        )
        .order_by("-checked_at", "-id")
        .first()
    )

    def series(row: Member, name: str, seconds: int, bucket: int | None):
        end = int(now.timestamp())
        found = monitoring_selectors.metric_series(
            member=row, names=[name], start=end - seconds, end=end, bucket=bucket
        )
        return [(point["ts"], point["value"]) for point in found.get(name, [])]

    return _view(cluster_id, now, inputs, cluster, rows, check, series)


def _known_prefix(names: dict[int, str]) -> int:
    """The largest k with slots 1..k all named in `names`."""
    k = 0
    while k + 1 in names:
        k += 1
    return k


def _view(
    cluster_id, now, inputs, cluster, rows, check, member_series, member_increase=None
) -> ClusterView:
    """The view of one cluster from its rows, however they were read; `member_series(row,
    name, seconds, bucket)` answers the rules' series, `member_increase(row, name, seconds)`
    their counters' increase (else summed from the series)."""
    max_age = monitoring_selectors.health_max_age()
    health_fresh = (
        cluster.health_at is not None and (now - cluster.health_at).total_seconds() <= max_age
    )
    members = []
    for row in rows:
        health, error = row.health_now(now=now, max_age=max_age)
        members.append(
            MemberView(
                member_id=row.member_id,
                name=row.name,
                is_learner=row.is_learner,
                health=str(health) if health != MemberHealth.UNKNOWN else "unknown",
                error=error,
                etcd_version=row.etcd_version,
                last_seen=row.last_seen,
                learner_since=row.learner_since,
            )
        )
    listed_fresh = (
        cluster.last_member_sync is not None
        and (now - cluster.last_member_sync).total_seconds() <= MEMBER_LIST_MAX_AGE
    )
    by_id = {row.member_id: row for row in rows}
    cutoff = _sample_cutoff(now)
    names = inputs.metric_names
    known = _known_prefix(names)
    samples: dict[str, dict | None] = {}

    def sample(member_id: str) -> dict | None:
        nonlocal names, known
        if member_id in samples:
            return samples[member_id]
        row = by_id.get(member_id)
        found = None
        if row is not None and inputs.latest is not None:
            found = inputs.latest.get(row.pk)
        elif row is not None:
            found = (
                Sample.objects.filter(member_id=row.pk, ts__gte=cutoff, ts__lte=now.timestamp())
                .order_by("-ts")
                .values_list("vals", flat=True)
                .first()
            )
        values = None
        if found is not None:
            # (slots 1..known are all in the map: only the values after them can be new)
            if len(found) > known and any(
                found[i] is not None and i + 1 not in names for i in range(known, len(found))
            ):
                # A metric first stored during this round: its slot is newer than the map.
                names = {**names, **dict(MetricName.objects.values_list("slot", "name"))}
                known = _known_prefix(names)
            values = {
                names[index + 1]: value
                for index, value in enumerate(found)
                if value is not None and index + 1 in names
            }
            # A failed scrape stores collector_up = 0 and nothing else: no evidence.
            if values.get("collector_up") != 1:
                values = None
        samples[member_id] = values
        return values

    def series(member_id: str, name: str, seconds: int, bucket: int | None):
        row = by_id.get(member_id)
        if row is None:
            return []
        return member_series(row, name, seconds, bucket)

    increase = None
    if member_increase is not None:

        def increase(member_id: str, name: str, seconds: int) -> float:
            row = by_id.get(member_id)
            return 0.0 if row is None else member_increase(row, name, seconds)

    return ClusterView(
        cluster_id=cluster_id,
        now=now,
        health_fresh=health_fresh,
        summary=dict(cluster.health_summary or {}) if health_fresh else {},
        members=members,
        members_listed_fresh=listed_fresh,
        consistency=(
            {
                "outcome": check.outcome,
                "revision": check.revision,
                "detail": check.detail,
                "results": check.results,
            }
            if check is not None
            else None
        ),
        sample=sample,
        series=series,
        increase_of=increase,
    )


# --- many clusters at once (PostgreSQL) -----------------------------------------------------------

# What a view reads of the rows (the others load lazily if ever touched): the members' JSON
# columns alone cost more to decode than the rest of a cluster's evaluation.
_VIEW_MEMBER_FIELDS = [
    "id",
    "cluster",
    "member_id",
    "name",
    "is_learner",
    "etcd_version",
    "last_seen",
    "learner_since",
    "health",
    "probe_error",
    "probed_at",
]
_VIEW_CLUSTER_FIELDS = [
    "id",
    "name",
    "health",
    "health_at",
    "health_summary",
    "last_member_sync",
    "rollup_state",
]


class RoundReads:
    """What the evaluation of several clusters in one round reads of them, each kind in one
    query for all of them (PostgreSQL): the query count of a round does not grow with the
    fleet, and each query is hand-written (building one through the ORM cost ~0.6 ms of CPU,
    as much as a whole cluster's evaluation may take).

    Series are read on the first request of each (name, seconds, bucket) in the round, for
    every member of the round that has a fresh sample (the rules ask only for those).
    """

    def __init__(self, *, cluster_ids: list[str], inputs: RoundInputs):
        self.inputs = inputs
        self.now = inputs.now
        monitored = [cid for cid in cluster_ids if cid in inputs.monitored]
        self.clusters: dict[str, MonitoredCluster] = {}
        self.members: dict[str, list[Member]] = {}
        self.checks: dict[str, ConsistencyCheck] = {}
        self.active: dict[str, list[Alert]] = {cid: [] for cid in cluster_ids}
        self._series: dict[tuple, dict[int, list]] = {}
        if monitored:
            self._read_clusters(monitored)
            self._read_checks(monitored)
        with connection.cursor() as cursor:
            cursor.execute(_round_sql("alerts"), [rawsql.array_literal(cluster_ids), _ACTIVE])
            for alert in _instances(Alert, _ALERT_FIELDS, cursor):
                self.active[alert.cluster_id].append(alert)
        # The members whose series are read ahead: those with a fresh sample.
        latest = inputs.latest
        self._ahead = {
            row.pk: row
            for rows in self.members.values()
            for row in rows
            if latest is None or row.pk in latest
        }

    def _read_clusters(self, names: list[str]) -> None:
        count = len(_VIEW_CLUSTER_FIELDS)
        with connection.cursor() as cursor:
            cursor.execute(_round_sql("clusters"), [rawsql.array_literal(names)])
            for row in cursor.fetchall():
                name = row[_VIEW_CLUSTER_FIELDS.index("name")]
                cluster = self.clusters.get(name)
                if cluster is None:
                    cluster = rawsql.instance(MonitoredCluster, _VIEW_CLUSTER_FIELDS, row[:count])
                    self.clusters[name] = cluster
                    self.members[name] = []
                if row[count] is None:
                    continue  # the LEFT JOIN's row of a cluster without members
                member = rawsql.instance(Member, _VIEW_MEMBER_FIELDS, row[count:])
                member.cluster = cluster
                self.members[name].append(member)

    def _read_checks(self, names: list[str]) -> None:
        since = self.now - timedelta(seconds=consistency_max_age())
        fields = ["id", "cluster_id", "checked_at", "revision", "outcome", "detail", "results"]
        with connection.cursor() as cursor:
            cursor.execute(_round_sql("checks"), [rawsql.array_literal(names), since])
            for row in cursor.fetchall():
                check = rawsql.instance(ConsistencyCheck, fields, row)
                self.checks[check.cluster_id] = check

    def view(self, cluster_id: str) -> ClusterView | None:
        """`cluster_view` of `cluster_id` from the round's reads."""
        cluster = self.clusters.get(cluster_id)
        if cluster_id not in self.inputs.monitored or cluster is None:
            return None
        return _view(
            cluster_id,
            self.now,
            self.inputs,
            cluster,
            self.members[cluster_id],
            self.checks.get(cluster_id),
            self.series,
            self.increase,
        )

    def series(self, row: Member, name: str, seconds: int, bucket: int | None):
        """[(ts, value)] of `name` over the last `seconds` of the member (metric_series')."""
        end = int(self.now.timestamp())
        if row.pk not in self._ahead:
            found = monitoring_selectors.metric_series(
                member=row, names=[name], start=end - seconds, end=end, bucket=bucket
            )
            return [(point["ts"], point["value"]) for point in found.get(name, [])]
        key = (name, seconds, bucket)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = self._read_series(name, end - seconds, end, bucket)
        return found.get(row.pk, [])

    def increase(self, row: Member, name: str, seconds: int) -> float:
        """`counter_increase` of the member's raw series of `name` over the last `seconds`,
        summed by PostgreSQL for every member read ahead (one row each, not every point)."""
        if row.pk not in self._ahead:
            return counter_increase(self.series(row, name, seconds, None))
        key = ("increase", name, seconds)
        found = self._series.get(key)
        if found is None:
            end = int(self.now.timestamp())
            found = self._series[key] = self._read_increase(name, end - seconds, end)
        return found.get(row.pk, 0.0)

    def _read_increase(self, name: str, start: int, end: int) -> dict[int, float]:
        slot = timeseries.slots_for([name]).get(name)
        if slot is None or end < start or not self._ahead:
            return {}
        value = f"({timeseries.slot_expr(slot, 's.vals')})::float8"
        # As counter_increase: each rise over the sample before it; a drop (a restart) adds
        # nothing. Points without the value are skipped, as the series leaves them out.
        sql = (
            "SELECT member_id, coalesce(sum(rise) FILTER (WHERE rise >= 0), 0) FROM ("  # noqa: S608
            f"SELECT s.member_id, {value} - lag({value}) OVER (PARTITION BY s.member_id "
            "ORDER BY s.ts) AS rise FROM monitoring_sample s "
            "WHERE s.member_id = ANY(%s::integer[]) AND s.ts >= %s AND s.ts <= %s "
            f"AND {value} IS NOT NULL) AS rises GROUP BY member_id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [rawsql.array_literal(self._ahead), start, end])
            return {member_id: float(total) for member_id, total in cursor.fetchall()}

    def _read_series(self, name: str, start: int, end: int, bucket: int | None) -> dict:
        """{member pk: [(ts, value)]} of every member read ahead, as metric_series reads each:
        raw rows, or bucket averages (closed rollups, then live averages after them)."""
        slot = timeseries.slots_for([name]).get(name)
        found: dict[int, list] = {}
        if slot is None or end < start or not self._ahead:
            return found
        ids = rawsql.array_literal(self._ahead)
        value = timeseries.slot_expr(slot, "s.vals")
        if bucket is None:
            sql = (
                f"SELECT s.member_id, s.ts, {value} FROM monitoring_sample s "  # noqa: S608
                "WHERE s.member_id = ANY(%s::integer[]) AND s.ts >= %s AND s.ts <= %s "
                f"AND {value} IS NOT NULL ORDER BY 1, 2"
            )
            params = [ids, start, end]
        else:
            bucket = int(bucket)
            # Where each member's cluster has rollups covering part of the window, they serve
            # the buckets before `rolled` and live averages the rest (see _series_query).
            rolled = []
            for pk in self._ahead:
                until = None
                if bucket in timeseries.ROLLUP_TIERS:
                    until = self._ahead[pk].cluster.rollup_state.get(str(bucket))
                rolled.append(until if until is not None and until > start else None)
            members = "unnest(%s::integer[], %s::float8[]) AS m(id, rolled)"
            rolled_value = timeseries.slot_expr(slot, "r.vals")
            sql = (
                f"SELECT r.member_id, r.bucket AS b, {rolled_value}, 0 "  # noqa: S608 - ints
                f"FROM monitoring_samplerollup r JOIN {members} ON r.member_id = m.id "
                "WHERE r.tier = %s AND r.bucket >= %s AND r.bucket <= %s AND r.bucket < m.rolled "
                f"UNION ALL SELECT s.member_id, (s.ts / {bucket}) * {bucket}, avg({value}), 1 "
                f"FROM monitoring_sample s JOIN {members} ON s.member_id = m.id "
                "WHERE s.ts >= coalesce(m.rolled, %s) AND s.ts <= %s "
                f"GROUP BY s.member_id, s.ts / {bucket} ORDER BY 1, 2, 4"
            )
            rolled = rawsql.array_literal(rolled)
            params = [ids, rolled, bucket, start // bucket * bucket, end, ids, rolled, start, end]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for member_id, ts, number, *_ in cursor.fetchall():
                if number is not None:
                    found.setdefault(member_id, []).append((int(ts), float(number)))
        return found


@functools.cache
def _round_sql(name: str) -> str:
    if name == "clusters":
        m = functools.partial(rawsql.column, Member)
        return (
            f"SELECT {rawsql.select_list(MonitoredCluster, 'c', _VIEW_CLUSTER_FIELDS)}, "  # noqa: S608
            f"{rawsql.select_list(Member, 'm', _VIEW_MEMBER_FIELDS)} "
            f"FROM {rawsql.table(MonitoredCluster)} c LEFT JOIN {rawsql.table(Member)} m "
            f"ON m.{m('cluster')} = c.id AND m.{m('in_cluster')} "
            f"WHERE c.{rawsql.column(MonitoredCluster, 'name')} = ANY(%s::text[]) "
            f"ORDER BY c.id, m.{m('name')}, m.{m('member_id')}"
        )
    if name == "alerts":
        a = functools.partial(rawsql.column, Alert)
        # The order of Alert's Meta within each cluster.
        return (
            f"SELECT {rawsql.select_list(Alert, 'a', _ALERT_FIELDS)} "  # noqa: S608
            f"FROM {rawsql.table(Alert)} a WHERE a.{a('cluster_id')} = ANY(%s::text[]) "
            f"AND a.{a('state')} = ANY(%s::text[]) "
            f"ORDER BY a.{a('cluster_id')}, a.{a('pending_at')} DESC, a.id DESC"
        )
    c = functools.partial(rawsql.column, ConsistencyCheck)
    fields = ["id", "cluster_id", "checked_at", "revision", "outcome", "detail", "results"]
    # The newest fresh check of each cluster (the index on (cluster_id, checked_at) serves it).
    return (
        f"SELECT DISTINCT ON ({c('cluster_id')}) "  # noqa: S608
        f"{rawsql.select_list(ConsistencyCheck, 'k', fields)} "
        f"FROM {rawsql.table(ConsistencyCheck)} k "
        f"WHERE k.{c('cluster_id')} = ANY(%s::text[]) AND k.{c('checked_at')} >= %s "
        f"ORDER BY k.{c('cluster_id')}, k.{c('checked_at')} DESC, k.id DESC"
    )


# --- rules ----------------------------------------------------------------------------------------


def effective_rule(row: AlertRule, cluster_id: str) -> Rule:
    """The rule's settings for `cluster_id`: defaults, the row's values, the cluster's override."""
    spec = SPEC_BY_ID[row.id]
    override = (row.cluster_overrides or {}).get(cluster_id) or {}
    thresholds = {**spec.thresholds, **(row.thresholds or {}), **override.get("thresholds", {})}
    return Rule(
        id=row.id,
        enabled=override.get("enabled", row.enabled),
        for_seconds=int(override.get("for_seconds", row.for_seconds)),
        thresholds=thresholds,
    )


def round_rule(inputs: RoundInputs, rule_id: str, cluster_id: str) -> Rule:
    """`effective_rule` of the round's row, made once per round for every cluster without
    an override of it (a Rule is never changed by the checks)."""
    row = inputs.rules[rule_id]
    if cluster_id in (row.cluster_overrides or {}):
        return effective_rule(row, cluster_id)
    rule = inputs.shared_rules.get(rule_id)
    if rule is None:
        rule = inputs.shared_rules[rule_id] = effective_rule(row, cluster_id)
    return rule


def rule_rows() -> dict[str, AlertRule]:
    """{rule id: row} of every built-in rule that has its row (see services.rules_ensure)."""
    return {row.id: row for row in AlertRule.objects.filter(id__in=SPEC_BY_ID)}


def rule_to_dict(row: AlertRule) -> dict:
    """A rule as `GET /api/alerts/rules` shows it."""
    spec = SPEC_BY_ID[row.id]
    return {
        "id": row.id,
        "title": spec.title,
        "severity": spec.severity,
        "implemented": spec.implemented,
        "enabled": row.enabled,
        "for_seconds": row.for_seconds,
        "thresholds": {**spec.thresholds, **(row.thresholds or {})},
        "cluster_overrides": row.cluster_overrides or {},
        "runbook_url": spec.runbook_url,
        "updated_at": int(row.updated_at.timestamp()) if row.updated_at else None,
        "updated_by": row.updated_by or None,
    }


def rules_list() -> list[dict]:
    rows = rule_rows()
    return [rule_to_dict(rows[spec.id]) for spec in SPECS if spec.id in rows]


# --- silences -------------------------------------------------------------------------------------


def silences_active(*, now: datetime) -> list[Silence]:
    return list(Silence.objects.filter(starts_at__lte=now, ends_at__gt=now))


def is_silenced(silences: list[Silence], *, rule, cluster_id, member_id, severity) -> bool:
    return any(
        s.matches(rule=rule, cluster_id=cluster_id, member_id=member_id, severity=severity)
        for s in silences
    )


def silence_to_dict(silence: Silence, *, now: datetime) -> dict:
    if silence.ends_at <= now:
        state = "expired"
    elif silence.starts_at > now:
        state = "pending"
    else:
        state = "active"
    return {
        "id": silence.pk,
        "matchers": silence.matchers,
        "starts_at": int(silence.starts_at.timestamp()),
        "ends_at": int(silence.ends_at.timestamp()),
        "comment": silence.comment,
        "created_by": silence.created_by,
        "created_at": int(silence.created_at.timestamp()),
        "state": state,
    }


def silences_list(*, now: datetime) -> list[dict]:
    """Active and future silences, and those that ended in the last 24 h."""
    rows = Silence.objects.filter(ends_at__gte=now - RESOLVED_SHOWN).order_by("-starts_at", "-id")
    return [silence_to_dict(s, now=now) for s in rows]


# --- alerts ---------------------------------------------------------------------------------------


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def alert_to_dict(alert: Alert, *, silenced: bool) -> dict:
    """An alert in the shape of `GET /api/alerts` (times in Unix seconds).

    `starts_at` is when it began firing, or while pending when its condition was first seen.
    """
    return {
        "id": alert.pk,
        "rule": alert.rule,
        "severity": alert.severity,
        "state": alert.state,
        "silenced": silenced,
        "acknowledged": alert.acknowledged_at is not None,
        "cluster_id": alert.cluster_id,
        "member_id": alert.member_id,
        "summary": alert.summary,
        "values": alert.values,
        "starts_at": _unix(alert.starts_at or alert.pending_at),
        "ends_at": _unix(alert.ends_at),
    }


def alert_detail(alert: Alert, *, now: datetime) -> dict:
    """The list's fields plus description, runbook, acknowledgement and the event history."""
    silences = silences_active(now=now)
    silenced = alert.is_active and is_silenced(
        silences,
        rule=alert.rule,
        cluster_id=alert.cluster_id,
        member_id=alert.member_id,
        severity=alert.severity,
    )
    spec = SPEC_BY_ID.get(alert.rule)
    return {
        **alert_to_dict(alert, silenced=silenced),
        "fingerprint": alert.fingerprint,
        "description": alert.description,
        "runbook_url": spec.runbook_url if spec else "",
        "pending_at": _unix(alert.pending_at),
        "acknowledged_by": alert.acknowledged_by or None,
        "acknowledged_at": _unix(alert.acknowledged_at),
        "events": [
            {
                "at": _unix(e.at),
                "kind": e.kind,
                "severity": e.severity,
                "values": e.values,
                "username": e.username or None,
            }
            for e in alert.events.all()
        ],
    }


def alerts_list(
    *, now: datetime, state: str = "", severity: str = "", cluster_id: str = ""
) -> list[dict]:
    """Active alerts and those resolved in the last 24 h, newest first, filtered."""
    rows = Alert.objects.filter(
        Q(state__in=ACTIVE_STATES) | Q(state=AlertState.RESOLVED, ends_at__gte=now - RESOLVED_SHOWN)
    )
    if state:
        rows = rows.filter(state=state)
    if severity:
        rows = rows.filter(severity=severity)
    if cluster_id:
        rows = rows.filter(cluster_id=cluster_id)
    silences = silences_active(now=now)
    return [
        alert_to_dict(
            alert,
            silenced=alert.is_active
            and is_silenced(
                silences,
                rule=alert.rule,
                cluster_id=alert.cluster_id,
                member_id=alert.member_id,
                severity=alert.severity,
            ),
        )
        for alert in rows.order_by("-pending_at", "-id")
    ]


def alert_counts() -> dict[tuple[str, str], int]:
    """{(state, severity): count} of active alerts (for /metrics)."""
    counts: dict[tuple[str, str], int] = {}
    for state, severity in Alert.objects.filter(state__in=ACTIVE_STATES).values_list(
        "state", "severity"
    ):
        counts[(state, severity)] = counts.get((state, severity), 0) + 1
    return counts


def firing_by_cluster(cluster_ids: list[str]) -> dict[str, dict]:
    """{cluster id: {"firing", "worst"}} of the firing alerts of those clusters (the fleet's
    column), one grouped query; clusters without a firing alert are left out."""
    found: dict[str, dict] = {}
    rows = (
        Alert.objects.filter(cluster_id__in=cluster_ids, state=AlertState.FIRING)
        .order_by()
        .values_list("cluster_id", "severity")
        .annotate(count=Count("id"))
    )
    for cluster_id, severity, count in rows:
        entry = found.setdefault(cluster_id, {"firing": 0, "worst": severity})
        entry["firing"] += count
        if SEVERITY_RANK[severity] > SEVERITY_RANK[entry["worst"]]:
            entry["worst"] = severity
    return found
