"""Writes and etcd calls of the monitoring app: member discovery, collection, rollups, retention,
and each user's panel layout."""

import contextlib
import functools
import logging
import os
import queue
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.models import F, JSONField, Q

from clusters.connection import cluster_gateway as record_gateway
from clusters.crypto import TabDecryptFailed, TabKeyMissing
from clusters.selectors import monitored_cluster_ids, monitored_record, monitored_records
from etcdgateway import (
    ClusterGateway,
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    MemberInfo,
    Transfers,
    cluster_gateway,
    normalise_endpoint,
)
from etcdgateway.config import metrics_url_for_host
from etcdgateway.egress import EndpointNotAllowed, needs_lookup, pinned_endpoint
from etcdgateway.errors import translate
from etcdmonitor_site import jsontext, rawsql
from etcdmonitor_site.errors import DomainError, InvalidInput
from etcdmonitor_site.threads import LaterCalls, named_pool
from monitoring import health, metrics, partitions, selectors, timeseries
from monitoring.checks import quantile_window_seconds
from monitoring.models import (
    Member,
    MemberHealth,
    MonitoredCluster,
    PanelConfig,
    Sample,
    SampleRollup,
    ValuesArrayField,
)
from monitoring.panels import MAX_VISIBLE_CARDS, merge_panel_config
from monitoring.selectors import DEFAULT_CLUSTER

logger = logging.getLogger(__name__)

MEMBER_SYNC_INTERVAL = 60.0
SCRAPE_TIMEOUT = 10.0
STATUS_TIMEOUT = 5.0
LEASE_TIMEOUT = 5.0
LOCK_SECONDS = 120  # longer than any cycle (timeouts above); a crashed owner frees it by then
RETENTION_BATCH_SECONDS = 3600  # one statement deletes at most an hour of one member's rows


def etcd_endpoints_probe() -> dict[str, bool]:
    """Probe every configured endpoint (Status RPC) so failover order and /healthz stay fresh.

    Returns {endpoint: healthy}. Transitions are logged by the gateway.
    """
    results = cluster_gateway().probe()
    return {endpoint: bool(result.healthy) for endpoint, result in results.items()}


def cluster_ensure(
    *,
    name: str = DEFAULT_CLUSTER,
    endpoints: list[str] | tuple[str, ...] | None = None,
    row: MonitoredCluster | None = None,
) -> MonitoredCluster:
    """The monitored-cluster row of the cluster record `name` (its id; `default` is the cluster
    of ETCD_ENDPOINTS), made on first use; its endpoints follow `endpoints` (default: the
    settings' ones). `row` is the row when the caller read it already (a fleet round).

    History hangs off member ids, so changing or re-ordering the endpoints wipes nothing.
    """
    if endpoints is None:
        endpoints = settings.ETCD_ENDPOINTS
    endpoints = [normalise_endpoint(e) for e in endpoints]
    cluster = row if row is not None else selectors.cluster_row(name)
    if cluster is None:
        cluster, _ = MonitoredCluster.objects.get_or_create(
            name=name, defaults={"endpoints": endpoints}
        )
    if cluster.endpoints != endpoints:
        cluster.endpoints = endpoints
        cluster.save(update_fields=["endpoints"])
    return cluster


@functools.cache
def _lock_sql(vendor: str) -> str:
    c = functools.partial(rawsql.column, MonitoredCluster)
    return (
        f"UPDATE {rawsql.table(MonitoredCluster)} SET {c('lock_until')} = %s, "  # noqa: S608
        f"{c('lock_token')} = %s "
        f"WHERE id = %s AND ({c('lock_until')} IS NULL OR {c('lock_until')} < %s)"
    )


# --- collection lock ------------------------------------------------------------------------------


def cluster_lock_acquire(*, cluster: MonitoredCluster, seconds: int = LOCK_SECONDS) -> str | None:
    """Take the collection lease with one conditional UPDATE; None when another owner holds it."""
    now = datetime.now(UTC)
    token = uuid.uuid4().hex
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            _lock_sql(connection.vendor),
            [adapt(now + timedelta(seconds=seconds)), token, cluster.pk, adapt(now)],
        )
        taken = cursor.rowcount
    return token if taken else None


def cluster_lock_release(*, cluster: MonitoredCluster, token: str, **changes) -> None:
    """Give the lease back, saving `changes` to the cluster row in the same statement."""
    columns = [f"{rawsql.column(MonitoredCluster, name)} = %s" for name in changes]
    values = [
        MonitoredCluster._meta.get_field(name).get_db_prep_save(value, connection)
        for name, value in changes.items()
    ]
    lock_until, lock_token = (
        rawsql.column(MonitoredCluster, n) for n in ("lock_until", "lock_token")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {rawsql.table(MonitoredCluster)} SET {lock_until} = NULL, "  # noqa: S608
            f"{', '.join([f'{lock_token} = %s', *columns])} WHERE id = %s AND {lock_token} = %s",
            ["", *values, cluster.pk, token],
        )
    for name, value in changes.items():
        setattr(cluster, name, value)


def cluster_locks_release_finished(*, finished: list[tuple[MonitoredCluster, str, dict]]) -> None:
    """Give back many leases (PostgreSQL) in one statement, each saving the cycle's
    `_cycle_done` fields, where `cluster_lock_release` takes one statement per cluster; if it
    fails, each lease is given back on its own."""
    if not finished:
        return
    columns: list[list] = [[], [], [], [], []]
    for cluster, token, changes in finished:
        for column, value in zip(
            columns,
            (
                cluster.pk,
                token,
                changes["last_cycle_at"],
                changes["last_cycle_ms"],
                changes.get("last_reached_at"),
            ),
            strict=True,
        ):
            column.append(value)
    try:
        with _own_scope(), rawsql.bound_cursor() as cursor:
            cursor.execute(_release_sql(), [rawsql.array_literal(c) for c in columns])
    except Exception:
        logger.exception("giving back %d leases at once failed; one by one", len(finished))
        for cluster, token, changes in finished:
            try:
                cluster_lock_release(cluster=cluster, token=token, **changes)
            except Exception:  # the lease lapses after LOCK_SECONDS
                logger.exception("giving back the lease of cluster %s failed", cluster.name)
        return
    for cluster, _, changes in finished:
        for name, value in changes.items():
            setattr(cluster, name, value)


@functools.cache
def _release_sql() -> str:
    c = functools.partial(rawsql.column, MonitoredCluster)
    return (
        f"UPDATE {rawsql.table(MonitoredCluster)} AS t SET {c('lock_until')} = NULL, "  # noqa: S608
        f"{c('lock_token')} = '', {c('last_cycle_at')} = v.at, {c('last_cycle_ms')} = v.ms, "
        f"{c('last_reached_at')} = coalesce(v.reached, t.{c('last_reached_at')}) "
        "FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::double precision[], "
        "%s::timestamptz[]) AS v(id, token, at, ms, reached) "
        f"WHERE t.id = v.id AND t.{c('lock_token')} = v.token"
    )


@dataclass(frozen=True)
class Claim:
    """A collection lease taken ahead for one cluster by a round, with its stored members."""

    token: str
    members: list[Member]


def cluster_locks_claim(
    *, clusters: list[MonitoredCluster], seconds: int = LOCK_SECONDS
) -> dict[str, Claim]:
    """Take the collection lease of many clusters in one statement (PostgreSQL; elsewhere
    none is taken and each cycle takes its own): {cluster name: Claim} of those taken, their
    members read in one more query. A row another transaction holds is skipped, never waited
    for (so this can never join a deadlock); its cycle takes the lease itself."""
    if not clusters or connection.vendor != "postgresql":
        return {}
    now = datetime.now(UTC)
    tokens = {cluster.pk: uuid.uuid4().hex for cluster in clusters}
    with connection.cursor() as cursor:
        cursor.execute(
            _claim_sql(),
            [list(tokens), now, now + timedelta(seconds=seconds), list(tokens),
             list(tokens.values()), now],
        )  # fmt: skip
        taken = {pk for (pk,) in cursor.fetchall()}
    claimed = [cluster for cluster in clusters if cluster.pk in taken]
    members = selectors.members_to_scrape_of(claimed)
    return {c.name: Claim(token=tokens[c.pk], members=members[c.pk]) for c in claimed}


@functools.cache
def _claim_sql() -> str:
    c = functools.partial(rawsql.column, MonitoredCluster)
    clusters = rawsql.table(MonitoredCluster)
    return (
        f"WITH free AS (SELECT id FROM {clusters} WHERE id = ANY(%s::bigint[]) "  # noqa: S608
        f"AND ({c('lock_until')} IS NULL OR {c('lock_until')} < %s) FOR UPDATE SKIP LOCKED) "
        f"UPDATE {clusters} AS t SET {c('lock_until')} = %s, {c('lock_token')} = v.token "
        "FROM unnest(%s::bigint[], %s::text[]) AS v(id, token), free "
        f"WHERE t.id = v.id AND free.id = t.id "
        f"AND (t.{c('lock_until')} IS NULL OR t.{c('lock_until')} < %s) RETURNING t.id"
    )


# --- member discovery -----------------------------------------------------------------------------


def _default_member_id(members, endpoints: list[str], gateway: ClusterGateway) -> str | None:
    """The member behind the first configured endpoint.

    Matched by advertised client URL; otherwise (e.g. 127.0.0.1 vs an advertised hostname) by
    asking that very endpoint who it is — never "whichever member answers first".
    """
    by_url = _default_by_url(members, endpoints)
    if by_url is not None:
        return by_url
    try:
        return str(gateway.client_for(endpoints[0], timeout=STATUS_TIMEOUT).status().member_id)
    except EtcdError:
        return None


def _default_by_url(members, endpoints: list[str]) -> str | None:
    """The member advertising the first configured endpoint as a client URL, if one does."""
    first = endpoints[0]
    for member in members:
        if first in {normalise_endpoint(u) for u in member.client_urls}:
            return member.id_str
    return None


def members_sync(
    *,
    cluster: MonitoredCluster,
    force: bool = False,
    gateway: ClusterGateway | None = None,
    current: list[Member] | None = None,
) -> list[Member]:
    """Refresh the member list from MemberList (at most every 60 s unless `force`), asked
    through `gateway` (default: the settings' cluster) with the Status timeout.

    A failed MemberList keeps the previous list. Members that left are kept (their history
    stays readable) with in_cluster=False. Returns the members to scrape. `current` are the
    stored members when a round read them ahead.
    """
    gateway = gateway or cluster_gateway()
    now = datetime.now(UTC)
    if current is None:
        current = selectors.members_to_scrape(cluster)
    if _members_fresh(cluster, current, now=now) and not force:
        return current
    try:
        listed = gateway.members(timeout=STATUS_TIMEOUT)
    except EtcdError as exc:
        return _members_not_listed(cluster=cluster, current=current, error=exc)
    wanted = _members_wanted(cluster=cluster, gateway=gateway, current=current, listed=listed)
    return _members_store(cluster=cluster, current=current, wanted=wanted)


