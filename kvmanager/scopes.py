"""KV prefix scopes (issue 21): the one place that decides which keys a user sees and writes.

A user's `AccountProfile.kv_scopes` may narrow, per cluster (or "*"), the v3 keys they read and
write to lists of raw key prefixes (accounts.selectors.kv_scope_entry reads it). Selectors and
services ask the `Scope` given to them (None: every key):

- reads intersect their key ranges with the read prefixes (`ranges`), so keys outside are never
  fetched: trees, listings, search, counts; a single key outside is "not found"; the journal's
  history and deletes are filtered the same way (`journal_filter`). A tree therefore shows only
  the path down to a prefix, never a sibling directory's name.
- writes outside the write prefixes are refused with `ScopeDenied` (403 `permission_denied`),
  recorded by the write's own audit entry as a failure.
- the live watch delivers only events inside the read prefixes (`can_read_raw`).
- v2 keys are refused to a scoped user altogether (`refuse_v2`): v2 is a separate keyspace whose
  directories are nodes of their own, and a half-applied prefix rule there would leak names.
"""

from dataclasses import dataclass

from django.db.models import Q

from accounts.selectors import kv_scope_entry
from audit.services import Actor, audit_record
from etcdmonitor_site.errors import Forbidden
from kvmanager.keyspace import encode_key, prefix_end

ALL = b"\x00"  # etcd's "no end" (and the smallest start)


class ScopeDenied(Forbidden):
    """A KV write outside the user's write prefixes (or a scoped user on v2)."""

    code = "permission_denied"


def _normalized(prefixes) -> tuple[bytes, ...]:
    """Sorted raw prefixes, none covered by another (so their ranges are disjoint)."""
    kept: list[bytes] = []
    for raw in sorted({encode_key(p) for p in prefixes or () if isinstance(p, str)}):
        if not any(raw.startswith(earlier) for earlier in kept):
            kept.append(raw)
    return tuple(kept)


def ends_before(a: bytes, b: bytes) -> bool:
    """a < b as range ends, where ALL is past every key."""
    if b == ALL:
        return a != ALL
    return a != ALL and a < b


@dataclass(frozen=True)
class Scope:
    """One user's read and write prefixes on one cluster (raw bytes, normalized)."""

    read: tuple[bytes, ...]
    write: tuple[bytes, ...]
    actor: Actor | None = None

    def can_read_raw(self, key: bytes) -> bool:
        return key.startswith(self.read) if self.read else False

    def can_read(self, key: str) -> bool:
        return self.can_read_raw(encode_key(key))

    def can_write(self, key: str) -> bool:
        return encode_key(key).startswith(self.write) if self.write else False

    def ranges(self, start: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
        """[start, end) ∩ the read prefixes' ranges, in key order and disjoint (ALL as `end`
        means "to the last key"; start ALL the first)."""
        found = []
        for prefix in self.read:
            low = max(start, prefix)
            high = prefix_end(prefix)
            if ends_before(end, high):
                high = end
            if ends_before(low, high):
                found.append((low, high))
        return found

    def journal_filter(self) -> Q:
        """The journal rows (by `key`) inside the read prefixes."""
        where = Q(pk__in=[])
        for prefix in self.read:
            inside = Q(key__gte=prefix)
            end = prefix_end(prefix)
            if end != ALL:
                inside &= Q(key__lt=end)
            where |= inside
        return where

    def require_write(self, *, key: str) -> None:
        """ScopeDenied unless `key` (and so, for a directory delete, everything under it) lies
        within a write prefix."""
        if not self.can_write(key):
            raise ScopeDenied(
                f"permission denied: {key[:200]!r} is outside your write prefixes on this cluster",
                code="permission_denied",
            )


def scope_for(actor: Actor) -> Scope | None:
    """The scope of the actor's user on the actor's cluster; None: every key."""
    entry = kv_scope_entry(user=actor.user, cluster_id=actor.cluster_id or "default")
    if entry is None:
        return None
    return Scope(
        read=_normalized(entry.get("read")), write=_normalized(entry.get("write")), actor=actor
    )


def refuse_v2(scope: Scope | None, *, operation: str, key: str = "") -> None:
    """A scoped user may not use the v2 keyspace: refused (403) and audited as a denial."""
    if scope is None:
        return
    message = "permission denied: v2 keys are not available to a user with KV prefix scopes"
    actor = scope.actor
    if actor is not None:
        audit_record(
            operation=operation,
            username=actor.username,
            target=key[:200] or f"cluster {actor.cluster_id}",
            params={"cluster_id": actor.cluster_id, "keyspace": "v2"},
            result=message,
            success=False,
            client_ip=actor.client_ip,
        )
    raise ScopeDenied(message, code="permission_denied")
