"""Maintenance operations on a cluster: the default (the monitored one) unless the caller passes
the `gateway` of another record (`clusters.connection.cluster_gateway`). Every mutating op is
audited, failures included; on another cluster the audit target names it (`[cluster=<id>] …`).

Members are looked up live (MemberList through the gateway) so an op never targets a member that
has left, and each op talks to the member it names through a client bound to that member.
"""

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from audit.services import Actor, audited
from etcdgateway import ClusterGateway, EtcdError, EtcdUnavailable, MemberInfo, cluster_gateway
from etcdgateway.errors import translate
from etcdmonitor_site.errors import Conflict, InvalidInput, OperationFailed

logger = logging.getLogger(__name__)

DEFRAGMENT_TIMEOUT = 300.0
SNAPSHOT_TIMEOUT = 1800.0
SNAPSHOT_WRITE_SIZE = 1024 * 1024
ALARM_TIMEOUT = 10.0
MOVE_LEADER_TIMEOUT = 30.0
HASHKV_TIMEOUT = 30.0
COMPACT_TIMEOUT = 300.0
REACHABLE_TIMEOUT = 3.0

DISARMABLE_ALARMS = ("NOSPACE", "CORRUPT")


def member_find(member_id: int, gateway: ClusterGateway | None = None) -> MemberInfo:
    """The current member with this id (400 when the cluster has no such member)."""
    for member in (gateway or cluster_gateway()).members():
        if member.id == member_id:
            return member
    raise InvalidInput("member not found")


def _member_label(member: MemberInfo) -> str:
    return member.name or member.id_str


def _on_cluster(actor: Actor, target: str) -> str:
    """An audit target, naming the cluster when it is not the default (as KV names a tab)."""
    if actor.cluster_id == "default":
        return target
    return f"[cluster={actor.cluster_id}] {target}"


def _down_refusal(member: MemberInfo, operation: str, reason: str) -> Conflict:
    return Conflict(
        f"member {_member_label(member)} is down (unreachable: {reason}); {operation} refused"
    )


def _reachable_status(member: MemberInfo, operation: str, gateway: ClusterGateway):
    """Status of the member itself, or a 409: maintenance on a down member is refused."""
    try:
        return gateway.member_client(member, timeout=REACHABLE_TIMEOUT).status()
    except EtcdError as exc:
        raise _down_refusal(member, operation, exc.message) from exc


def _run_audited(
    operation: str,
    actor: Actor,
    call: Callable[[], object],
    *,
    target: str,
    params: str,
    failure: str | None = None,
    failure_extra: dict | None = None,
) -> int:
    """Run `call()` audited (result "success", or the etcd error's message); return its ms.

    On failure the EtcdError is re-raised, or, with `failure`, turned into OperationFailed
    "<failure>: <reason>" (the etcd error's status) with `duration_ms` and `failure_extra`.
    """
    try:
        with audited(
            operation,
            actor=actor,
            target=_on_cluster(actor, target),
            params=params,
            failures=(EtcdError,),
        ) as action:
            call()
            action.result = "success"
    except EtcdError as exc:
        if failure is None:
            raise
        raise OperationFailed(
            f"{failure}: {exc.message}",
            cause=exc,
            **(failure_extra or {}),
            duration_ms=action.duration_ms,
        ) from exc
    return action.duration_ms


def member_defragment(
    *, member_id: int, actor: Actor, gateway: ClusterGateway | None = None
) -> dict:
    """Defragment exactly one member (a client bound to its endpoint, long timeout)."""
    gateway = gateway or cluster_gateway()
    member = member_find(member_id, gateway)
    status = _reachable_status(member, "defragment", gateway)
    if status.leader_id == 0:
        raise Conflict("the cluster has no leader; defragment refused")
    client = gateway.member_client(member, timeout=DEFRAGMENT_TIMEOUT)
    duration = _run_audited(
        "defragment",
        actor,
        client.defragment,
        target=_member_label(member),
        params=member.id_str,
        failure="defragment failed",
        failure_extra={"member_id": member.id_str, "member_name": member.name},
    )
    return {
        "message": "defragment completed",
        "member_id": member.id_str,
        "member_name": member.name,
        "duration_ms": duration,
    }


def snapshot_filename(member: MemberInfo, when: datetime | None = None) -> str:
    """`etcd-snapshot-<member>-<UTC YYYYMMDD-HHMMSS>.db`, safe inside a quoted header value."""
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", _member_label(member)).strip("._") or member.id_str
    return f"etcd-snapshot-{name[:64]}-{stamp}.db"


@dataclass
class SnapshotStream:
    """A snapshot being read from one member; iterate it for the bytes."""

    member: MemberInfo
    filename: str
    chunks: Iterator[bytes]


def _transfer_failed(sent: int, reason: str) -> str:
    return f"snapshot transfer failed after {sent} bytes: {reason}"