def _members_not_listed(
    *, cluster: MonitoredCluster, current: list[Member], error: EtcdError
) -> list[Member]:
    """A failed MemberList: the previous list stays, the cluster shows why."""
    logger.warning("member discovery failed for %s: %s", cluster.name, error.message)
    cluster.last_error = error.message
    cluster.save(update_fields=["last_error"])
    return current


def _members_wanted(
    *,
    cluster: MonitoredCluster,
    gateway: ClusterGateway,
    current: list[Member],
    listed: list[MemberInfo],
) -> dict[str, dict]:
    """member_id → the fields to store for what MemberList answered (`listed`). May wait
    (`_members_wanted_may_wait`): no database, so it can run on any thread."""
    default_id = _default_member_id(listed, cluster.endpoints, gateway)
    if default_id is None:
        previous_default = next((m for m in current if m.is_default), None)
        default_id = previous_default.member_id if previous_default else None
    if default_id is None and listed:
        default_id = listed[0].id_str
    wanted = {}
    for info in listed:
        # A member added but not started yet has no client URL: nothing to scrape.
        scrape_url = normalise_endpoint(info.client_urls[0]) if info.client_urls else ""
        if scrape_url and cluster.name != DEFAULT_CLUSTER:
            # Anyone's cluster may advertise any URL: it passes the egress rules first.
            scrape_url = _allowed_url(scrape_url)
        if info.id_str == default_id:
            # The configured endpoint is reachable from here even when the advertised
            # URL (a container hostname, say) is not.
            scrape_url = cluster.endpoints[0]
        wanted[info.id_str] = {
            "name": info.name,
            "client_urls": list(info.client_urls),
            "peer_urls": list(info.peer_urls),
            "scrape_url": scrape_url,
            "is_learner": info.is_learner,
            "is_default": info.id_str == default_id,
            "in_cluster": True,
        }
    return wanted


def _members_wanted_may_wait(cluster: MonitoredCluster, listed: list[MemberInfo]) -> bool:
    """Whether `_members_wanted` may wait on the network: a Status call to learn which member
    the first endpoint is, or a name lookup for a record cluster's advertised URL."""
    if _default_by_url(listed, cluster.endpoints) is None:
        return True
    if cluster.name == DEFAULT_CLUSTER:
        return False
    return any(needs_lookup(info.client_urls[0]) for info in listed if info.client_urls)


def _members_store(
    *, cluster: MonitoredCluster, current: list[Member], wanted: dict[str, dict]
) -> list[Member]:
    """Store the listed members (`wanted`, from `_members_wanted`); the members to scrape."""
    now = datetime.now(UTC)
    if _members_unchanged(current, wanted, now=now):
        # The usual case every 60 s: nothing to write but the sync's date (one statement
        # instead of a transaction of per-member upserts and a reload of every member).
        MonitoredCluster.objects.filter(pk=cluster.pk).update(
            last_member_sync=now, last_reached_at=now, last_error=""
        )
        cluster.last_member_sync = cluster.last_reached_at = now
        cluster.last_error = ""
        return current
    seen = []
    with transaction.atomic():
        for member_id, defaults in wanted.items():
            member, _ = Member.objects.update_or_create(
                cluster=cluster, member_id=member_id, defaults=defaults
            )
            since = member.learner_since_at(is_learner=defaults["is_learner"], now=now)
            if since != member.learner_since:
                member.learner_since = since
                member.save(update_fields=["learner_since"])
            seen.append(member.pk)
        cluster.members.exclude(pk__in=seen).update(in_cluster=False, is_default=False)
        cluster.last_member_sync = now
        cluster.last_reached_at = now
        cluster.last_error = ""
        cluster.save(update_fields=["last_member_sync", "last_reached_at", "last_error"])
    return list(cluster.members.filter(in_cluster=True))


def _members_fresh(cluster: MonitoredCluster, current: list[Member], *, now: datetime) -> bool:
    """Whether the stored members are recent enough to scrape without asking MemberList."""
    return bool(current) and (
        cluster.last_member_sync is not None
        and (now - cluster.last_member_sync).total_seconds() < MEMBER_SYNC_INTERVAL
    )


def _members_unchanged(current: list[Member], wanted: dict[str, dict], *, now) -> bool:
    """Whether the stored members (`current`, those in the cluster) are exactly the listed
    ones with the same fields, learner dates included."""
    if {m.member_id for m in current} != set(wanted):
        return False
    for member in current:
        fields = wanted[member.member_id]
        if any(getattr(member, name) != value for name, value in fields.items()):
            return False
        since = member.learner_since_at(is_learner=fields["is_learner"], now=now)
        if since != member.learner_since:
            return False
    return True


def _allowed_url(url: str) -> str:
    """`url` pinned to its checked address, or "" (nothing to scrape) when egress refuses it."""
    try:
        return pinned_endpoint(url).url
    except (EndpointNotAllowed, EtcdError) as exc:
        logger.warning("member URL %s not scraped: %s", url, exc)
        return ""


# --- one collection cycle -------------------------------------------------------------------------


@dataclass
class MemberResult:
    """What one member's scrape produced (I/O only; parsing happens in the caller's thread)."""

    member: Member
    text: str = ""
    status: object = None
    error: str = ""


@dataclass
class CycleReport:
    """Outcome of `collect_cluster`: per member, up or the error; skipped when locked out."""

    ts: int
    skipped: bool = False
    members: list[dict] = field(default_factory=list)
    duration_ms: float = 0.0


class _LeaseCount:
    """The cycle's one LeaseLeases call, made by the first voting member that answered Status.

    That member just proved it is alive, so no hung endpoint can stall the call, and the
    other members wait for it at most one RPC.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._claimed = False
        self._done = threading.Event()
        self.value: int | None = None

    def claim_and_count(self, url: str, gateway: ClusterGateway) -> None:
        with self._lock:
            if self._claimed:
                return
            self._claimed = True
        try:
            self.value = _lease_count(url, gateway)
        finally:
            self._done.set()

    def get(self) -> int | None:
        self._done.wait(LEASE_TIMEOUT + 1)
        return self.value


@dataclass(frozen=True)
class MetricsTarget:
    """Where one member's metrics come from: its own listener (`url`), else the client URL."""

    url: str = ""
    error: str = ""


def _member_hosts(member: Member) -> set[str]:
    urls = [member.scrape_url, *member.client_urls, *(member.peer_urls or [])]
    return {host for host in (urlsplit(u).hostname for u in urls if u) if host}


def metrics_targets(members: list[Member], urls: tuple[str, ...]) -> dict[str, MetricsTarget]:
    """member_id → its ETCD_METRICS_URLS entry: the template filled with the host of its scrape
    URL, or the one listed URL whose host is one of the member's (client, peer, configured).

    Never a guess: a member no entry names, or one sharing the entry's host with another
    member, gets an error saying so (and is shown down) rather than another member's metrics.
    """
    if not urls:
        return {m.member_id: MetricsTarget() for m in members}
    if len(urls) == 1 and "{host}" in urls[0]:
        return {
            m.member_id: MetricsTarget(
                url=metrics_url_for_host(urls[0], urlsplit(m.scrape_url).hostname or "")
            )
            for m in members
        }
    hosts = {m.member_id: _member_hosts(m) for m in members}
    targets = {}
    for member in members:
        listed = [u for u in urls if urlsplit(u).hostname in hosts[member.member_id]]
        if not listed:
            error = f"no ETCD_METRICS_URLS entry for a host of this member ({member.name})"
        elif len(listed) > 1:
            error = f"several ETCD_METRICS_URLS entries match this member: {', '.join(listed)}"
        elif sharing := sorted(
            other.name or other.member_id
            for other in members
            if other is not member and urlsplit(listed[0]).hostname in hosts[other.member_id]
        ):
            error = (
                f"ETCD_METRICS_URLS entry {listed[0]} matches members on the same host "
                f"({', '.join(sharing)}): use a {{host}} template or distinct hosts"
            )
        else:
            targets[member.member_id] = MetricsTarget(url=listed[0])
            continue
        targets[member.member_id] = MetricsTarget(error=error)
    return targets


def _scrape(
    member: Member,
    gateway: ClusterGateway,
    metrics_path: str,
    target: MetricsTarget,
    leases: _LeaseCount | None,
) -> MemberResult:
    result = MemberResult(member=member)
    if target.error or not member.scrape_url:
        result.error = target.error or "member has no client URL"
        return result
    try:
        scraper = gateway.scraper(timeout=SCRAPE_TIMEOUT)
        if target.url:
            result.text = scraper.fetch_url(target.url)
        else:
            result.text = scraper.fetch(member.scrape_url, metrics_path)
    except Exception as exc:  # noqa: BLE001 - any failure of one member only marks it down
        result.error = translate(exc, endpoint=target.url or member.scrape_url).message
        return result
    try:
        client = gateway.client_for(member.scrape_url, timeout=STATUS_TIMEOUT)
        result.status = client.status()
    except EtcdError as exc:
        logger.info("status of %s failed: %s", member.scrape_url, exc.message)
    else:
        # A learner refuses LeaseLeases ("rpc not supported for learner"): a voter counts.
        if leases is not None and not result.status.is_learner:
            leases.claim_and_count(member.scrape_url, gateway)
    return result


def _lease_count(url: str, gateway: ClusterGateway) -> int | None:
    try:
        return gateway.client_for(url, timeout=LEASE_TIMEOUT).lease_count()
    except EtcdError as exc:
        logger.info("lease count failed: %s", exc.message)
        return None


def _integral(value: float):
    """Exact integers in the latest JSON (revisions, raft index and byte counters)."""
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


