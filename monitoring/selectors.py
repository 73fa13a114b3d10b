"""Reads of the monitoring app: members, latest values and time series (shared storage only),
and each user's panel layout."""

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection

from etcdmonitor_site import rawsql
from etcdmonitor_site.reuse import ReuseWindow
from monitoring import health, timeseries
from monitoring.models import Member, MonitoredCluster, PanelConfig
from monitoring.panels import default_panel_config, merge_panel_config

# The name of the cluster row that ETCD_ENDPOINTS describes (the collector creates it); every
# other monitored cluster's row is named by its record's id.
DEFAULT_CLUSTER = "default"


_CLUSTER_FIELDS = [f.name for f in MonitoredCluster._meta.concrete_fields]
# scrape_state is the collector's (KBs of bucket counts): decoding it cost every request.
_MEMBER_FIELDS = [f.name for f in Member._meta.concrete_fields if f.name != "scrape_state"]


def cluster_with_members(
    name: str = DEFAULT_CLUSTER,
) -> tuple[MonitoredCluster | None, list[Member]]:
    """The monitored cluster row of the cluster record `name` (None before the collector ever
    ran) and its current members.

    One explicit query (every dashboard poll runs it; see etcdmonitor_site.rawsql). Members
    that left the cluster are kept for history but not listed.
    """
    with connection.cursor() as cursor:
        cursor.execute(_cluster_with_members_sql(connection.vendor), [name])
        rows = cursor.fetchall()
    if not rows:
        return None, []
    count = len(_CLUSTER_FIELDS)
    cluster = rawsql.instance(MonitoredCluster, _CLUSTER_FIELDS, rows[0][:count])
    members = []
    for row in rows:
        if row[count] is None:
            continue  # the LEFT JOIN's row for a cluster without members
        member = rawsql.instance(Member, _MEMBER_FIELDS, row[count:])
        member.cluster = cluster
        members.append(member)
    return cluster, members


@functools.cache
def _cluster_with_members_sql(vendor: str) -> str:
    return (
        f"SELECT {rawsql.select_list(MonitoredCluster, 'c', _CLUSTER_FIELDS)}, "  # noqa: S608
        f"{rawsql.select_list(Member, 'm', _MEMBER_FIELDS)} "
        f"FROM {rawsql.table(MonitoredCluster)} c LEFT JOIN {rawsql.table(Member)} m "
        f"ON m.{rawsql.column(Member, 'cluster')} = c.id "
        f"AND m.{rawsql.column(Member, 'in_cluster')} "
        f"WHERE c.{rawsql.column(MonitoredCluster, 'name')} = %s "
        f"ORDER BY m.{rawsql.column(Member, 'name')}, m.{rawsql.column(Member, 'member_id')}"
    )


def cluster_row(name: str = DEFAULT_CLUSTER) -> MonitoredCluster | None:
    """The monitored cluster row alone (the collector's first read of every cycle)."""
    with connection.cursor() as cursor:
        cursor.execute(_collector_sql("cluster", connection.vendor), [name])
        row = cursor.fetchone()
    return rawsql.instance(MonitoredCluster, _CLUSTER_FIELDS, row) if row else None


def cluster_rows(names: list[str]) -> dict[str, MonitoredCluster]:
    """`cluster_row` of many cluster records (a collection round) in one query: {name: row}."""
    condition = f"c.{rawsql.column(MonitoredCluster, 'name')} = %s"
    rows = rawsql.rows_in(_collector_sql("cluster", connection.vendor), condition, names)
    found = [rawsql.instance(MonitoredCluster, _CLUSTER_FIELDS, row) for row in rows]
    return {row.name: row for row in found}


def members_to_scrape_of(clusters: list[MonitoredCluster]) -> dict[int, list[Member]]:
    """`members_to_scrape` of many clusters (a collection round) in one query: {row pk: list}."""
    by_pk = {cluster.pk: cluster for cluster in clusters}
    found: dict[int, list[Member]] = {pk: [] for pk in by_pk}
    condition = f"m.{rawsql.column(Member, 'cluster')} = %s"
    for row in rawsql.rows_in(_collector_sql("members", connection.vendor), condition, list(by_pk)):
        member = rawsql.instance(Member, _SCRAPE_MEMBER_FIELDS, row)
        member.cluster = by_pk[member.cluster_id]
        found[member.cluster_id].append(member)
    return found