def member_snapshot(
    *, member_id: int | None, actor: Actor, gateway: ClusterGateway | None = None
) -> SnapshotStream:
    """Start a snapshot stream from the chosen member (default: the leader).

    The first chunk is read before returning, so a member that cannot start a snapshot gives a
    clean JSON error. A failure after that raises inside the iterator, which makes the WSGI
    server abort the connection: the client sees a broken transfer, never a clean truncated
    file. The audit entry is written when the stream ends, with the byte count and outcome.
    """
    gateway = gateway or cluster_gateway()
    if member_id is None:
        leader_id = gateway.status().leader_id
        member = member_find(leader_id, gateway)
    else:
        member = member_find(member_id, gateway)
        _reachable_status(member, "snapshot", gateway)
    client = gateway.member_client(member, timeout=SNAPSHOT_TIMEOUT)
    started = time.monotonic()

    def audited_transfer():
        # One entry per stream, timed from the request: a failure to start, or the stream's end.
        return audited(
            "snapshot",
            actor=actor,
            target=_on_cluster(actor, _member_label(member)),
            params=member.id_str,
            started=started,
            failures=(Exception, GeneratorExit),
        )

    with audited_transfer() as opening:
        try:
            blobs = client.snapshot()
            first = next(blobs, None)
        except Exception as exc:
            error = translate(exc, endpoint=client.endpoint)
            opening.result = _transfer_failed(0, error.message)
            if error is exc:
                raise
            raise error from exc
        opening.discard()  # the stream has started: its end is what gets audited

    def chunks() -> Iterator[bytes]:
        sent = 0
        # etcd sends 32 KiB messages; writing ~1 MiB at a time cuts per-write overhead in the
        # WSGI server while memory stays flat.
        buffer = bytearray(first if first is not None else b"")
        with audited_transfer() as transfer:
            try:
                for blob in blobs:
                    buffer += blob
                    if len(buffer) >= SNAPSHOT_WRITE_SIZE:
                        sent += len(buffer)
                        yield bytes(buffer)
                        buffer.clear()
                if buffer:
                    sent += len(buffer)
                    yield bytes(buffer)
            except GeneratorExit:
                transfer.result = _transfer_failed(sent, "client disconnected")
                raise
            except Exception as exc:
                transfer.result = _transfer_failed(
                    sent, translate(exc, endpoint=client.endpoint).message
                )
                raise
            transfer.result = f"success, size={sent} bytes"

    return SnapshotStream(member=member, filename=snapshot_filename(member), chunks=chunks())


def alarms_list(*, gateway: ClusterGateway | None = None) -> list[dict]:
    """Active alarms, with member names resolved."""
    gateway = gateway or cluster_gateway()
    names = {m.id: _member_label(m) for m in gateway.members()}
    return [
        {
            "member_id": str(member_id),
            "member_name": names.get(member_id, str(member_id)),
            "alarm_type": alarm_type,
        }
        for member_id, alarm_type in gateway.alarms(timeout=ALARM_TIMEOUT)
    ]


def parse_alarm_type(raw) -> str:
    text = str(raw or "").strip().upper().removeprefix("ALARMTYPE_")
    if text not in DISARMABLE_ALARMS:
        raise InvalidInput(f"alarm_type must be one of {', '.join(DISARMABLE_ALARMS)}")
    return text


def alarm_disarm(
    *, member_id: int, alarm_type: str, actor: Actor, gateway: ClusterGateway | None = None
) -> dict:
    """Deactivate one alarm of one member."""
    gateway = gateway or cluster_gateway()
    member = member_find(member_id, gateway)
    params = f"member_id={member.id_str}, alarm_type={alarm_type}"
    _run_audited(
        "alarm_disarm",
        actor,
        lambda: gateway.alarm_disarm(member.id, alarm_type, timeout=ALARM_TIMEOUT),
        target=_member_label(member),
        params=params,
    )
    return {"message": "alarm disarmed"}


def _statuses(members: list[MemberInfo], gateway: ClusterGateway) -> dict[int, object]:
    """Status of each member concurrently; a member that fails maps to its EtcdError."""

    def one(member: MemberInfo):
        try:
            return gateway.member_client(member, timeout=REACHABLE_TIMEOUT).status()
        except EtcdError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(members))) as pool:
        return dict(zip([m.id for m in members], pool.map(one, members), strict=True))