def _store_success(
    result: MemberResult, *, ts: int, lease_count: int | None, writes: list | None = None
) -> dict:
    member = result.member
    extra = {}
    status = result.status
    if status is not None:
        extra = {"raft_term": float(status.raft_term), "raft_index": float(status.raft_index)}
        if status.db_size_quota is not None:
            # etcd 3.6+ reports the quota in force in Status: it wins over the metric.
            extra["etcd_server_quota_backend_bytes"] = float(status.db_size_quota)
    if lease_count is not None:
        extra["etcd_lease_count"] = float(lease_count)
    samples = metrics.parse_metrics(
        result.text, only=metrics.SOURCE_NAMES, sparse=metrics.SPARSE_NAMES
    )
    snapshot = metrics.derive_snapshot(
        samples,
        timestamp=float(ts),
        previous=member.scrape_state or None,
        extra=extra,
        window=quantile_window_seconds(),
    )
    # /api/current also shows the since-start quantiles the window lacks; samples never do.
    latest = {**snapshot.values, **snapshot.fallback}
    now = datetime.now(UTC)
    fields = {
        "collector_up": True,
        "last_seen": now,
        "last_scrape_at": now,
        "last_scrape_error": "",
        "latest_ts": ts,
        "latest": {k: _integral(v) for k, v in latest.items()},
        "grpc_methods": snapshot.grpc_methods,
        "quantile_basis": snapshot.basis,
        "scrape_state": snapshot.state,
        "unexported_metrics": metrics.unexported_sources(samples),
        "is_leader": snapshot.values.get("etcd_server_is_leader") == 1.0,
    }
    if status is not None:
        fields["is_leader"] = status.is_leader
        fields["is_learner"] = status.is_learner
        fields["learner_since"] = member.learner_since_at(is_learner=status.is_learner, now=now)
        fields["etcd_version"] = status.version
        fields["storage_version"] = status.storage_version
    _write_or_defer(member, ts, timeseries.to_array(snapshot.values), fields, writes)
    return {"member_id": member.member_id, "name": member.name, "up": True, "keys": len(fields)}


def _store_failure(result: MemberResult, *, ts: int, writes: list | None = None) -> dict:
    member = result.member
    latest = dict(member.latest or {})
    latest["collector_up"] = 0
    fields = {
        "collector_up": False,
        # A member we cannot reach is not shown as leader: a new one has likely been elected.
        "is_leader": False,
        "last_scrape_at": datetime.now(UTC),
        "last_scrape_error": result.error[:2000],
        "latest": latest,
        # The next success starts afresh: a rate or interval quantile spanning the outage
        # would draw a line across it.
        "scrape_state": {},
    }
    _write_or_defer(member, ts, timeseries.to_array({"collector_up": 0.0}), fields, writes)
    return {"member_id": member.member_id, "name": member.name, "up": False, "error": result.error}


@dataclass(frozen=True)
class _CycleWrite:
    """One member's cycle, ready to be written with others (`_write_cycles`)."""

    member: Member
    ts: int
    array: list
    fields: dict


def _write_or_defer(member: Member, ts: int, array: list, fields: dict, writes) -> None:
    if writes is None:
        _write_cycle(member, ts, array, fields)
    else:
        writes.append(_CycleWrite(member, ts, array, fields))


def _write_cycles(writes: list[_CycleWrite]) -> dict[int, Exception]:
    """Write many members' cycles (PostgreSQL): one statement per kind of cycle (the same
    fields), each inserting every sample row and updating every member row, instead of one
    statement per member. If a statement fails, its members are written one by one, so one
    bad row costs only its own cluster's cycle. Returns {member pk: error} of those that
    could not be written."""
    groups: dict[tuple[str, ...], list[_CycleWrite]] = {}
    for write in writes:
        groups.setdefault(tuple(write.fields), []).append(write)
    failed = {}
    for names, group in groups.items():
        try:
            with _own_scope():
                _write_cycles_group(names, group)
        except Exception:
            logger.exception("writing %d members' cycles at once failed; one by one", len(group))
            for write in group:
                try:
                    with _own_scope():
                        _write_cycle(write.member, write.ts, write.array, write.fields)
                except Exception as exc:
                    logger.exception("storing member %s failed", write.member.pk)
                    failed[write.member.pk] = exc
            continue
        for write in group:
            for name, value in write.fields.items():
                setattr(write.member, name, value)
    return failed


def _own_scope():
    """A savepoint when a transaction is open (a failed statement would abort the rest of it),
    else nothing: outside transactions each statement commits by itself, and a BEGIN/COMMIT
    pair would cost two more round trips."""
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()


def _write_cycles_group(names: tuple[str, ...], group: list[_CycleWrite]) -> None:
    sql, json_fields = _cycle_writes_sql(names)
    # Resolved once: `connection` is a proxy whose every attribute costs a thread-local lookup,
    # and a field's preparation reads it several times per value.
    db = connections[DEFAULT_DB_ALIAS]
    fields = [
        (index, name, None if as_json else Member._meta.get_field(name).get_db_prep_save)
        for index, (name, as_json) in enumerate(zip(names, json_fields, strict=True), start=3)
    ]
    columns: list[list] = [[], [], []] + [[] for _ in names]
    for write in group:
        columns[0].append(write.member.pk)
        columns[1].append(write.ts)
        columns[2].append(ValuesArrayField.postgres_literal(write.array))
        for index, name, prepare in fields:
            value = write.fields[name]
            if prepare is None:
                value = None if value is None else jsontext.dumps(value)
            else:
                value = prepare(value, db)
            columns[index].append(value)
    # Arrays as text literals: psycopg dumps a list element by element in Python.
    with rawsql.bound_cursor() as cursor:
        cursor.execute(sql, [rawsql.array_literal(column) for column in columns])


@functools.lru_cache(maxsize=16)
def _cycle_writes_sql(names: tuple[str, ...]) -> tuple[str, tuple[bool, ...]]:
    """The statement writing many members' cycles with `names` (PostgreSQL), and which of
    those fields are JSON (sent as their JSON text)."""
    model_fields = [Member._meta.get_field(name) for name in names]
    aliases = [f"f{index}" for index in range(len(names))]
    types = ", ".join(
        ["%s::bigint[]", "%s::bigint[]", "%s::text[]"]
        + [f"%s::{model_field.db_type(connection)}[]" for model_field in model_fields]
    )
    sets = ", ".join(
        f"{connection.ops.quote_name(model_field.column)} = v.{alias}"
        for model_field, alias in zip(model_fields, aliases, strict=True)
    )
    member, sample = rawsql.table(Member), rawsql.table(Sample)
    # Column names and types come from our model, never from input; values are parameters.
    sql = (
        f"WITH v AS (SELECT * FROM unnest({types}) "  # noqa: S608
        f"AS v(id, ts, vals, {', '.join(aliases)})), "
        f"inserted AS (INSERT INTO {sample} (member_id, ts, vals) "
        "SELECT v.id, v.ts, v.vals::real[] FROM v ON CONFLICT DO NOTHING RETURNING member_id) "
        f"UPDATE {member} AS t SET sample_count = t.sample_count + "
        f"(SELECT count(*) FROM inserted WHERE inserted.member_id = t.id), {sets} "
        "FROM v WHERE t.id = v.id"
    )
    return sql, tuple(isinstance(model_field, JSONField) for model_field in model_fields)


def _write_cycle(member: Member, ts: int, array: list, fields: dict) -> None:
    """One member's cycle, atomically: its sample row and its latest state.

    On PostgreSQL one statement (a CTE inserting the sample and updating the member), so one
    round trip per member per cycle; elsewhere a transaction of the same two writes.
    """
    if connection.vendor == "postgresql":
        _write_cycle_one_statement(member, ts, array, fields)
    else:
        with transaction.atomic():
            created = Sample.objects.bulk_create(
                [Sample(member_id=member.pk, ts=ts, vals=array)], ignore_conflicts=True
            )
            Member.objects.filter(pk=member.pk).update(
                sample_count=F("sample_count") + len(created), **fields
            )
    for name, value in fields.items():
        setattr(member, name, value)


def _write_cycle_one_statement(member: Member, ts: int, array: list, fields: dict) -> None:
    columns, params = [], []
    for name, value in fields.items():
        model_field = Member._meta.get_field(name)
        columns.append(f"{connection.ops.quote_name(model_field.column)} = %s")
        params.append(model_field.get_db_prep_save(value, connection))
    vals = ValuesArrayField.postgres_literal(array)
    # Column names come from our model, never from input; every value is a parameter.
    sql = (
        "WITH inserted AS (INSERT INTO monitoring_sample (member_id, ts, vals) "  # noqa: S608
        "VALUES (%s, %s, %s::real[]) ON CONFLICT DO NOTHING RETURNING 1) "
        "UPDATE monitoring_member SET sample_count = sample_count + "
        f"(SELECT count(*) FROM inserted), {', '.join(columns)} WHERE id = %s"
    )
    with rawsql.bound_cursor() as cursor:
        cursor.execute(sql, [member.pk, ts, vals, *params, member.pk])


_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _scrape_pool() -> ThreadPoolExecutor:
    """One scrape pool per process, made after any fork (a Celery prefork child builds its own).

    Reused across cycles: starting a thread per member on every cycle cost measurable CPU.
    """
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), named_pool(32, "collect"))
        return _pool[1]


def collect_cluster(
    *,
    cluster: MonitoredCluster | None = None,
    gateway: ClusterGateway | None = None,
    unreachable: str = "",
    claim: Claim | None = None,
) -> CycleReport:
    """One collection cycle of a cluster: discover, scrape all members concurrently, store.

    `cluster` and `gateway` default to the settings' cluster; `unreachable` says why a
    record's cluster has no gateway (its credentials no longer decrypt, its endpoint is no
    longer allowed): every member is then stored down with that reason.

    Each member is scraped (/metrics, then Status) in its own thread with timeouts, and stored
    as soon as it answers, so a failed or hung member neither delays nor fails the others; it
    gets collector_up=0 and its error. Lease count is one call per cycle. Overlapping runs for
    one cluster are prevented by a database lease; a run that finds it taken is skipped.
    `claim` is the lease and members a round took ahead (cluster_locks_claim).
    """
    started = time.monotonic()
    cluster = cluster or cluster_ensure()
    if gateway is None and not unreachable:
        gateway = cluster_gateway()
    ts = int(time.time())
    report = CycleReport(ts=ts)
    token = claim.token if claim is not None else cluster_lock_acquire(cluster=cluster)
    if token is None:
        report.skipped = True
        return report
    partitions.partitions_ready_for_collection()
    finished = {}
    try:
        if unreachable:
            members = claim.members if claim is not None else selectors.members_to_scrape(cluster)
            pending = set()
            for member in members:
                result = MemberResult(member=member, error=unreachable)
                report.members.append(_store_failure(result, ts=ts))
            finished["last_error"] = unreachable[:2000]
        else:
            current = claim.members if claim is not None else None
            members = members_sync(cluster=cluster, gateway=gateway, current=current)
            leases = _LeaseCount()
            targets = metrics_targets(members, gateway.config.metrics_urls)
            path = gateway.config.metrics_path
            if len(members) == 1:
                # Nobody to wait on concurrently: scraping here saves two thread hand-offs.
                only = Future()
                only.set_result(
                    _scrape(members[0], gateway, path, targets[members[0].member_id], leases)
                )
                pending = {only}
            else:
                pending = {
                    _scrape_pool().submit(_scrape, m, gateway, path, targets[m.member_id], leases)
                    for m in members
                }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                lease_count = None if result.error else leases.get()
                report.members.append(_store(result, ts=ts, lease_count=lease_count))
        finished.update(_cycle_done(cluster, report, started))
    finally:
        cluster_lock_release(cluster=cluster, token=token, **finished)
        selectors.forget_latest_json()  # this process serves the new values at once
    report.duration_ms = (time.monotonic() - started) * 1000
    return report