def members_to_scrape(cluster: MonitoredCluster) -> list[Member]:
    """The cluster's current members, scrape_state included (the collector's read).

    `latest` and `grpc_methods` are left out: a cycle overwrites them, and decoding them for
    every member was a measurable share of the cycle; a failed member loads `latest` lazily.
    """
    with connection.cursor() as cursor:
        cursor.execute(_collector_sql("members", connection.vendor), [cluster.pk])
        rows = cursor.fetchall()
    members = [rawsql.instance(Member, _SCRAPE_MEMBER_FIELDS, row) for row in rows]
    for member in members:
        member.cluster = cluster
    return members


_SCRAPE_MEMBER_FIELDS = [
    f.name for f in Member._meta.concrete_fields if f.name not in ("latest", "grpc_methods")
]


@functools.cache
def _collector_sql(name: str, vendor: str) -> str:
    member = functools.partial(rawsql.column, Member)
    if name == "cluster":
        return (
            f"SELECT {rawsql.select_list(MonitoredCluster, 'c', _CLUSTER_FIELDS)} "  # noqa: S608
            f"FROM {rawsql.table(MonitoredCluster)} c "
            f"WHERE c.{rawsql.column(MonitoredCluster, 'name')} = %s"
        )
    return (
        f"SELECT {rawsql.select_list(Member, 'm', _SCRAPE_MEMBER_FIELDS)} "  # noqa: S608
        f"FROM {rawsql.table(Member)} m WHERE m.{member('cluster')} = %s "
        f"AND m.{member('in_cluster')} ORDER BY m.{member('name')}, m.{member('member_id')}"
    )


_PROBE_FIELDS = (
    "id",
    "cluster_id",
    "member_id",
    "name",
    "scrape_url",
    "is_learner",
    "learner_since",
)


@dataclass(frozen=True)
class ProbeMembers:
    """A cluster's current members with just what the health probe needs (it runs every few
    seconds), and the backend quota each reported at its last scrape (bytes)."""

    members: list[Member]
    quotas: list[int]


def _probe_members_of(rows) -> dict[int, ProbeMembers]:
    found: dict[int, ProbeMembers] = {}
    for *values, quota in rows:
        member = rawsql.instance(Member, list(_PROBE_FIELDS), values)
        entry = found.setdefault(member.cluster_id, ProbeMembers([], []))
        entry.members.append(member)
        if isinstance(quota, int | float):
            entry.quotas.append(int(quota))
    return found