def leader_move(
    *, target_member_id: int, actor: Actor, gateway: ClusterGateway | None = None
) -> dict:
    """Transfer leadership to a voting follower; the request goes to the current leader."""
    gateway = gateway or cluster_gateway()
    members = gateway.members()
    by_id = {m.id: m for m in members}
    target = by_id.get(target_member_id)
    if target is None:
        raise InvalidInput("target member not found")
    if target.is_learner:
        raise InvalidInput("target member is a learner and cannot become leader")
    by_member = _statuses(members, gateway)
    if isinstance(by_member[target.id], EtcdError):
        raise _down_refusal(target, "move-leader", by_member[target.id].message)
    statuses = [s for s in by_member.values() if not isinstance(s, EtcdError)]
    leader_ids = {s.leader_id for s in statuses if s.leader_id}
    if len(leader_ids) != 1 or next(iter(leader_ids)) not in by_id:
        raise Conflict("cannot determine the current leader")
    leader = by_id[leader_ids.pop()]
    if leader.id == target.id:
        raise InvalidInput("target member is already the leader")
    client = gateway.member_client(leader, timeout=MOVE_LEADER_TIMEOUT)
    duration = _run_audited(
        "move_leader",
        actor,
        lambda: client.move_leader(target.id),
        target=_member_label(target),
        params=target.id_str,
        failure="move leader failed",
    )
    return {
        "message": "leader moved",
        "target_id": target.id_str,
        "target_name": target.name,
        "duration_ms": duration,
    }


def cluster_hashkv(*, actor: Actor, gateway: ClusterGateway | None = None) -> dict:
    """HashKV at one revision on every member concurrently.

    `mismatch`: the members that answered disagree (hash or compact revision) - real evidence
    of divergence. `incomplete`: some member did not answer (`unreachable` lists them), which
    proves nothing about the data. `consistent` (the reference's field) only when every member
    answered and all agree. The audit entry says INCONSISTENT only for a mismatch.
    """
    gateway = gateway or cluster_gateway()
    members = gateway.members()
    if not members:
        raise EtcdUnavailable("no members available")
    revision = gateway.status().revision

    def one(member: MemberInfo) -> dict:
        result = {
            "member_id": member.id_str,
            "member_name": member.name,
            "hash": 0,
            "revision": revision,
            "compact_revision": 0,
        }
        try:
            keyspace_hash = gateway.member_client(member, timeout=HASHKV_TIMEOUT).hashkv(revision)
        except EtcdError as exc:
            result["error"] = exc.message
            return result
        result.update(
            hash=keyspace_hash.hash,
            revision=keyspace_hash.revision,
            compact_revision=keyspace_hash.compact_revision,
        )
        return result

    # Every etcd error is one member's answer; anything else is ours and not audited.
    with audited(
        "hashkv",
        actor=actor,
        target=_on_cluster(actor, "cluster"),
        params=f"revision={revision}",
        failures=(),
    ) as action:
        with ThreadPoolExecutor(max_workers=len(members)) as pool:
            results = list(pool.map(one, members))
        answered = [r for r in results if "error" not in r]
        unreachable = [
            {"member_id": r["member_id"], "member_name": r["member_name"], "error": r["error"]}
            for r in results
            if "error" in r
        ]
        # Only answers can disagree: a member that did not answer proves nothing either way.
        mismatch = (
            len({r["hash"] for r in answered}) > 1
            or len({r["compact_revision"] for r in answered}) > 1
        )
        consistent = not unreachable and not mismatch and bool(answered)
        if mismatch:
            verdict = "INCONSISTENT"
        elif unreachable:
            names = ", ".join(u["member_name"] or u["member_id"] for u in unreachable)
            verdict = f"incomplete: {len(unreachable)} member(s) unreachable ({names})"
        else:
            verdict = "consistent"
        action.result = f"{verdict}, {json.dumps(results, separators=(',', ':'))}"
        action.success = consistent
    return {
        "consistent": consistent,
        "incomplete": bool(unreachable),
        "mismatch": mismatch,
        "unreachable": unreachable,
        "revision": revision,
        "results": results,
        "duration_ms": action.duration_ms,
    }


def current_revision(*, gateway: ClusterGateway | None = None) -> int:
    """The cluster's current revision (header of a Status reply)."""
    return (gateway or cluster_gateway()).status().revision


def cluster_compact(
    *, retain_count: int, physical: bool, actor: Actor, gateway: ClusterGateway | None = None
) -> dict:
    """Compact history, keeping the newest `retain_count` revisions."""
    gateway = gateway or cluster_gateway()
    current = current_revision(gateway=gateway)
    target = current - retain_count
    if target <= 0:
        raise InvalidInput(
            "retain_count is too large, computed target revision is non-positive",
            current_revision=current,
            retain_count=retain_count,
        )
    params = json.dumps(
        {"retain_count": retain_count, "physical": physical, "target_revision": target}
    )
    duration = _run_audited(
        "compact",
        actor,
        lambda: gateway.compact(target, physical=physical, timeout=COMPACT_TIMEOUT),
        target="cluster",
        params=params,
        failure="compact failed",
    )
    return {
        "message": "compact completed",
        "current_revision": current,
        "target_revision": target,
        "retain_count": retain_count,
        "physical": physical,
        "duration_ms": duration,
    }