def _store(
    result: MemberResult, *, ts: int, lease_count: int | None, writes: list | None = None
) -> dict:
    """Store one member's scrape, up or down; its entry in the cycle's report. With `writes`,
    the member's write is added there for the caller to make with others (`_write_cycles`)."""
    if result.error:
        return _store_failure(result, ts=ts, writes=writes)
    return _store_success(result, ts=ts, lease_count=lease_count, writes=writes)


def _cycle_done(cluster: MonitoredCluster, report: CycleReport, started: float) -> dict:
    """Roll up what the cycle closed; the cluster fields its lease's release saves."""
    rollups_refresh(cluster=cluster)
    now = datetime.now(UTC)
    finished = {
        "last_cycle_at": now,
        "last_cycle_ms": round((time.monotonic() - started) * 1000, 1),
    }
    if any(entry["up"] for entry in report.members):
        finished["last_reached_at"] = now
    return finished


# --- rollups and retention ------------------------------------------------------------------------


def rollups_refresh(*, cluster: MonitoredCluster, now: float | None = None) -> dict[str, int]:
    """Average every closed bucket of each rollup tier in the database (one INSERT…SELECT each).

    A bucket is closed once wall-clock time passed its end; the cycle that writes its last
    samples runs before this under the same lock, so no late row can miss it.
    """
    now = now if now is not None else time.time()
    state = dict(cluster.rollup_state)
    written = {}
    due = {
        tier: (int(state.get(str(tier), 0)), int(now) // tier * tier)
        for tier in timeseries.ROLLUP_TIERS
    }
    due = {tier: span for tier, span in due.items() if span[1] > span[0]}
    slots = timeseries.max_slot() if due else 0
    if not slots:
        return written
    sql = _rollup_sql(connection.vendor, slots)
    for tier, (start, end) in due.items():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [tier, tier, tier, cluster.pk, start, end, tier])
            written[str(tier)] = cursor.rowcount
            state[str(tier)] = end
            MonitoredCluster.objects.filter(pk=cluster.pk).update(rollup_state=state)
    cluster.rollup_state = state
    return written


@functools.lru_cache(maxsize=8)
def _rollup_sql(vendor: str, slots: int) -> str:
    """The rollup INSERT…SELECT averaging `slots` slots, built once per slot count: at a tier
    boundary every cluster of a fleet refreshes at once, and building the ~100 averages
    each time was a visible share of a collection round. (`vendor` keys the cache: the
    expressions differ between PostgreSQL and SQLite.)"""
    averages = [f"avg({timeseries.slot_expr(slot, 's.vals')})" for slot in range(1, slots + 1)]
    # Only slot numbers from our registry are interpolated; values are parameters.
    return (
        "INSERT INTO monitoring_samplerollup (member_id, tier, bucket, vals) "  # noqa: S608
        f"SELECT s.member_id, %s, (s.ts / %s) * %s, {timeseries.array_of(averages)} "
        "FROM monitoring_sample s JOIN monitoring_member m ON m.id = s.member_id "
        "WHERE m.cluster_id = %s AND s.ts >= %s AND s.ts < %s "
        "GROUP BY s.member_id, (s.ts / %s) ON CONFLICT DO NOTHING"
    )


def metrics_purge(*, days: int | None = None, now: float | None = None) -> int:
    """Delete samples and rollups older than RETENTION_DAYS; returns the sample rows removed.

    On PostgreSQL the sample table is partitioned by day (monitoring.partitions): first the
    partitions for today and the days ahead are made and the default partition's keepable rows
    moved into theirs (its older rows deleted), then every day partition older than the cutoff
    is dropped whole. What is left before the cutoff (the day straddling it; on SQLite
    everything) goes by the batched delete. `Member.sample_count` follows every removal.
    """
    days = settings.RETENTION_DAYS if days is None else days
    now = now if now is not None else time.time()
    cutoff = int(now - days * 86400)
    deleted = 0
    if partitions.is_partitioned():
        partitions.partitions_ensure_ahead(now=now)
        partitions.default_partition_settle(cutoff=cutoff)
        deleted += partitions.default_partition_trim(cutoff=cutoff)
        deleted += partitions.partitions_drop_expired(cutoff=cutoff)
    return deleted + _samples_delete_batched(cutoff=cutoff)


def _samples_delete_batched(*, cutoff: int) -> int:
    """Delete samples (an hour of one member per statement) and rollups older than cutoff.

    Many short statements (each its own transaction, using the (member, ts) key) instead of one
    long delete: readers and the collector never wait behind a big lock.
    """
    deleted = 0
    for member in Member.objects.all():
        oldest = (
            Sample.objects.filter(member_id=member.pk).order_by("ts").values_list("ts", flat=True)
        ).first()
        while oldest is not None and oldest < cutoff:
            upper = min(cutoff, oldest + RETENTION_BATCH_SECONDS)
            count, _ = Sample.objects.filter(member_id=member.pk, ts__lt=upper).delete()
            if count:
                Member.objects.filter(pk=member.pk).update(sample_count=F("sample_count") - count)
            deleted += count
            oldest = upper if upper < cutoff else None
        SampleRollup.objects.filter(member_id=member.pk, bucket__lt=cutoff).delete()
    return deleted


# --- the health probe -----------------------------------------------------------------------------


@dataclass
class HealthReport:
    """Outcome of `health_probe`: the cluster verdict and each member's health."""

    health: str
    members: dict[str, str] = field(default_factory=dict)
    duration_ms: float = 0.0


_probe_pool: tuple[int, ThreadPoolExecutor] | None = None


def _health_pool() -> ThreadPoolExecutor:
    """The probe's own pool (per process, rebuilt after fork): a slow scrape never delays it."""
    global _probe_pool
    with _pool_lock:
        if _probe_pool is None or _probe_pool[0] != os.getpid():
            _probe_pool = (
                os.getpid(),
                # A fleet round asks every member at once; a hung one holds a thread for
                # PROBE_TIMEOUT, so the pool is wide enough for several hung clusters.
                named_pool(32, "probe"),
            )
        return _probe_pool[1]


def _probe_member(member: Member, gateway: ClusterGateway | None, unreachable: str) -> health.Probe:
    if unreachable:
        return health.Probe(member.member_id, member.is_learner, error=unreachable)
    if not member.scrape_url:
        return health.Probe(member.member_id, member.is_learner, error="member has not started")
    return _probe_answer(
        member, lambda: gateway.client_for(member.scrape_url, timeout=health.PROBE_TIMEOUT).status()
    )


def _probe_answer(member: Member, status_call) -> health.Probe:
    try:
        status = status_call()
    except EtcdError as exc:
        return health.Probe(member.member_id, member.is_learner, error=exc.message)
    # The member's own answer is newer than the stored list (synced every 60 s): a learner
    # promoted since then counts towards the quorum from this round on.
    return health.Probe(member.member_id, status.is_learner, status=status)


_transfers_lock = threading.Lock()
_round_transfers_kept: dict[tuple[int, str], tuple[threading.Lock, Transfers | None]] = {}


@contextlib.contextmanager
def _round_transfers(kind: str):
    """This process's `Transfers` for rounds of `kind` (its connections kept between rounds),
    or a fresh one while another round of that kind holds it."""
    key = (os.getpid(), kind)  # a forked child starts with its own lock and connections
    with _transfers_lock:
        lock, kept = _round_transfers_kept.setdefault(key, (threading.Lock(), None))
    if not lock.acquire(blocking=False):
        spare = Transfers()
        try:
            yield spare
        finally:
            spare.close()
        return
    try:
        if kept is None:
            kept = Transfers()
        yield kept
    finally:
        if kept is not None and len(kept):
            # A round that ended early (an error) leaves calls nobody will hear: drop them.
            kept.close()
            kept = None
        with _transfers_lock:
            _round_transfers_kept[key] = (lock, kept)
        lock.release()


class _Round:
    """The calls of one round in flight, all continued on the round's own thread: started on
    its `Transfers` (whose callbacks run there), or, where a call may wait first (a token to
    fetch, grpcio for a peer that is no gRPC server over libcurl), made on the probe pool with
    the continuation handed back. So no state of the round is touched by two threads."""

    def __init__(self, transfers: Transfers):
        self.transfers = transfers
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._away = 0

    def away(self, call, then) -> None:
        """Run `call()` on the probe pool; `then(answer)` on the round's thread, `answer()`
        returning what `call` returned or raising what it raised."""
        self._away += 1

        def run() -> None:
            try:
                value = call()
            except Exception as exc:  # noqa: BLE001 - raised again on the round's thread
                self._inbox.put((then, None, exc))
            else:
                self._inbox.put((then, value, None))

        _health_pool().submit(run)

    def settle(self, client: EtcdClient, outcome, settled, then) -> None:
        """`then(answer)` with `answer()` giving `settled(outcome)` (a started call's answer, or
        its EtcdError raised): here, or through `away` when settling makes a call of its own."""
        if client.settling_calls(outcome):
            self.away(functools.partial(settled, outcome), then)
        else:
            then(functools.partial(settled, outcome))

    def drive(self, until: float, *, finished) -> None:
        """Run the round's calls until `finished()` or the monotonic time `until`."""
        while not finished():
            now = time.monotonic()
            if now >= until:
                return
            if len(self.transfers):
                # With calls on the pool too, look at the inbox every slice.
                end = min(until, now + WAVE_GATHER_SECONDS) if self._away else until
                self.transfers.run(end, early=True)
            elif self._away:
                try:
                    self._deliver(self._inbox.get(timeout=until - now))
                except queue.Empty:
                    return
            else:
                return  # nothing in flight: `finished` will never change
            while True:
                try:
                    self._deliver(self._inbox.get_nowait())
                except queue.Empty:
                    break

    def check_going(self) -> None:
        """Raise when nothing is in flight: a call whose end nobody will hear (a bug), which
        would otherwise leave the round waiting for ever."""
        if not len(self.transfers) and not self._away:
            raise RuntimeError("a round's call ended unheard")

    def _deliver(self, item) -> None:
        then, value, error = item
        self._away -= 1

        def answer():
            if error is not None:
                raise error
            return value

        then(answer)


