"""Maintenance operations on the monitored cluster. Every mutating op is audited, failures included.

Members are looked up live (MemberList through the gateway) so an op never targets a member that
has left, and each op talks to the member it names through a client bound to that member.
"""

import json
import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from audit.services import audit_record
from etcdgateway import EtcdError, EtcdUnavailable, MemberInfo, cluster_gateway
from etcdgateway.errors import translate
from etcdmonitor_site.exceptions import ApiError

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


@dataclass(frozen=True)
class Actor:
    """Who asked for an operation, for the audit log."""

    username: str
    client_ip: str | None = None


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def member_find(member_id: int) -> MemberInfo:
    """The current member with this id (400 when the cluster has no such member)."""
    for member in cluster_gateway().members():
        if member.id == member_id:
            return member
    raise ApiError("member not found")


def _member_label(member: MemberInfo) -> str:
    return member.name or member.id_str


def _down_refusal(member: MemberInfo, operation: str, reason: str) -> ApiError:
    return ApiError(
        f"member {_member_label(member)} is down (unreachable: {reason}); {operation} refused",
        status_code=409,
    )


def _reachable_status(member: MemberInfo, operation: str):
    """Status of the member itself, or a 409: maintenance on a down member is refused."""
    try:
        return cluster_gateway().member_client(member, timeout=REACHABLE_TIMEOUT).status()
    except EtcdError as exc:
        raise _down_refusal(member, operation, exc.message) from exc


def _run_audited(
    operation: str,
    actor: Actor,
    call,
    *,
    target: str,
    params: str,
    failure: str | None = None,
    failure_extra: dict | None = None,
) -> int:
    """Run `call()`, time it, audit the outcome (success or the etcd error), return the ms.

    On failure the EtcdError is re-raised, or, with `failure`, turned into an ApiError
    "<failure>: <reason>" with the same status, `duration_ms` and `failure_extra` fields.
    """
    started = time.monotonic()
    try:
        call()
    except EtcdError as exc:
        duration = _elapsed_ms(started)
        audit_record(
            operation=operation,
            username=actor.username,
            target=target,
            params=params,
            result=exc.message,
            duration_ms=duration,
            success=False,
            client_ip=actor.client_ip,
        )
        if failure is None:
            raise
        raise ApiError(
            f"{failure}: {exc.message}",
            status_code=exc.status_code,
            **(failure_extra or {}),
            duration_ms=duration,
        ) from exc
    duration = _elapsed_ms(started)
    audit_record(
        operation=operation,
        username=actor.username,
        target=target,
        params=params,
        result="success",
        duration_ms=duration,
        client_ip=actor.client_ip,
    )
    return duration


def member_defragment(*, member_id: int, actor: Actor) -> dict:
    """Defragment exactly one member (a client bound to its endpoint, long timeout)."""
    member = member_find(member_id)
    status = _reachable_status(member, "defragment")
    if status.leader_id == 0:
        raise ApiError("the cluster has no leader; defragment refused", status_code=409)
    client = cluster_gateway().member_client(member, timeout=DEFRAGMENT_TIMEOUT)
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


def member_snapshot(*, member_id: int | None, actor: Actor) -> SnapshotStream:
    """Start a snapshot stream from the chosen member (default: the leader).

    The first chunk is read before returning, so a member that cannot start a snapshot gives a
    clean JSON error. A failure after that raises inside the iterator, which makes the WSGI
    server abort the connection: the client sees a broken transfer, never a clean truncated
    file. The audit entry is written when the stream ends, with the byte count and outcome.
    """
    gateway = cluster_gateway()
    if member_id is None:
        leader_id = gateway.status().leader_id
        member = member_find(leader_id)
    else:
        member = member_find(member_id)
        _reachable_status(member, "snapshot")
    client = gateway.member_client(member, timeout=SNAPSHOT_TIMEOUT)
    label = _member_label(member)
    started = time.monotonic()

    def fail(sent: int, error: EtcdError) -> None:
        audit_record(
            operation="snapshot",
            username=actor.username,
            target=label,
            params=member.id_str,
            result=f"snapshot transfer failed after {sent} bytes: {error.message}",
            duration_ms=_elapsed_ms(started),
            success=False,
            client_ip=actor.client_ip,
        )

    try:
        blobs = client.snapshot()
        first = next(blobs, None)
    except EtcdError as exc:
        fail(0, exc)
        raise
    except Exception as exc:
        error = translate(exc, endpoint=client.endpoint)
        fail(0, error)
        raise error from exc

    def chunks() -> Iterator[bytes]:
        sent = 0
        # etcd sends 32 KiB messages; writing ~1 MiB at a time cuts per-write overhead in the
        # WSGI server while memory stays flat.
        buffer = bytearray(first if first is not None else b"")
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
            fail(sent, EtcdError("client disconnected"))
            raise
        except Exception as exc:
            fail(sent, translate(exc, endpoint=client.endpoint))
            raise
        audit_record(
            operation="snapshot",
            username=actor.username,
            target=label,
            params=member.id_str,
            result=f"success, size={sent} bytes",
            duration_ms=_elapsed_ms(started),
            client_ip=actor.client_ip,
        )

    return SnapshotStream(member=member, filename=snapshot_filename(member), chunks=chunks())


