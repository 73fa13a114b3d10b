"""Reads of a key's past: its history (the change journal plus what etcd still holds), one
revision's value, the recently deleted keys, and who made each change.

Where a revision comes from:
- the journal (`journal` app) is the main source: every change it saw, with the time it stored
  it (`observed_at`; etcd itself keeps no time), and for a delete the value it deleted;
- etcd fills what the journal cannot have: revisions newer than the journal's cursor (it
  trails etcd by a few seconds) and the key's life from before the journal began (or before its
  retention), by ranged gets at older revisions, walking back one version at a time from the
  revision before the journal's oldest stored one. That walk stops at the key's creation (an
  earlier life ended in a delete etcd can only tell through a replaying watch: only the journal
  knows those), at etcd's compaction, and after ETCD_WALK_MAX gets per request. Such revisions
  carry `"source": "etcd"` and no timestamp. A key under JOURNAL_EXCLUDE_PREFIXES is read from
  etcd alone, from its newest value back.

`changed_by` joins each change with the audit log: a KV write through this product records the
revision it produced and the cluster (`audit_revision_params`), so the change at (cluster,
revision) was ours when an audit row names that pair, and that row's user made it; otherwise it
came from outside (etcdctl, an application, another tool).
"""

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Q

from audit.models import AuditLog
from audit.services import TARGET_MAX
from etcdgateway import ClusterGateway, EtcdFutureRevision, EtcdNotFound, EtcdRevisionCompacted
from etcdmonitor_site.errors import InvalidInput, NotFound
from journal.models import JournalEvent
from journal.selectors import journal_gaps, journal_position
from kvmanager.keyspace import decode_key, encode_key, prefix_end, value_fields
from kvmanager.scopes import Scope

ETCD_WALK_MAX = 100  # ranged gets one history request may spend walking back through etcd
HISTORY_LIMIT = 200  # revisions a history answers by default (at most HISTORY_LIMIT_MAX)
HISTORY_LIMIT_MAX = 1000
DELETED_PAGE = 50
DELETED_PAGE_MAX = 500
# Audited KV writes that change a v3 key, whose params carry the revision they produced.
KV_WRITE_OPERATIONS = ("put", "delete", "revert", "restore")


def audit_revision_params(params: dict, *, cluster_id: str, revision: int | None) -> str:
    """A KV write's audit params: the caller's fields, then the revision the write produced
    (when it succeeded), then the cluster (`tab_id`). The last two always end the text in
    this form, which `_audited_writes` looks for."""
    marked = {**params}
    if revision is not None:
        marked["revision"] = revision
    marked["tab_id"] = cluster_id
    return json.dumps(marked)


def _revision_fragment(revision: int, cluster_id: str) -> str:
    return f'"revision": {revision}, "tab_id": {json.dumps(cluster_id)}}}'


@dataclass
class Change:
    """One change of one key, from the journal or from etcd."""

    revision: int
    kind: str  # "put" | "delete"
    value: bytes | None  # a put's value; None for a delete or when not kept
    value_size: int
    lease: int
    observed_at: datetime | None  # None: read from etcd, which keeps no time
    deleted_value: bytes | None = None  # a delete's prev value, when kept
    deleted_value_size: int | None = None
    source: str = "journal"

    @classmethod
    def from_event(cls, event: JournalEvent) -> "Change":
        def raw(field):
            return None if field is None else bytes(field)

        return cls(
            revision=event.revision,
            kind=event.kind,
            value=raw(event.value),
            value_size=event.value_size,
            lease=event.lease,
            observed_at=event.observed_at,
            deleted_value=raw(event.prev_value),
            deleted_value_size=event.prev_value_size,
        )


def _value_fields(value: bytes | None) -> dict:
    return {"value": None} if value is None else value_fields(value)