def _probe_start(
    round_: _Round, member: Member, gateway: ClusterGateway | None, unreachable: str
) -> Future:
    """One member's probe in `round_`, its Probe the future's result."""
    future = Future()

    def then(answer) -> None:
        try:
            future.set_result(answer())
        except Exception as exc:  # noqa: BLE001 - the round reports it
            future.set_exception(exc)

    client = None
    if not unreachable and member.scrape_url:
        try:
            client = gateway.client_for(member.scrape_url, timeout=health.PROBE_TIMEOUT)
        except EtcdError:
            client = None  # _probe_member tells the error
    if client is None or not client.can_start():
        round_.away(functools.partial(_probe_member, member, gateway, unreachable), then)
        return future

    def ended(outcome) -> None:
        def settled(outcome):
            return _probe_answer(
                member, lambda: client.status_settled(outcome, timeout=health.PROBE_TIMEOUT)
            )

        round_.settle(client, outcome, settled, then)

    client.start_status(round_.transfers, done=ended, timeout=health.PROBE_TIMEOUT)
    return future


def _probe_alarms(probes: list[health.Probe], previous: list) -> list:
    """Active alarms as the round's answers tell them (Status carries them): the leader's
    list, else the first answering member's; the last known list when nobody answered
    (alarms stay until disarmed, so it is the best evidence there is)."""
    up = [probe for probe in probes if probe.up]
    if not up:
        return list(previous)
    reporter = next((probe for probe in up if probe.status.is_leader), up[0])
    return [{"member_id": str(mid), "alarm": name} for mid, name in reporter.status.alarms]


@dataclass
class _Verdict:
    """One cluster's probe round, ready to store: its summary and each member's fields."""

    cluster: MonitoredCluster
    summary: dict
    updates: list[tuple[int, dict]]
    report: HealthReport


def _verdict(
    cluster: MonitoredCluster,
    members: list[Member],
    quotas: list[int],
    probes: list[health.Probe],
    *,
    started_at: datetime,
    unreachable: str,
) -> _Verdict:
    previous_alarms = (cluster.health_summary or {}).get("alarms", [])
    alarms = previous_alarms if unreachable else _probe_alarms(probes, previous_alarms)
    summary = health.summarise(probes, alarms=alarms, quotas=quotas)
    leader = summary["leader_id"]
    updates = []
    for member, probe in zip(members, probes, strict=True):
        fields = {
            "health": MemberHealth.UP if probe.up else MemberHealth.DOWN,
            "probed_at": started_at,
            "probe_error": probe.error[:2000],
            "is_leader": probe.up and probe.member_id == leader,
        }
        if probe.up:
            fields["last_seen"] = datetime.now(UTC)
            fields["etcd_version"] = probe.status.version
            fields["is_learner"] = probe.is_learner
            fields["learner_since"] = member.learner_since_at(
                is_learner=probe.is_learner, now=started_at
            )
        updates.append((member.pk, fields))
    report = HealthReport(
        health=summary["health"], members={p.member_id: "up" if p.up else "down" for p in probes}
    )
    return _Verdict(cluster, summary, updates, report)


def health_probe(
    *,
    cluster: MonitoredCluster | None = None,
    gateway: ClusterGateway | None = None,
    unreachable: str = "",
    known: selectors.ProbeMembers | None = None,
) -> HealthReport:
    """One health round: Status of every member concurrently (short timeout), then the verdict.

    `cluster` and `gateway` default to the settings' cluster; with `unreachable` (a record's
    cluster without a usable gateway) every member is down for that reason. `known` are the
    cluster's members as a fleet round read them ahead.

    Stores each member's health (up/down, last_seen, error, leader, etcd version) and the
    cluster summary (monitoring.health) in the database, so every process serves the same.
    Writes are conditional on the round being newer than what is stored: an overlapping older
    round (beat backlog, a second scheduler) never overwrites a newer one.
    """
    started_at = datetime.now(UTC)
    started = time.monotonic()
    cluster = cluster or cluster_ensure()
    if gateway is None and not unreachable:
        gateway = cluster_gateway()
    known = known or selectors.members_for_probe(cluster)
    members, quotas = known.members, known.quotas
    if not members and not unreachable:
        members = [m for m in members_sync(cluster=cluster, gateway=gateway) if m.in_cluster]
        quotas = selectors.members_for_probe(cluster).quotas
    with _round_transfers("probe") as transfers:
        round_ = _Round(transfers)
        futures = [_probe_start(round_, member, gateway, unreachable) for member in members]
        while not all(future.done() for future in futures):
            round_.check_going()
            round_.drive(
                time.monotonic() + ROUND_SLICE_SECONDS,
                finished=lambda: all(future.done() for future in futures),
            )
    probes = [future.result() for future in futures]
    verdict = _verdict(
        cluster, members, quotas, probes, started_at=started_at, unreachable=unreachable
    )
    _health_write_round([verdict], started_at)
    selectors.forget_latest_json()  # /api/current's `stale` follows the member's health
    verdict.report.duration_ms = (time.monotonic() - started) * 1000
    return verdict.report


def _health_write(
    cluster: MonitoredCluster, started_at: datetime, updates: list[tuple[int, dict]], summary: dict
) -> None:
    """Store one round's member health and cluster verdict through the ORM (SQLite), each row
    only where this round is newer than what is stored; PostgreSQL: `_health_write_round`."""
    newer_member = Q(probed_at__isnull=True) | Q(probed_at__lt=started_at)
    for pk, fields in updates:
        Member.objects.filter(pk=pk).filter(newer_member).update(**fields)
    MonitoredCluster.objects.filter(pk=cluster.pk).filter(
        Q(health_at__isnull=True) | Q(health_at__lt=started_at)
    ).update(health=summary["health"], health_at=started_at, health_summary=summary)


