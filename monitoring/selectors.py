"""Reads of the monitoring app: members, latest values and time series (shared storage only)."""

from django.db import connection

from monitoring import timeseries
from monitoring.models import Member, MonitoredCluster

DEFAULT_CLUSTER = "default"


def cluster_default() -> MonitoredCluster | None:
    """The monitored cluster row, or None before the collector ever ran."""
    return MonitoredCluster.objects.filter(name=DEFAULT_CLUSTER).first()


def members_for_cluster(cluster: MonitoredCluster | None) -> list[Member]:
    """Current members (those that left the cluster are kept for history but not listed)."""
    if cluster is None:
        return []
    return list(cluster.members.filter(in_cluster=True).order_by("name", "member_id"))


def member_default(members: list[Member]) -> Member | None:
    """The member flagged default, else the first one."""
    return next((m for m in members if m.is_default), members[0] if members else None)


def member_by_id(cluster: MonitoredCluster | None, member_id: str) -> Member | None:
    """A member (current or past) by its decimal id."""
    if cluster is None:
        return None
    return cluster.members.filter(member_id=member_id).first()


def metric_series(
    *, member: Member, names: list[str], start: int, end: int, bucket: int | None
) -> dict[str, list[dict]]:
    """{name: [{"ts", "value"}, ...]} for start ≤ ts ≤ end, ascending, absent names omitted.

    bucket None: raw rows. 30/120: averages of raw rows grouped in the database. 300/600:
    pre-aggregated rollups for closed buckets plus on-the-fly averages after the last rollup.
    """
    slots = timeseries.slots_for(names)
    wanted = [(name, slots[name]) for name in dict.fromkeys(names) if name in slots]
    if not wanted or end < start:
        return {}
    raw = [timeseries.slot_expr(slot, "vals") for _, slot in wanted]
    if bucket is None:
        sql = (
            f"SELECT ts, {', '.join(raw)} FROM monitoring_sample "  # noqa: S608 - slots are ints
            "WHERE member_id = %s AND ts >= %s AND ts <= %s ORDER BY ts"
        )
        params = [member.pk, start, end]
    else:
        averaged = ", ".join(f"avg({e})" for e in raw)
        live_sql = (
            f"SELECT (ts / {bucket}) * {bucket} AS b, {averaged} "  # noqa: S608
            "FROM monitoring_sample WHERE member_id = %s AND ts >= %s AND ts <= %s "
            f"GROUP BY ts / {bucket}"
        )
        rolled_until = None
        if bucket in timeseries.ROLLUP_TIERS:
            rolled_until = member.cluster.rollup_state.get(str(bucket))
        if rolled_until is not None and rolled_until > start:
            rolled = ", ".join(raw)
            sql = (
                f"SELECT bucket AS b, {rolled} FROM monitoring_samplerollup "  # noqa: S608
                "WHERE member_id = %s AND tier = %s AND bucket >= %s AND bucket <= %s "
                f"AND bucket < %s UNION ALL {live_sql} ORDER BY 1"
            )
            first_bucket = start // bucket * bucket
            params = [member.pk, bucket, first_bucket, end, rolled_until]
            params += [member.pk, max(start, rolled_until), end]
        else:
            sql = f"{live_sql} ORDER BY 1"
            params = [member.pk, start, end]
    series: dict[str, list[dict]] = {name: [] for name, _ in wanted}
    columns = [series[name] for name, _ in wanted]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            ts = int(row[0])
            for points, value in zip(columns, row[1:], strict=True):
                if value is not None:
                    points.append({"ts": ts, "value": float(value)})
    return {name: points for name, points in series.items() if points}


def sample_counts(cluster: MonitoredCluster | None) -> dict[str, int]:
    """{member_id: stored samples} from the counters kept at ingest (no table scan)."""
    if cluster is None:
        return {}
    return dict(cluster.members.values_list("member_id", "sample_count"))