def _unix(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def _changed_by(users: dict[int, str], revision: int) -> dict:
    username = users.get(revision)
    if username is None:
        return {"via": "outside", "username": None}
    return {"via": "etcdmonitor", "username": username}


def revision_entry(change: Change, users: dict[int, str]) -> dict:
    """One item of the history's `revisions`."""
    entry = {
        "revision": change.revision,
        "type": change.kind,
        "timestamp": _unix(change.observed_at),
        **_value_fields(change.value if change.kind == "put" else None),
        "value_size": change.value_size,
        "lease": change.lease,
        "changed_by": _changed_by(users, change.revision),
        "source": change.source,
    }
    if change.kind == "delete":
        # The value it deleted is what a restore brings back: kept, or only its size known.
        entry["restorable"] = change.deleted_value is not None
        entry["deleted_value_size"] = change.deleted_value_size
    return entry


def _audit_targets(cluster_id: str, keys: set[str]) -> set[str]:
    """The audit targets a write of these keys may carry: the key itself, or one of its
    directories (a directory delete names the directory), as `_key_audited` writes them."""
    separator = settings.KV_SEPARATOR
    targets = set()
    for key in keys:
        names = {key, separator}
        cut = key.rstrip(separator)
        while separator in cut:
            cut = cut.rsplit(separator, 1)[0]
            if cut:
                names.add(cut)
        for name in names:
            target = name if cluster_id == "default" else f"[tab={cluster_id}] {name}"
            targets.add(target[:TARGET_MAX])
    return targets


def _audited_writes(*, cluster_id: str, changes: list[tuple[str, int]]) -> dict[int, str]:
    """{revision: username} of the successful KV writes through this product that produced
    these (key, revision) changes on this cluster (see `audit_revision_params`).

    The audit rows are found by target (the key or a directory of it: one pass over the KV
    write rows: ~40 ms over 200,000 of them, bench/history_join.py), then matched
    on the revision and cluster their params end with. A revision is one etcd transaction, so
    the row that produced it on this cluster made every change at it.
    """
    if not changes:
        return {}
    wanted = {_revision_fragment(revision, cluster_id): revision for _, revision in changes}
    rows = AuditLog.objects.filter(
        operation__in=KV_WRITE_OPERATIONS,
        success=True,
        target__in=_audit_targets(cluster_id, {key for key, _ in changes}),
    ).values_list("params", "username")
    users: dict[int, str] = {}
    for params, username in rows:
        tail = params[params.rfind('"revision": ') :]
        revision = wanted.get(tail)
        if revision is not None:
            users[revision] = username
    return users


def _journal_coverage(cluster_id: str) -> tuple[int | None, int]:
    """(the oldest revision the journal holds for the cluster, its cursor); (None, 0) when the
    cluster was never journaled. With no event stored yet, coverage starts after the cursor."""
    cursor = journal_position(cluster_id=cluster_id)
    if cursor is None:
        return None, 0
    oldest = (
        JournalEvent.objects.filter(cluster_id=cluster_id)
        .order_by("revision")
        .values_list("revision", flat=True)
        .first()
    )
    return (oldest if oldest is not None else cursor.revision + 1), cursor.revision


def _etcd_walk(
    gateway: ClusterGateway, raw_key: bytes, *, start: int, stop_at: int, budget: list[int]
) -> list[Change]:
    """The key's puts etcd still holds, newest first, from its value at `start` (0: now) back
    through its versions while their revision is above `stop_at`; ends at the key's creation,
    at compaction, or when `budget[0]` gets are spent."""
    changes: list[Change] = []
    revision = start
    while budget[0] > 0 and revision >= 0:
        budget[0] -= 1
        try:
            kv = gateway.get(raw_key, revision=revision)
        except EtcdRevisionCompacted:
            break
        if kv is None or kv.mod_revision <= stop_at:
            break
        changes.append(
            Change(
                revision=kv.mod_revision,
                kind="put",
                value=kv.value,
                value_size=len(kv.value),
                lease=kv.lease,
                observed_at=None,
                source="etcd",
            )
        )
        if kv.version <= 1 or kv.mod_revision <= 1:
            break
        revision = kv.mod_revision - 1
    return changes


def _visible(scope: Scope | None, key: str) -> None:
    """A key outside the user's read prefixes has no history for them: not found, as `get`."""
    if scope is not None and not scope.can_read(key):
        raise EtcdNotFound(f"key not found: {key}")


def key_history(
    *,
    gateway: ClusterGateway,
    cluster_id: str,
    key: str,
    limit: int = HISTORY_LIMIT,
    scope: Scope | None = None,
) -> dict:
    """`{"key", "revisions": [...], "gaps": [[from, to], ...]}`, newest first (see the module
    docstring for where each revision comes from); a deleted key keeps its history. A key
    outside the KV scope's read prefixes is not found."""
    _visible(scope, key)
    raw_key = encode_key(key)
    events = JournalEvent.objects.filter(cluster_id=cluster_id, key=raw_key).order_by("-revision")
    changes = {event.revision: Change.from_event(event) for event in events[:limit]}
    oldest, cursor = _journal_coverage(cluster_id)
    if raw_key.startswith(tuple(p.encode() for p in settings.JOURNAL_EXCLUDE_PREFIXES)):
        oldest = None  # never journaled (JOURNAL_EXCLUDE_PREFIXES): etcd is all there is
    budget = [ETCD_WALK_MAX]
    if oldest is not None:
        # Newer than the journal's cursor: etcd alone has them for now.
        lag = _etcd_walk(gateway, raw_key, start=0, stop_at=cursor, budget=budget)
        before = _etcd_walk(gateway, raw_key, start=oldest - 1, stop_at=0, budget=budget)
    else:
        lag, before = _etcd_walk(gateway, raw_key, start=0, stop_at=0, budget=budget), []
    for change in (*lag, *before):
        changes.setdefault(change.revision, change)
    ordered = sorted(changes.values(), key=lambda change: change.revision, reverse=True)[:limit]
    users = _audited_writes(
        cluster_id=cluster_id, changes=[(key, change.revision) for change in ordered]
    )
    return {
        "key": key,
        "revisions": [revision_entry(change, users) for change in ordered],
        "gaps": [gap.to_pair() for gap in journal_gaps(cluster_id=cluster_id)],
    }


def key_change(*, gateway: ClusterGateway, cluster_id: str, key: str, revision: int) -> Change:
    """The change of `key` at exactly `revision`: the journal's, else etcd's (a put it still
    holds); NotFound when neither knows one."""
    raw_key = encode_key(key)
    event = JournalEvent.objects.filter(
        cluster_id=cluster_id, key=raw_key, revision=revision
    ).first()
    if event is not None:
        return Change.from_event(event)
    try:
        kv = gateway.get(raw_key, revision=revision)
    except (EtcdRevisionCompacted, EtcdFutureRevision):
        kv = None
    if kv is None or kv.mod_revision != revision:
        raise NotFound(
            f"no change of {key!r} at revision {revision} is known (not in the journal, and "
            "etcd no longer holds it or never had it)",
            code="revision_not_found",
        )
    return Change(
        revision=revision,
        kind="put",
        value=kv.value,
        value_size=len(kv.value),
        lease=kv.lease,
        observed_at=None,
        source="etcd",
    )


def key_revision(
    *,
    gateway: ClusterGateway,
    cluster_id: str,
    key: str,
    revision: int,
    scope: Scope | None = None,
) -> dict:
    """`{"key", ...one history entry}`: the value the key took at `revision` (not found
    outside the KV scope's read prefixes)."""
    _visible(scope, key)
    change = key_change(gateway=gateway, cluster_id=cluster_id, key=key, revision=revision)
    users = _audited_writes(cluster_id=cluster_id, changes=[(key, revision)])
    return {"key": key, **revision_entry(change, users)}


def value_at(*, gateway: ClusterGateway, cluster_id: str, key: str, revision: int) -> bytes:
    """The value a put at `revision` wrote, for a revert: the journal's copy, or etcd's while
    it still holds it (a value over JOURNAL_MAX_VALUE_BYTES is journaled as size and hash).
    InvalidInput when `revision` deleted the key or the value is gone."""
    change = key_change(gateway=gateway, cluster_id=cluster_id, key=key, revision=revision)
    if change.kind != "put":
        raise InvalidInput(
            f"revision {revision} deleted {key!r}: choose a revision that wrote a value",
            code="invalid_request",
        )
    if change.value is not None:
        return change.value
    try:
        kv = gateway.get(encode_key(key), revision=revision)
    except (EtcdRevisionCompacted, EtcdFutureRevision):
        kv = None
    if kv is not None and kv.mod_revision == revision:
        return kv.value
    raise InvalidInput(
        f"the value written at revision {revision} was not kept ({change.value_size} bytes, "
        f"over JOURNAL_MAX_VALUE_BYTES = {settings.JOURNAL_MAX_VALUE_BYTES}) and etcd has "
        "compacted it",
        code="value_not_kept",
    )


def deleted_value(*, cluster_id: str, key: str, revision: int) -> bytes:
    """The value the delete of `key` at `revision` removed, for a restore. NotFound when the
    journal saw no such delete; InvalidInput when the value was too large to keep."""
    event = JournalEvent.objects.filter(
        cluster_id=cluster_id, key=encode_key(key), revision=revision, kind="delete"
    ).first()
    if event is None:
        raise NotFound(
            f"the journal has no delete of {key!r} at revision {revision}",
            code="revision_not_found",
        )
    if event.prev_value is None:
        raise InvalidInput(
            f"the value deleted at revision {revision} was not kept "
            f"({event.prev_value_size} bytes, over JOURNAL_MAX_VALUE_BYTES = "
            f"{settings.JOURNAL_MAX_VALUE_BYTES})",
            code="value_not_kept",
        )
    return bytes(event.prev_value)


# --- recently deleted -----------------------------------------------------------------------


def _cursor_encode(revision: int, key: bytes) -> str:
    text = f"{revision}:{base64.urlsafe_b64encode(key).decode('ascii')}"
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


def _cursor_decode(cursor: str) -> tuple[int, bytes]:
    try:
        revision, key = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().split(":", 1)
        return int(revision), base64.urlsafe_b64decode(key.encode("ascii"))
    except (ValueError, UnicodeError) as exc:
        raise InvalidInput("cursor is not one this API returned", code="invalid_request") from exc


def deleted_keys(
    *,
    cluster_id: str,
    prefix: str,
    cursor: str | None,
    limit: int = DELETED_PAGE,
    scope: Scope | None = None,
) -> dict:
    """`{"entries": [...], "next_cursor"}`: the journal's deletes of keys under `prefix`,
    newest first, `limit` at a time; `next_cursor` (opaque: the last entry's revision and key)
    continues after the last entry, null on the last page. A key deleted twice appears twice."""
    events = JournalEvent.objects.filter(cluster_id=cluster_id, kind="delete")
    raw_prefix = encode_key(prefix)
    if raw_prefix:
        # Bytes compare as bytes: [prefix, prefix_end) is exactly the keys starting with it.
        events = events.filter(key__gte=raw_prefix)
        end = prefix_end(raw_prefix)
        if end != b"\x00":
            events = events.filter(key__lt=end)
    if scope is not None:  # only keys inside the read prefixes
        events = events.filter(scope.journal_filter())
    if cursor:
        revision, key = _cursor_decode(cursor)
        events = events.filter(Q(revision__lt=revision) | Q(revision=revision, key__gt=key))
    page = list(events.order_by("-revision", "key")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    users = _audited_writes(
        cluster_id=cluster_id,
        changes=[(decode_key(bytes(e.key)), e.revision) for e in page],
    )
    entries = []
    for event in page:
        kept = event.prev_value
        entries.append(
            {
                "key": decode_key(bytes(event.key)),
                "revision": event.revision,
                "deleted_at": _unix(event.observed_at),
                **_value_fields(None if kept is None else bytes(kept)),
                "value_size": event.prev_value_size,
                "changed_by": _changed_by(users, event.revision),
            }
        )
    last = page[-1] if more else None
    return {
        "entries": entries,
        "next_cursor": None if last is None else _cursor_encode(last.revision, bytes(last.key)),
    }