def _health_write_round(verdicts: list[_Verdict], started_at: datetime) -> None:
    """Store a fleet round's verdicts. On PostgreSQL two statements for the whole round (one
    for every member, one for every cluster) instead of one per row: rows another transaction
    holds (members_sync's) are skipped rather than waited for, so these statements never take
    part in a deadlock, and the next round writes a skipped row (health_max_age spans three
    rounds). `health_probe` stores its one cluster here too. Elsewhere (SQLite) row by row
    through the ORM (`_health_write`)."""
    if not verdicts:
        return
    if connection.vendor != "postgresql":
        for verdict in verdicts:
            _health_write(verdict.cluster, started_at, verdict.updates, verdict.summary)
        return
    columns: list[list] = [[] for _ in range(9)]
    for verdict in verdicts:
        for pk, fields in verdict.updates:
            answered = "last_seen" in fields  # only an answer tells these; else they stay
            values = (
                pk,
                str(fields["health"]),
                fields["probe_error"],
                fields["is_leader"],
                answered,
                fields.get("last_seen"),
                fields.get("etcd_version"),
                fields.get("is_learner", False),
                fields.get("learner_since"),
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
    # Arrays as text literals: psycopg dumps a list element by element in Python.
    arrays = [rawsql.array_literal(column) for column in columns]
    cluster_ids = rawsql.array_literal([verdict.cluster.pk for verdict in verdicts])
    member_sql, cluster_sql = _health_round_sql()
    with rawsql.bound_cursor() as cursor:
        if columns[0]:
            cursor.execute(member_sql, [arrays[0], started_at, *arrays, started_at])
        cursor.execute(
            cluster_sql,
            [
                cluster_ids,
                started_at,
                cluster_ids,
                rawsql.array_literal([str(verdict.summary["health"]) for verdict in verdicts]),
                rawsql.array_literal([jsontext.dumps(verdict.summary) for verdict in verdicts]),
                started_at,
            ],
        )


@functools.cache
def _health_round_sql() -> tuple[str, str]:
    m = functools.partial(rawsql.column, Member)
    c = functools.partial(rawsql.column, MonitoredCluster)
    members, clusters = rawsql.table(Member), rawsql.table(MonitoredCluster)
    answered = ", ".join(
        f"{m(name)} = CASE WHEN v.answered THEN v.{alias} ELSE t.{m(name)} END"
        for name, alias in (
            ("last_seen", "seen"),
            ("etcd_version", "version"),
            ("is_learner", "learner"),
            ("learner_since", "since"),
        )
    )
    member = (
        f"WITH free AS (SELECT id FROM {members} WHERE id = ANY(%s::bigint[]) "  # noqa: S608
        "FOR UPDATE SKIP LOCKED) "
        f"UPDATE {members} AS t SET {m('health')} = v.health, {m('probe_error')} = v.error, "
        f"{m('is_leader')} = v.leader, {m('probed_at')} = %s, {answered} "
        "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::boolean[], %s::boolean[], "
        "%s::timestamptz[], %s::text[], %s::boolean[], %s::timestamptz[]) "
        "AS v(id, health, error, leader, answered, seen, version, learner, since), free "
        f"WHERE t.id = v.id AND free.id = t.id "
        f"AND (t.{m('probed_at')} IS NULL OR t.{m('probed_at')} < %s)"
    )
    cluster = (
        f"WITH free AS (SELECT id FROM {clusters} WHERE id = ANY(%s::bigint[]) "  # noqa: S608
        "FOR UPDATE SKIP LOCKED) "
        f"UPDATE {clusters} AS t SET {c('health')} = v.health, {c('health_at')} = %s, "
        f"{c('health_summary')} = v.summary::jsonb "
        "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(id, health, summary), free "
        f"WHERE t.id = v.id AND free.id = t.id "
        f"AND (t.{c('health_at')} IS NULL OR t.{c('health_at')} < %s)"
    )
    return member, cluster


# --- one task per monitored cluster --------------------------------------------------------------


@dataclass(frozen=True)
class ClusterTarget:
    """A monitored cluster record's row and gateway, or why it has no gateway (`unreachable`)."""

    cluster: MonitoredCluster
    gateway: ClusterGateway | None
    unreachable: str = ""


_READ = object()  # cluster_target: read the record (no round read it ahead)


def cluster_target(
    *, cluster_id: str, row: MonitoredCluster | None = None, record=_READ
) -> ClusterTarget | None:
    """What collecting the cluster record `cluster_id` needs; None when the record is gone or
    no longer monitored. The default cluster is the settings' (its gateway, its endpoints).

    A record's gateway is built from the record (its password decrypted, its endpoints checked
    against the egress rules and pinned): when that fails the cluster is unreachable for that
    reason, and its row is still made so the fleet shows it. `record` is the monitored record
    (or None: not monitored) when a fleet round read it ahead.
    """
    if cluster_id == DEFAULT_CLUSTER:
        return ClusterTarget(cluster_ensure(row=row), cluster_gateway())
    if record is _READ:
        record = monitored_record(cluster_id)
    if record is None:
        return None
    try:
        gateway = record_gateway(record)
    except (TabKeyMissing, TabDecryptFailed) as exc:
        reason = f"the cluster's stored credentials are unusable: {exc}"
    except DomainError as exc:
        reason = exc.message
    except EtcdError as exc:
        reason = exc.message
    else:
        row = cluster_ensure(name=record.pk, endpoints=gateway.config.endpoints, row=row)
        return ClusterTarget(row, gateway)
    row = cluster_ensure(name=record.pk, endpoints=record.endpoints, row=row)
    return ClusterTarget(row, None, reason)


def collect_cluster_id(
    *,
    cluster_id: str,
    row: MonitoredCluster | None = None,
    record=_READ,
    claim: Claim | None = None,
) -> CycleReport | None:
    """One collection cycle of the monitored cluster record `cluster_id` (None: not monitored);
    `row`, `record` and `claim` are its row, record and lease when a round took them ahead."""
    try:
        target = cluster_target(cluster_id=cluster_id, row=row, record=record)
    except Exception:
        if claim is not None:  # never keep a lease nobody will use (it lasts LOCK_SECONDS)
            cluster_lock_release(cluster=row, token=claim.token)
        raise
    if target is None:
        if claim is not None:
            cluster_lock_release(cluster=row, token=claim.token)
        return None
    return collect_cluster(
        cluster=target.cluster,
        gateway=target.gateway,
        unreachable=target.unreachable,
        claim=claim,
    )


def health_probe_id(
    *,
    cluster_id: str,
    row: MonitoredCluster | None = None,
    known: selectors.ProbeMembers | None = None,
) -> HealthReport | None:
    """One health round of the monitored cluster record `cluster_id` (None: not monitored);
    `row` and `known` are its row and members when a fleet round read them ahead."""
    target = cluster_target(cluster_id=cluster_id, row=row)
    if target is None:
        return None
    if target.cluster is not row:
        known = None  # the row was made or changed here: read its members afresh
    return health_probe(
        cluster=target.cluster,
        gateway=target.gateway,
        unreachable=target.unreachable,
        known=known,
    )


_cluster_pool: tuple[int, ThreadPoolExecutor] | None = None


def _cluster_executor() -> ThreadPoolExecutor:
    """The one pool (per process, made after any fork) that every FleetRunner submits to.

    One pool, not one per job: each of its threads keeps a database connection between rounds
    (in a Celery worker), and a pool per job per worker process multiplied them past
    PostgreSQL's default max_connections (100) in bench/fleet.py.
    """
    global _cluster_pool
    with _pool_lock:
        if _cluster_pool is None or _cluster_pool[0] != os.getpid():
            workers = max(1, settings.MONITOR_CLUSTER_WORKERS)
            _cluster_pool = (os.getpid(), named_pool(workers, "cluster"))
        return _cluster_pool[1]


class FleetRunner:
    """Runs one periodic job's per-cluster work concurrently on the process's bounded pool.

    `start` returns at once: a slow or dead cluster holds only its own worker, never the job's
    next round for the others. A cluster whose previous run of this job is still going is not
    started again (the database lease would skip it anyway; this saves the worker).
    """

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._running: dict[str, Future] = {}

    def _executor(self) -> ThreadPoolExecutor:
        if self._pid != os.getpid():
            self._pid, self._running = os.getpid(), {}
        return _cluster_executor()

    def idle(self, cluster_ids: list[str]) -> list[str]:
        """The ids of `cluster_ids` with no run of this job still going in this process."""
        with self._lock:
            self._executor()
            return [c for c in cluster_ids if c not in self._running or self._running[c].done()]

    def start(self, work, cluster_ids: list[str]) -> dict[str, Future]:
        """Submit `work(cluster_id=…)` for every id not still running; returns the new runs."""
        started = {}
        with self._lock:
            pool = self._executor()
            for cluster_id in cluster_ids:
                previous = self._running.get(cluster_id)
                if previous is not None and not previous.done():
                    continue
                started[cluster_id] = self._running[cluster_id] = pool.submit(
                    _in_own_connection, work, cluster_id
                )
            for cluster_id in [c for c, f in self._running.items() if f.done()]:
                if cluster_id not in started:
                    del self._running[cluster_id]
        return started

    def start_round(self, work, cluster_ids: list[str]) -> dict[str, Future]:
        """Submit one `work(runs={cluster_id: Future})` for every id not still running: one
        pool job for the whole round, which settles each cluster's future as it is done."""
        with self._lock:
            pool = self._executor()
            runs = {}
            for cluster_id in cluster_ids:
                previous = self._running.get(cluster_id)
                if previous is not None and not previous.done():
                    continue
                runs[cluster_id] = self._running[cluster_id] = Future()
            for cluster_id in [c for c, f in self._running.items() if f.done()]:
                if cluster_id not in runs:
                    del self._running[cluster_id]
            if runs:
                pool.submit(_round_in_own_connection, work, runs)
        return dict(runs)

    def close_connections(self, timeout: float = 30) -> None:
        """Close the database connection of every pool thread (a worker keeps them between
        rounds): one job per thread, all held at a barrier so no thread runs two."""
        with self._lock:
            pool = self._executor()
            workers = pool._max_workers
        barrier = threading.Barrier(workers, timeout=timeout)

        def close() -> None:
            barrier.wait()
            connections.close_all()

        for future in [pool.submit(close) for _ in range(workers)]:
            future.result(timeout=timeout)


def _in_own_connection(work, cluster_id: str):
    try:
        return work(cluster_id=cluster_id)
    except Exception:
        logger.exception("monitoring of cluster %s failed", cluster_id)
        raise
    finally:
        _pool_job_done()


def _pool_job_done() -> None:
    """What a pool thread does with its database connection after each job."""
    if settings.EMBEDDED_MODE:
        # A pool thread's connection would outlive the job (and block dropping a database).
        connections.close_all()
    else:
        # A Celery worker's pool threads live as long as the worker: reconnecting for every
        # cluster every round would cost more than the probe; CONN_MAX_AGE still applies.
        close_old_connections()


def _round_in_own_connection(work, runs: dict[str, Future]) -> None:
    handed_off: set[str] = set()  # clusters the round passed to a pool thread of their own
    try:
        work(runs=runs, handed_off=handed_off)
    except Exception as exc:
        logger.exception("monitoring round of %d clusters failed", len(runs))
        for cluster_id, run in runs.items():
            if cluster_id not in handed_off:
                _resolve(run, error=exc)
    finally:
        for cluster_id, run in runs.items():
            if cluster_id not in handed_off:
                _resolve(run)  # a bug left it open: never leave the cluster "running"
        _pool_job_done()


def _resolve(run: Future, result=None, *, error: Exception | None = None) -> None:
    """Settle `run` unless it is settled already."""
    if run.done():
        return
    if error is not None:
        run.set_exception(error)
    else:
        run.set_result(result)


def _settle_in_own_connection(run: Future, work) -> None:
    """Run one cluster's part of a round into its future, on a pool thread of its own."""
    try:
        _resolve(run, work())
    except Exception as exc:
        logger.exception("monitoring of a cluster failed")
        _resolve(run, error=exc)
    finally:
        _pool_job_done()


_collect_runner = FleetRunner("collect-cluster")
_probe_runner = FleetRunner("probe-cluster")
_later_rounds = LaterCalls("later-rounds")


def collect_fleet(*, cluster_ids: list[str] | None = None) -> dict[str, Future]:
    """Start a collection cycle of every monitored cluster (or of `cluster_ids`) on this
    process's pool, as one round (`_collect_round`); returns each cluster's run (its
    CycleReport, None: not monitored), without waiting. A cluster whose previous cycle in this
    process is still going is left out."""
    ids = monitored_cluster_ids() if cluster_ids is None else cluster_ids
    return _collect_runner.start_round(_collect_round, ids)


def collect_fleet_spread(
    *, cluster_ids: list[str], chunk_size: int, over_seconds: float, expires_seconds: float
) -> list[list[str]]:
    """Collect `cluster_ids` in rounds of `chunk_size` clusters, started in this process one
    after another over `over_seconds` (the first at once); a round that could only start after
    `expires_seconds` is dropped. Returns the chunks, without waiting.

    Large rounds, because a round's queries, writes and wake-ups are shared by its members:
    80 clusters in one round cost 12 % less of the workers' CPU than in rounds of 8, and
    /api/fleet's p99 stayed under its goal (docs/PERFORMANCE.md, session 19); bounded, so a
    larger fleet's load is still spread over the interval. In this process, not a Celery task
    per round: a task costs a worker ~5-7 ms of CPU before its body.
    """
    size = max(1, chunk_size)
    chunks = [cluster_ids[start : start + size] for start in range(0, len(cluster_ids), size)]
    now = time.monotonic()
    step = over_seconds / max(1, len(chunks))
    for position, chunk in enumerate(chunks):
        start = functools.partial(collect_fleet, cluster_ids=chunk)
        if position == 0:
            start()
        else:
            _later_rounds.call_at(now + position * step, start, expires=now + expires_seconds)
    return chunks


@dataclass
class _RoundCycle:
    """One cluster's collection cycle in a round: its lease, members and what they answered."""

    target: ClusterTarget
    token: str
    ts: int
    started: float
    members: list[Member]
    targets: dict[str, MetricsTarget] = field(default_factory=dict)
    results: list[MemberResult | None] = field(default_factory=list)
    discovering: bool = False
    lease_claimed: bool = False
    lease_going: bool = False
    lease_count: int | None = None
    failed: Exception | None = None

    @property
    def complete(self) -> bool:
        return (
            not self.discovering
            and not self.lease_going
            and all(result is not None for result in self.results)
        )


def _round_cycle_open(
    target: ClusterTarget, claim: Claim | None
) -> "_RoundCycle | CycleReport | None":
    """The cycle of `target` ready for a round, its report when another run holds its lease,
    or None when it takes the single-cluster path on a thread of its own: it is unreachable,
    or its calls need a token (renewed mid-cycle, a wait the round does not take)."""
    cluster, gateway = target.cluster, target.gateway
    if target.unreachable or gateway.config.has_auth:
        return None
    members = claim.members if claim is not None else selectors.members_to_scrape(cluster)
    ts, started = int(time.time()), time.monotonic()
    token = claim.token if claim is not None else cluster_lock_acquire(cluster=cluster)
    if token is None:
        return CycleReport(ts=ts, skipped=True)
    partitions.partitions_ready_for_collection()
    return _RoundCycle(target, token, ts, started, members)


def _cycle_start(round_: "_Round", cycle: _RoundCycle) -> None:
    """Start a round's cycle: its member list first when due (`members_sync`), then every
    member's scrape."""
    if _members_fresh(cycle.target.cluster, cycle.members, now=datetime.now(UTC)):
        _scrapes_start(round_, cycle, cycle.members)
    else:
        _discovery_start(round_, cycle)


def _scrapes_start(round_: "_Round", cycle: _RoundCycle, members: list[Member]) -> None:
    cycle.members = members
    cycle.targets = metrics_targets(members, cycle.target.gateway.config.metrics_urls)
    cycle.results = [None] * len(members)
    for index in range(len(members)):
        _scrape_start(round_, cycle, index)


def _discovery_start(round_: "_Round", cycle: _RoundCycle) -> None:
    """`members_sync` in a round: MemberList asked of the endpoint the gateway would ask
    first, on the round's `Transfers`; what may wait (failing over to the other endpoints,
    asking which member an endpoint is, looking up a name) runs away from the round, and the
    database is written on the round's thread. Then the members' scrapes start."""
    cluster, gateway = cycle.target.cluster, cycle.target.gateway
    current = cycle.members
    endpoint = gateway.preferred_endpoint()
    client = gateway.client_for(endpoint, timeout=STATUS_TIMEOUT)
    cycle.discovering = True

    def scrape(members: list[Member]) -> None:
        cycle.discovering = False
        _scrapes_start(round_, cycle, members)

    def wanted_known(answer) -> None:
        try:
            wanted = answer()
            members = _members_store(cluster=cluster, current=current, wanted=wanted)
        except Exception as exc:  # noqa: BLE001 - the cycle fails with it, as a thread's would
            cycle.failed, members = exc, []
        scrape(members)

    everywhere = functools.partial(gateway.members, timeout=STATUS_TIMEOUT)

    def listed_known(answer, asked: str | None = None) -> None:
        # `asked`: the one endpoint the round asked itself (else `everywhere` answered).
        try:
            listed = answer()
        except EtcdError as exc:
            if asked is not None:
                gateway.note_outcome(asked, exc)
                if isinstance(exc, EtcdUnavailable):
                    # As `gateway.call` does: nothing reached the server, the others are asked.
                    round_.away(everywhere, listed_known)
                    return
            scrape(_members_not_listed(cluster=cluster, current=current, error=exc))
            return
        except Exception as exc:  # noqa: BLE001 - as in wanted_known
            cycle.failed = exc
            scrape([])
            return
        if asked is not None:
            gateway.note_outcome(asked)
        wanted = functools.partial(
            _members_wanted, cluster=cluster, gateway=gateway, current=current, listed=listed
        )
        if _members_wanted_may_wait(cluster, listed):
            round_.away(wanted, wanted_known)
        else:
            wanted_known(wanted)

    if not client.can_start():
        round_.away(everywhere, listed_known)
        return
    settled = functools.partial(client.members_settled, timeout=STATUS_TIMEOUT)
    known = functools.partial(listed_known, asked=endpoint)
    client.start_members(
        round_.transfers,
        done=lambda outcome: round_.settle(client, outcome, settled, known),
        timeout=STATUS_TIMEOUT,
    )


def _scrape_start(round_: "_Round", cycle: _RoundCycle, index: int) -> None:
    """One member's scrape in a round, as `_scrape` makes it: /metrics, then Status, then
    (the cluster's first voter to answer) LeaseLeases; its result lands in `cycle.results`.
    A member whose calls would wait first (no gRPC over libcurl: grpcio) is scraped away."""
    member, gateway = cycle.members[index], cycle.target.gateway
    target = cycle.targets[member.member_id]
    result = MemberResult(member=member)
    if target.error or not member.scrape_url:
        result.error = target.error or "member has no client URL"
        cycle.results[index] = result
        return
    client = gateway.client_for(member.scrape_url, timeout=STATUS_TIMEOUT)

    def status_known(status) -> None:
        result.status = status
        # A learner refuses LeaseLeases ("rpc not supported for learner"): a voter counts.
        if status is not None and not status.is_learner and not cycle.lease_claimed:
            _lease_start(round_, cycle, client)
        cycle.results[index] = result

    path = gateway.config.metrics_path
    if not client.can_start():

        def scraped(answer) -> None:
            nonlocal result
            try:
                result = answer()
            except Exception as exc:  # noqa: BLE001 - the cycle fails with it
                cycle.failed = exc
                cycle.results[index] = result
                return
            status_known(result.status)

        round_.away(functools.partial(_scrape, member, gateway, path, target, None), scraped)
        return

    status_ended = _round_done(
        round_,
        cycle,
        client,
        functools.partial(client.status_settled, timeout=STATUS_TIMEOUT),
        what=f"status of {member.scrape_url}",
        then=status_known,
    )

    def fetched(outcome) -> None:
        if isinstance(outcome, Exception):  # any failure of one member only marks it down
            result.error = translate(outcome, endpoint=target.url or member.scrape_url).message
            cycle.results[index] = result
            return
        result.text = outcome
        try:
            client.start_status(round_.transfers, done=status_ended, timeout=STATUS_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the cycle fails with it, as a thread's would
            cycle.failed = exc
            cycle.results[index] = result

    scraper = gateway.scraper(timeout=SCRAPE_TIMEOUT)
    if target.url:
        scraper.start_fetch(round_.transfers, url=target.url, done=fetched)
    else:
        scraper.start_fetch(round_.transfers, endpoint=member.scrape_url, path=path, done=fetched)


def _lease_start(round_: "_Round", cycle: _RoundCycle, client: EtcdClient) -> None:
    """The cycle's one LeaseLeases, asked of a member that has just answered Status."""
    cycle.lease_claimed = cycle.lease_going = True

    def known(count) -> None:
        cycle.lease_count = count
        cycle.lease_going = False

    if not client.can_start():
        call = functools.partial(client.lease_count, timeout=LEASE_TIMEOUT)
        round_.away(call, _round_answer(cycle, what="lease count", then=known))
        return
    settled = functools.partial(client.lease_count_settled, timeout=LEASE_TIMEOUT)
    done = _round_done(round_, cycle, client, settled, what="lease count", then=known)
    client.start_lease_count(round_.transfers, done=done, timeout=LEASE_TIMEOUT)


def _round_done(round_: "_Round", cycle: _RoundCycle, client: EtcdClient, settled, *, what, then):
    """The `done` of a call a round started for `cycle`: its outcome settled (`settled`), then
    `_round_answer`'s `then`."""
    known = _round_answer(cycle, what=what, then=then)
    return lambda outcome: round_.settle(client, outcome, settled, known)


def _round_answer(cycle: _RoundCycle, *, what, then):
    """What takes a round call's answer for `cycle`: `then(value)`, or `then(None)` when the
    call failed (logged as `what` failing). Anything but an EtcdError fails the cycle, as it
    would fail a thread's."""

    def known(answer) -> None:
        value = None
        try:
            value = answer()
        except EtcdError as exc:
            logger.info("%s failed: %s", what, exc.message)
        except Exception as exc:  # noqa: BLE001 - raised again when the cycle is stored
            cycle.failed = exc
        then(value)

    return known


def _round_cycle_store(cycle: _RoundCycle) -> CycleReport:
    """Store a round's finished cycle of one cluster and give its lease back."""
    cluster = cycle.target.cluster
    report = CycleReport(ts=cycle.ts)
    finished = {}
    try:
        if cycle.failed is not None:
            raise cycle.failed
        for result in cycle.results:
            report.members.append(_store(result, ts=cycle.ts, lease_count=cycle.lease_count))
        finished = _cycle_done(cluster, report, cycle.started)
    finally:
        cluster_lock_release(cluster=cluster, token=cycle.token, **finished)
        selectors.forget_latest_json()  # this process serves the new values at once
    report.duration_ms = (time.monotonic() - cycle.started) * 1000
    return report


def _round_wave_store(wave: dict[str, _RoundCycle], runs: dict[str, Future]) -> None:
    """Store the round's finished cycles of several clusters (PostgreSQL) with one member
    write per kind of cycle and one lease release for them all (`_round_cycle_store` does
    each cluster with a statement per member and one for its lease); settle their runs.

    A cluster whose storing fails (its parse, its members' write, its rollups) gets the error
    and its lease back on its own; the others are stored."""
    writes: list[_CycleWrite] = []
    prepared = []
    for cluster_id, cycle in wave.items():
        report, mark = CycleReport(ts=cycle.ts), len(writes)
        try:
            if cycle.failed is not None:
                raise cycle.failed
            for result in cycle.results:
                report.members.append(
                    _store(result, ts=cycle.ts, lease_count=cycle.lease_count, writes=writes)
                )
        except Exception as exc:
            logger.exception("collection of cluster %s failed", cluster_id)
            del writes[mark:]
            _round_cycle_failed(cluster_id, cycle, runs, exc)
            continue
        prepared.append((cluster_id, cycle, report, {w.member.pk for w in writes[mark:]}))
    failed = _write_cycles(writes)
    finished = []
    for cluster_id, cycle, report, member_pks in prepared:
        try:
            error = next((failed[pk] for pk in member_pks if pk in failed), None)
            if error is not None:
                raise error
            done = _cycle_done(cycle.target.cluster, report, cycle.started)
        except Exception as exc:
            logger.exception("collection of cluster %s failed", cluster_id)
            _round_cycle_failed(cluster_id, cycle, runs, exc)
            continue
        finished.append((cluster_id, cycle, report, done))
    cluster_locks_release_finished(
        finished=[(cycle.target.cluster, cycle.token, done) for _, cycle, _, done in finished]
    )
    selectors.forget_latest_json()  # this process serves the new values at once
    for cluster_id, cycle, report, _ in finished:
        report.duration_ms = (time.monotonic() - cycle.started) * 1000
        runs[cluster_id].set_result(report)


def _round_cycle_failed(
    cluster_id: str, cycle: _RoundCycle, runs: dict[str, Future], error: Exception
) -> None:
    try:
        cluster_lock_release(cluster=cycle.target.cluster, token=cycle.token)
    except Exception:  # the lease lapses after LOCK_SECONDS
        logger.exception("giving back the lease of cluster %s failed", cluster_id)
    _resolve(runs[cluster_id], error=error)


def _collect_round(*, runs: dict[str, Future], handed_off: set[str] | None = None) -> None:
    """One collection cycle of many clusters on one thread: read ahead and leases taken in a
    few queries, every member's /metrics, Status and each cluster's LeaseLeases on one
    `Transfers`, each cluster stored as soon as its calls have all ended (a slow or dead
    cluster never holds back the others); a member list that is due is asked first
    (`_discovery_start`). An unreachable cluster, or one with etcd auth, takes the
    single-cluster path (`collect_cluster`) on a pool thread of its own (listed in
    `handed_off`: it settles its run itself).

    Why one thread: per member-scrape, a thread hand-off and each wake-up cost about as much
    CPU as the calls (docs/PERFORMANCE.md, "Wake-ups").
    """
    ids = list(runs)
    # Read ahead for the whole round. A row read a moment early is still good: the lease is
    # taken by a conditional UPDATE, and an early member-sync or rollup date only repeats work
    # that is idempotent.
    rows = selectors.cluster_rows(ids)
    records = monitored_records([cid for cid in ids if cid != DEFAULT_CLUSTER])
    claims = cluster_locks_claim(clusters=[rows[cid] for cid in ids if cid in rows])
    with _round_transfers("collect") as transfers:
        round_ = _Round(transfers)
        cycles: dict[str, _RoundCycle] = {}
        for cluster_id in ids:
            row, claim = rows.get(cluster_id), claims.get(cluster_id)
            try:
                target = cluster_target(
                    cluster_id=cluster_id, row=row, record=records.get(cluster_id)
                )
                cycle = None if target is None else _round_cycle_open(target, claim)
            except Exception as exc:
                logger.exception("collection of cluster %s failed", cluster_id)
                if claim is not None:  # never keep a lease nobody will use
                    cluster_lock_release(cluster=row, token=claim.token)
                runs[cluster_id].set_exception(exc)
                continue
            if target is None:
                if claim is not None:
                    cluster_lock_release(cluster=row, token=claim.token)
                runs[cluster_id].set_result(None)
            elif cycle is None:
                single = functools.partial(
                    collect_cluster,
                    cluster=target.cluster,
                    gateway=target.gateway,
                    unreachable=target.unreachable,
                    claim=claim,
                )
                if handed_off is not None:
                    handed_off.add(cluster_id)
                _cluster_executor().submit(_settle_in_own_connection, runs[cluster_id], single)
            elif isinstance(cycle, CycleReport):
                runs[cluster_id].set_result(cycle)  # skipped: another run holds the lease
            else:
                cycles[cluster_id] = cycle
                _cycle_start(round_, cycle)

        def one_complete() -> bool:
            return any(cycle.complete for cycle in cycles.values())

        def all_complete() -> bool:
            return all(cycle.complete for cycle in cycles.values())

        in_waves = connection.vendor == "postgresql"
        try:
            while cycles:
                round_.drive(time.monotonic() + ROUND_SLICE_SECONDS, finished=one_complete)
                if in_waves:
                    # Let cycles ending together share the writes.
                    round_.drive(time.monotonic() + WAVE_GATHER_SECONDS, finished=all_complete)
                complete = [cid for cid, cycle in cycles.items() if cycle.complete]
                if in_waves and complete:
                    wave = {cid: cycles.pop(cid) for cid in complete}
                    try:
                        _round_wave_store(wave, runs)
                    except Exception as exc:  # a bug: never leave a lease or a run behind
                        logger.exception("storing a wave of %d clusters failed", len(wave))
                        for cluster_id, cycle in wave.items():
                            if not runs[cluster_id].done():
                                _round_cycle_failed(cluster_id, cycle, runs, exc)
                    complete = []
                for cluster_id in complete:
                    try:
                        runs[cluster_id].set_result(_round_cycle_store(cycles.pop(cluster_id)))
                    except Exception as exc:
                        logger.exception("collection of cluster %s failed", cluster_id)
                        runs[cluster_id].set_exception(exc)
                if cycles and not complete:
                    round_.check_going()
        finally:
            for cycle in cycles.values():  # a bug ended the round: give their leases back
                cluster_lock_release(cluster=cycle.target.cluster, token=cycle.token)


def health_probe_fleet(*, cluster_ids: list[str] | None = None) -> dict[str, Future]:
    """Start a health round of every monitored cluster (or of `cluster_ids`) on this process's
    pool; returns each cluster's run (its HealthReport, None: not monitored), without waiting.
    A cluster whose previous round in this process is still going is left out."""
    ids = monitored_cluster_ids() if cluster_ids is None else cluster_ids
    return _probe_runner.start_round(_probe_round, ids)


FIRST_WAVE_SECONDS = 0.5
WAVE_GATHER_SECONDS = 0.05
ROUND_SLICE_SECONDS = 30.0  # a round looks again at least this often (calls time out sooner)


def _probe_round(*, runs: dict[str, Future], handed_off: set[str] | None = None) -> None:
    """One health round of many clusters: every read ahead in a few queries, every member's
    Status at once, the verdicts stored in two statements (PostgreSQL) per wave.

    The first wave stores every cluster that has answered within FIRST_WAVE_SECONDS; later
    waves the rest, each as soon as some cluster's calls have all ended (at most
    PROBE_TIMEOUT): a slow or dead cluster never holds back the verdicts of the others. A
    cluster seen for the first time (no row or no members yet) takes the single-cluster path,
    which discovers its members, on a pool thread of its own (listed in `handed_off`: it
    settles its run itself).
    """
    started_at = datetime.now(UTC)
    started = time.monotonic()
    ids = list(runs)
    ahead = selectors.probe_round(ids)
    records = monitored_records([cid for cid in ids if cid != DEFAULT_CLUSTER])
    with _round_transfers("probe") as transfers:
        round_ = _Round(transfers)
        calls: dict[str, tuple] = {}
        for cluster_id in ids:
            row, known = ahead.get(cluster_id, (None, None))
            try:
                target = cluster_target(
                    cluster_id=cluster_id, row=row, record=records.get(cluster_id)
                )
            except Exception as exc:
                logger.exception("health probe of cluster %s failed", cluster_id)
                runs[cluster_id].set_exception(exc)
                continue
            if target is None:
                runs[cluster_id].set_result(None)
                continue
            if target.cluster is not row or not known.members:
                # Its member discovery may wait on a timeout: on a pool thread of its own.
                first_sight = functools.partial(
                    health_probe,
                    cluster=target.cluster,
                    gateway=target.gateway,
                    unreachable=target.unreachable,
                )
                if handed_off is not None:
                    handed_off.add(cluster_id)
                _cluster_executor().submit(_settle_in_own_connection, runs[cluster_id], first_sight)
                continue
            futures = [
                _probe_start(round_, member, target.gateway, target.unreachable)
                for member in known.members
            ]
            calls[cluster_id] = (target, known, futures)

        def all_answered() -> bool:
            return all(f.done() for *_, futures in calls.values() for f in futures)

        def one_cluster_answered() -> bool:
            return any(all(f.done() for f in futures) for *_, futures in calls.values())

        first_wave = True
        while calls:
            if first_wave:
                round_.drive(time.monotonic() + FIRST_WAVE_SECONDS, finished=all_answered)
            else:
                round_.drive(time.monotonic() + ROUND_SLICE_SECONDS, finished=one_cluster_answered)
                # Let answers due together share the write.
                round_.drive(time.monotonic() + WAVE_GATHER_SECONDS, finished=all_answered)
            first_wave = False
            wave = [cid for cid, (*_, futures) in calls.items() if all(f.done() for f in futures)]
            if wave:
                _probe_wave_store({cid: calls.pop(cid) for cid in wave}, runs, started_at, started)
            elif calls:
                round_.check_going()


def _probe_wave_store(
    wave: dict[str, tuple], runs: dict[str, Future], started_at: datetime, started: float
) -> None:
    """Store the verdicts of the clusters whose every member answered or failed, and settle
    their runs."""
    verdicts = []
    for target, known, futures in wave.values():
        probes = [future.result() for future in futures]
        verdicts.append(
            _verdict(
                target.cluster,
                known.members,
                known.quotas,
                probes,
                started_at=started_at,
                unreachable=target.unreachable,
            )
        )
    try:
        _health_write_round(verdicts, started_at)
    except Exception as exc:
        logger.exception("storing a health round of %d clusters failed", len(wave))
        for cluster_id in wave:
            runs[cluster_id].set_exception(exc)
        return
    selectors.forget_latest_json()  # /api/current's `stale` follows the member's health
    duration_ms = (time.monotonic() - started) * 1000
    for cluster_id, verdict in zip(wave, verdicts, strict=True):
        verdict.report.duration_ms = duration_ms
        runs[cluster_id].set_result(verdict.report)


# --- panel layout ---------------------------------------------------------------------------------


class TooManyVisibleCards(InvalidInput):
    """More cards sent visible than the dashboard shows; the body names the maximum."""

    def __init__(self, maximum: int):
        super().__init__("too many visible cards", max=maximum)
        self.maximum = maximum


def panel_config_save(*, user, config: dict) -> dict:
    """Store a user's layout, normalised against the panel registry (unknown ids dropped).

    Raises TooManyVisibleCards (nothing stored) when more than MAX_VISIBLE_CARDS distinct cards
    are sent visible.
    """
    merged = merge_panel_config(config)
    sent_cards = config.get("cards")
    if isinstance(sent_cards, list):
        visible_ids = {
            c.get("id")
            for c in sent_cards
            if isinstance(c, dict) and c.get("visible") is True and isinstance(c.get("id"), str)
        }
        if len(visible_ids) > MAX_VISIBLE_CARDS:
            raise TooManyVisibleCards(MAX_VISIBLE_CARDS)
    PanelConfig.objects.update_or_create(
        user=user,
        defaults={
            "panels": merged["panels"],
            "cards": merged["cards"] if isinstance(sent_cards, list) else None,
        },
    )
    return merged