def alarms_list() -> list[dict]:
    """Active alarms, with member names resolved."""
    gateway = cluster_gateway()
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
        raise ApiError(f"alarm_type must be one of {', '.join(DISARMABLE_ALARMS)}")
    return text


def alarm_disarm(*, member_id: int, alarm_type: str, actor: Actor) -> dict:
    """Deactivate one alarm of one member."""
    member = member_find(member_id)
    params = f"member_id={member.id_str}, alarm_type={alarm_type}"
    _run_audited(
        "alarm_disarm",
        actor,
        lambda: cluster_gateway().alarm_disarm(member.id, alarm_type, timeout=ALARM_TIMEOUT),
        target=_member_label(member),
        params=params,
    )
    return {"message": "alarm disarmed"}


def _statuses(members: list[MemberInfo]) -> dict[int, object]:
    """Status of each member concurrently; a member that fails maps to its EtcdError."""
    gateway = cluster_gateway()

    def one(member: MemberInfo):
        try:
            return gateway.member_client(member, timeout=REACHABLE_TIMEOUT).status()
        except EtcdError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(members))) as pool:
        return dict(zip([m.id for m in members], pool.map(one, members), strict=True))


def leader_move(*, target_member_id: int, actor: Actor) -> dict:
    """Transfer leadership to a voting follower; the request goes to the current leader."""
    members = cluster_gateway().members()
    by_id = {m.id: m for m in members}
    target = by_id.get(target_member_id)
    if target is None:
        raise ApiError("target member not found")
    if target.is_learner:
        raise ApiError("target member is a learner and cannot become leader")
    by_member = _statuses(members)
    if isinstance(by_member[target.id], EtcdError):
        raise _down_refusal(target, "move-leader", by_member[target.id].message)
    statuses = [s for s in by_member.values() if not isinstance(s, EtcdError)]
    leader_ids = {s.leader_id for s in statuses if s.leader_id}
    if len(leader_ids) != 1 or next(iter(leader_ids)) not in by_id:
        raise ApiError("cannot determine the current leader", status_code=409)
    leader = by_id[leader_ids.pop()]
    if leader.id == target.id:
        raise ApiError("target member is already the leader")
    client = cluster_gateway().member_client(leader, timeout=MOVE_LEADER_TIMEOUT)
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


def cluster_hashkv(*, actor: Actor) -> dict:
    """HashKV at one revision on every member concurrently.

    `mismatch`: the members that answered disagree (hash or compact revision) - real evidence
    of divergence. `incomplete`: some member did not answer (`unreachable` lists them), which
    proves nothing about the data. `consistent` (the reference's field) only when every member
    answered and all agree. The audit entry says INCONSISTENT only for a mismatch.
    """
    gateway = cluster_gateway()
    members = gateway.members()
    if not members:
        raise EtcdUnavailable("no members available")
    revision = gateway.status().revision
    started = time.monotonic()

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
        len({r["hash"] for r in answered}) > 1 or len({r["compact_revision"] for r in answered}) > 1
    )
    consistent = not unreachable and not mismatch and bool(answered)
    duration = _elapsed_ms(started)
    if mismatch:
        verdict = "INCONSISTENT"
    elif unreachable:
        names = ", ".join(u["member_name"] or u["member_id"] for u in unreachable)
        verdict = f"incomplete: {len(unreachable)} member(s) unreachable ({names})"
    else:
        verdict = "consistent"
    audit_record(
        operation="hashkv",
        username=actor.username,
        target="cluster",
        params=f"revision={revision}",
        result=f"{verdict}, {json.dumps(results, separators=(',', ':'))}",
        duration_ms=duration,
        success=consistent,
        client_ip=actor.client_ip,
    )
    return {
        "consistent": consistent,
        "incomplete": bool(unreachable),
        "mismatch": mismatch,
        "unreachable": unreachable,
        "revision": revision,
        "results": results,
        "duration_ms": duration,
    }


def current_revision() -> int:
    """The cluster's current revision (header of a Status reply)."""
    return cluster_gateway().status().revision


def cluster_compact(*, retain_count: int, physical: bool, actor: Actor) -> dict:
    """Compact history, keeping the newest `retain_count` revisions."""
    current = current_revision()
    target = current - retain_count
    if target <= 0:
        raise ApiError(
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
        lambda: cluster_gateway().compact(target, physical=physical, timeout=COMPACT_TIMEOUT),
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