def _probe_rows(cluster_pks: list[int]) -> list[tuple]:
    """Hand-written (a round reads every cluster's members every few seconds): the probe
    fields and the quota from `latest`, by cluster, name, member id."""
    if not cluster_pks:
        return []
    m = functools.partial(rawsql.column, Member)
    quota = "etcd_server_quota_backend_bytes"
    if connection.vendor == "postgresql":
        # ->> and a cast: Django loads jsonb as text, so `->` would give a string.
        quota_sql = f"(m.{m('latest')} ->> '{quota}')::double precision"
    else:
        quota_sql = f"json_extract(m.{m('latest')}, '$.{quota}')"
    sql = (
        f"SELECT {rawsql.select_list(Member, 'm', list(_PROBE_FIELDS))}, "  # noqa: S608
        f"{quota_sql} FROM {rawsql.table(Member)} m "
        f"WHERE m.{m('cluster')} IN ({', '.join(['%s'] * len(cluster_pks))}) "
        f"AND m.{m('in_cluster')} ORDER BY m.{m('cluster')}, m.{m('name')}, m.{m('member_id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(cluster_pks))
        return cursor.fetchall()


def members_for_probe(cluster: MonitoredCluster) -> ProbeMembers:
    """The cluster's probe members and quotas in one query (see ProbeMembers)."""
    entry = _probe_members_of(_probe_rows([cluster.pk])).get(cluster.pk, ProbeMembers([], []))
    for member in entry.members:
        member.cluster = cluster
    return entry


def probe_round(cluster_ids: list[str]) -> dict[str, tuple[MonitoredCluster, ProbeMembers]]:
    """For a health round of many clusters: each existing cluster row (by record id) and its
    probe members, in two queries for the whole fleet instead of two per cluster."""
    rows = cluster_rows(cluster_ids)
    members = _probe_members_of(_probe_rows([row.pk for row in rows.values()]))
    round_inputs = {}
    for name, row in rows.items():
        entry = members.get(row.pk, ProbeMembers([], []))
        for member in entry.members:
            member.cluster = row
        round_inputs[name] = (row, entry)
    return round_inputs


def health_max_age() -> float:
    """How long a probe result vouches for a member: three missed rounds and a timeout."""
    return 3 * settings.HEALTH_PROBE_INTERVAL + health.PROBE_TIMEOUT


CLUSTER_HEALTH_KEYS = (
    "members_total",
    "members_up",
    "quorum",
    "quorum_margin",
    "leader_id",
    "alarms",
    "db_size_bytes",
    "db_quota_bytes",
    "db_quota_ratio",
)


def cluster_health(cluster: MonitoredCluster | None, members: list[Member], *, now) -> dict:
    """/api/status's `cluster` object: the latest probe round as stored (no etcd call).

    Before the first round, or when the probe stopped for longer than health_max_age(),
    `health` is `unknown`; the numbers are then the last ones known, dated by `as_of`.
    """
    summary = dict(cluster.health_summary or {}) if cluster is not None else {}
    body = {"health": "unknown"}
    body.update({key: summary.get(key) for key in CLUSTER_HEALTH_KEYS})
    body["alarms"] = list(summary.get("alarms") or [])
    if cluster is not None:
        body["health"] = str(cluster.health_now(now=now, max_age=health_max_age()))
    if body["members_total"] is None:
        body["members_total"] = len(members)
    health_at = cluster.health_at if cluster is not None else None
    body["as_of"] = int(health_at.timestamp()) if health_at else None
    return body


@dataclass(frozen=True)
class LatestJson:
    """/api/current's data as stored: the member's latest values and gRPC ranking as JSON text."""

    member_id: str
    latest: str
    grpc_methods: str
    basis: str = "{}"
    collector_up: bool = False
    latest_ts: int | None = None
    health: str = "unknown"
    probed_at: object = None

    def is_stale(self, *, now: float) -> bool:
        """Whether the values are not current: the last scrape failed, they are older than two
        collection intervals, or the health probe has just found the member down."""
        if not self.collector_up or self.latest_ts is None:
            return True
        if now - self.latest_ts > 2 * settings.COLLECTOR_INTERVAL:
            return True
        probed = self.probed_at.timestamp() if self.probed_at is not None else None
        return self.health == "down" and probed is not None and now - probed <= health_max_age()


@dataclass(frozen=True)
class LatestLookup:
    """Whether the cluster has current members (else `last_error`), and the member if found."""

    has_members: bool
    last_error: str
    member: LatestJson | None


# (cluster, member id asked for, vendor) → lookup, for CURRENT_CACHE_SECONDS per process.
_latest = ReuseWindow(max_entries=1_000)


def member_latest_json(member_id: str | None, cluster: str = DEFAULT_CLUSTER) -> LatestLookup:
    """The requested member's (or else the default member's) latest values of the monitored
    cluster `cluster` (a cluster record's id), in one query.

    The JSON text goes to the response as it is stored: the hottest dashboard poll neither
    builds model instances nor decodes and re-encodes ~120 values. Only the chosen member's
    JSON is read: each one is a TOASTed value that PostgreSQL would decompress and print.
    The answer is reused for CURRENT_CACHE_SECONDS per process: it changes once per
    collection cycle, and every open dashboard polls it.
    """
    key = (cluster, member_id or "", connection.vendor)
    lookup = _latest.get(key, settings.CURRENT_CACHE_SECONDS)
    if lookup is None:
        lookup = _member_latest_json(member_id or "", cluster)
        _latest.put(key, lookup)
    return lookup


def forget_latest_json() -> None:
    """Drop the cached /api/current answers (a cycle in this process wrote new ones)."""
    _latest.clear()


def _member_latest_json(wanted: str, cluster: str) -> LatestLookup:
    with connection.cursor() as cursor:
        cursor.execute(
            _latest_sql(connection.vendor),
            [wanted, cluster, wanted, wanted, cluster],
        )
        rows = cursor.fetchall()
    if not rows:
        return LatestLookup(has_members=False, last_error="", member=None)
    last_error = rows[0][0] or ""
    if not any(row[1] is not None and row[2] for row in rows):
        return LatestLookup(has_members=False, last_error=last_error, member=None)
    found = next((row for row in rows if row[3]), None)
    member = None
    if found is not None:
        member = LatestJson(
            member_id=found[1],
            latest=found[4] or "null",
            grpc_methods=found[5],
            basis=found[6] or "{}",
            collector_up=bool(found[7]),
            latest_ts=found[8],
            health=found[9],
            probed_at=_aware(found[10]),
        )
    return LatestLookup(has_members=True, last_error=last_error, member=member)


def _aware(value):
    """A datetime column read by raw SQL (SQLite returns text, naive; stored in UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@functools.cache
def _latest_sql(vendor: str) -> str:
    m = functools.partial(rawsql.column, Member)
    cluster_name = rawsql.column(MonitoredCluster, "name")
    # The member shown: the one asked for (current or past), else the default current one,
    # else the first current one by name.
    pick = (
        f"SELECT p.id FROM {rawsql.table(Member)} p "  # noqa: S608
        f"JOIN {rawsql.table(MonitoredCluster)} pc ON pc.id = p.{m('cluster')} "
        f"WHERE pc.{cluster_name} = %s AND (p.{m('member_id')} = %s "
        f"OR (%s = '' AND p.{m('in_cluster')})) "
        f"ORDER BY p.{m('is_default')} DESC, p.{m('name')}, p.{m('member_id')} LIMIT 1"
    )
    return (
        f"SELECT c.{rawsql.column(MonitoredCluster, 'last_error')}, m.{m('member_id')}, "  # noqa: S608
        f"m.{m('in_cluster')}, pick.id IS NOT NULL, "
        f"CASE WHEN pick.id IS NOT NULL THEN CAST(m.{m('latest')} AS text) END, "
        f"CASE WHEN pick.id IS NOT NULL THEN CAST(m.{m('grpc_methods')} AS text) END, "
        f"CASE WHEN pick.id IS NOT NULL THEN CAST(m.{m('quantile_basis')} AS text) END, "
        f"m.{m('collector_up')}, m.{m('latest_ts')}, m.{m('health')}, m.{m('probed_at')} "
        f"FROM {rawsql.table(MonitoredCluster)} c LEFT JOIN {rawsql.table(Member)} m "
        f"ON m.{m('cluster')} = c.id AND (m.{m('in_cluster')} OR m.{m('member_id')} = %s) "
        f"LEFT JOIN ({pick}) pick ON pick.id = m.id "
        f"WHERE c.{cluster_name} = %s "
        f"ORDER BY m.{m('name')}, m.{m('member_id')}"
    )


def member_default(members: list[Member]) -> Member | None:
    """The member flagged default, else the first one."""
    return next((m for m in members if m.is_default), members[0] if members else None)


def member_by_id(cluster: MonitoredCluster | None, member_id: str) -> Member | None:
    """A member (current or past) by its decimal id."""
    if cluster is None:
        return None
    return cluster.members.filter(member_id=member_id).first()


def _series_query(
    *, member: Member, slots: list[int], start: int, end: int, bucket: int | None
) -> tuple[str, list]:
    """SQL returning (ts or bucket start, value per slot...) rows, unordered.

    bucket None: raw rows. 30/120: averages of raw rows grouped in the database. 300/600:
    pre-aggregated rollups for closed buckets plus on-the-fly averages after the last rollup.
    """
    raw = [timeseries.slot_expr(slot, "vals") for slot in slots]
    if bucket is None:
        sql = (
            f"SELECT ts AS b, {', '.join(raw)} FROM monitoring_sample "  # noqa: S608 - ints
            "WHERE member_id = %s AND ts >= %s AND ts <= %s"
        )
        return sql, [member.pk, start, end]
    averaged = ", ".join(f"avg({e})" for e in raw)
    live_sql = (
        f"SELECT (ts / {bucket}) * {bucket} AS b, {averaged} "  # noqa: S608
        "FROM monitoring_sample WHERE member_id = %s AND ts >= %s AND ts <= %s "
        f"GROUP BY ts / {bucket}"
    )
    rolled_until = None
    if bucket in timeseries.ROLLUP_TIERS:
        rolled_until = member.cluster.rollup_state.get(str(bucket))
    if rolled_until is None or rolled_until <= start:
        return live_sql, [member.pk, start, end]
    sql = (
        f"SELECT bucket AS b, {', '.join(raw)} FROM monitoring_samplerollup "  # noqa: S608
        "WHERE member_id = %s AND tier = %s AND bucket >= %s AND bucket <= %s "
        f"AND bucket < %s UNION ALL {live_sql}"
    )
    params = [member.pk, bucket, start // bucket * bucket, end, rolled_until]
    return sql, [*params, member.pk, max(start, rolled_until), end]


def _wanted(names: list[str]) -> list[tuple[str, int]]:
    slots = timeseries.slots_for(names)
    return [(name, slots[name]) for name in dict.fromkeys(names) if name in slots]


def metric_series(
    *, member: Member, names: list[str], start: int, end: int, bucket: int | None
) -> dict[str, list[dict]]:
    """{name: [{"ts", "value"}, ...]} for start ≤ ts ≤ end, ascending, absent names omitted."""
    wanted = _wanted(names)
    if not wanted or end < start:
        return {}
    sql, params = _series_query(
        member=member, slots=[slot for _, slot in wanted], start=start, end=end, bucket=bucket
    )
    series: dict[str, list[dict]] = {name: [] for name, _ in wanted}
    columns = [series[name] for name, _ in wanted]
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} ORDER BY 1", params)
        for row in cursor.fetchall():
            ts = int(row[0])
            for points, value in zip(columns, row[1:], strict=True):
                if value is not None:
                    points.append({"ts": ts, "value": float(value)})
    return {name: points for name, points in series.items() if points}


def metric_series_json(
    *, member: Member, names: list[str], start: int, end: int, bucket: int | None
) -> str:
    """`metric_series` as JSON text, built by PostgreSQL itself where it runs.

    The 7-day dashboard query returns ~70 000 points: a dict per point and rendering them took
    most of the request's time (bench/perf_notes.md); PostgreSQL writes the text instead.
    """
    if connection.vendor != "postgresql":
        return json.dumps(
            metric_series(member=member, names=names, start=start, end=end, bucket=bucket),
            separators=(",", ":"),
        )
    wanted = _wanted(names)
    if not wanted or end < start:
        return "{}"
    sql, params = _series_query(
        member=member, slots=[slot for _, slot in wanted], start=start, end=end, bucket=bucket
    )
    columns = ", ".join(f"c{i}" for i in range(len(wanted)))
    # One text per series, points in the sorted subquery's order (a plain aggregate reads its
    # input in order; an ORDER BY per aggregate would sort once per series). A NULL value
    # makes the whole concatenation NULL, which string_agg skips: absent points drop out.
    aggregates = ", ".join(
        f"string_agg('{{\"ts\":' || b || ',\"value\":' || c{i} || '}}', ',')"
        for i in range(len(wanted))
    )
    with connection.cursor() as cursor:
        # Column aliases are generated here; the inner query's values are parameters.
        cursor.execute(
            f"SELECT {aggregates} FROM (SELECT * FROM ({sql}) AS q ORDER BY 1) "  # noqa: S608
            f"AS r(b, {columns})",
            params,
        )
        row = cursor.fetchone()
    parts = [
        f"{json.dumps(name)}:[{text}]"
        for (name, _), text in zip(wanted, row, strict=True)
        if text is not None
    ]
    return "{" + ",".join(parts) + "}"


def sample_counts(cluster: MonitoredCluster | None) -> dict[str, int]:
    """{member_id: stored samples} from the counters kept at ingest (no table scan)."""
    if cluster is None:
        return {}
    return dict(cluster.members.values_list("member_id", "sample_count"))


# --- panel layout ---------------------------------------------------------------------------------


def panel_config_for(user) -> dict:
    """The user's stored layout merged with the registry's defaults (§3.4)."""
    stored = PanelConfig.objects.filter(user=user).first()
    if stored is None:
        return default_panel_config()
    return merge_panel_config({"panels": stored.panels, "cards": stored.cards})


# --- the fleet ------------------------------------------------------------------------------------

WAL_FSYNC_P99 = "etcd_disk_wal_fsync_duration_seconds_p99"


def fleet_monitoring(cluster_ids: list[str], *, now: datetime) -> dict[str, dict]:
    """{cluster id: its monitoring summary} for the fleet: the health model's cluster object
    (as /api/status gives it), the leader's name, the etcd versions its current members run,
    the last collection (Unix s) and the worst WAL fsync p99 of its members. Two queries
    whatever the fleet size; a cluster never collected has the `unknown` health object."""
    rows = {
        c.name: c
        for c in MonitoredCluster.objects.filter(name__in=cluster_ids).only(
            "name", "last_cycle_at", "health", "health_at", "health_summary"
        )
    }
    members: dict[str, list] = {name: [] for name in rows}
    names: dict[tuple[str, str], str] = {}
    for name, member_id, member_name, version, wal in Member.objects.filter(
        cluster__name__in=list(rows), in_cluster=True
    ).values_list("cluster__name", "member_id", "name", "etcd_version", f"latest__{WAL_FSYNC_P99}"):
        members[name].append((version, wal))
        names[(name, member_id)] = member_name or member_id
    fleet = {}
    for cluster_id in cluster_ids:
        cluster = rows.get(cluster_id)
        listed = members.get(cluster_id, [])
        last = cluster.last_cycle_at if cluster is not None else None
        walls = [w for _, w in listed if isinstance(w, int | float)]
        status = cluster_health(cluster, listed, now=now)
        fleet[cluster_id] = {
            "status": status,
            "leader": names.get((cluster_id, status["leader_id"] or "")),
            "versions": sorted({v for v, _ in listed if v}),
            "last_collected": int(last.timestamp()) if last else None,
            "wal_fsync_p99": max(walls, default=None),
        }
    return fleet
