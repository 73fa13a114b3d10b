"""Writes of the kvmanager app: put and delete on v3 and v2, each audited (success and failure).

Audit entries follow the reference: operation `put` / `delete`, target = key, params a JSON
string (`ttl`, `dir`, `tab_id`, plus the value's size — never the value itself), result `ok` or
the error message. A v3 write that succeeded also records the `revision` it produced, so the
change journal's event at (cluster, revision) names who made it (kvmanager.history).
Reverts and restores are audited as `revert` / `restore`. A write outside the user's KV write
prefixes (kvmanager.scopes) is refused inside its audit entry, so the refusal is recorded under
the write's own name; v2 writes are refused to a scoped user altogether.
"""

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from django.conf import settings

from audit.services import Actor, AuditedAction, audited
from etcdgateway import (
    ClusterGateway,
    EtcdError,
    EtcdRequestTooLarge,
    EtcdRevisionConflict,
)
from etcdgateway.v2 import V2Keys
from etcdmonitor_site.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from kvmanager import history, scopes
from kvmanager.keyspace import encode_key
from kvmanager.selectors import key_get, kv_node, v2_node

MAX_TTL = 9_000_000_000  # etcd's MaxLeaseTTL; larger TTLs are refused by the server anyway


class RevisionConflict(Conflict):
    """A put with `expected_mod_revision` found the key changed, deleted or (create-only)
    present; `current` in the body is the key's node as the transaction read it, or None."""

    code = "revision_conflict"


class ValueTooLarge(TooLarge):
    """A value over KV_MAX_VALUE_SIZE."""

    code = "value_too_large"

    def __init__(self, size: int, limit: int):
        self.size, self.limit = size, limit
        super().__init__(f"value is {size} bytes; the limit (KV_MAX_VALUE_SIZE) is {limit} bytes")


def _key_audited(
    operation: str, *, actor: Actor, key: str, params: dict
) -> AbstractContextManager[AuditedAction]:
    """The audit entry of a key write: a tab's key is named with its tab, and params say which
    cluster (`tab_id`); etcd's refusal or a size refusal is recorded with its message."""
    cluster_id = actor.cluster_id
    return audited(
        operation,
        actor=actor,
        target=key if cluster_id == "default" else f"[tab={cluster_id}] {key}",
        params=json.dumps({**params, "tab_id": cluster_id}),
        failures=(EtcdError, ValueTooLarge, RevisionConflict, InvalidInput, NotFound, Forbidden),
    )


def _writable(*, actor: Actor, key: str) -> None:
    """ScopeDenied unless the actor's KV scope (if any) lets them write `key` (a directory
    delete: everything under it, which the same prefix covers)."""
    scope = scopes.scope_for(actor)
    if scope is not None:
        scope.require_write(key=key)


def _produced(action: AuditedAction, *, actor: Actor, params: dict, revision: int) -> None:
    """Record on the audit entry the revision the write produced (see kvmanager.history)."""
    action.params = history.audit_revision_params(
        params, cluster_id=actor.cluster_id, revision=revision
    )


def _check_size(value: bytes) -> None:
    if len(value) > settings.KV_MAX_VALUE_SIZE:
        raise ValueTooLarge(len(value), settings.KV_MAX_VALUE_SIZE)


@contextmanager
def _size_named(size: int) -> Iterator[None]:
    """etcd's size refusal names the value's size, so the audit row and the client see both."""
    try:
        yield
    except EtcdRequestTooLarge as exc:
        message = f"value of {size} bytes: {exc.message}"
        raise EtcdRequestTooLarge(message, endpoint=exc.endpoint) from exc


def kv_put(
    *,
    gateway: ClusterGateway,
    key: str,
    value: bytes,
    ttl: int | None,
    actor: Actor,
    expected_mod_revision: int | None = None,
) -> dict:
    """Create or update a v3 key and return it re-read.

    `ttl` None keeps the key's current lease (the reference dropped it on every edit), 0 detaches
    any lease, N > 0 grants a new N-second lease. `expected_mod_revision` N > 0 writes only
    while the key is still at mod_revision N (a safe edit), 0 only while it does not exist
    (create-only); otherwise RevisionConflict with the current node (None when the key was
    deleted). Raises ValueTooLarge or EtcdError.
    """
    params = {"ttl": ttl, "value_size": len(value)}
    if expected_mod_revision is not None:
        params["expected_mod_revision"] = expected_mod_revision
    with (
        _key_audited("put", actor=actor, key=key, params=params) as action,
        _size_named(len(value)),
    ):
        _writable(actor=actor, key=key)
        _check_size(value)
        revision = _cas_put(
            gateway=gateway, key=key, value=value, ttl=ttl, expected=expected_mod_revision
        )
        _produced(action, actor=actor, params=params, revision=revision)
        return key_get(gateway=gateway, key=key)


def _cas_put(
    *, gateway: ClusterGateway, key: str, value: bytes, ttl: int | None, expected: int | None
) -> int:
    """The gateway's put (a compare-and-swap when `expected` is set); its revision. A conflict
    becomes RevisionConflict carrying the key as the transaction read it."""
    try:
        return gateway.put(encode_key(key), value, ttl=ttl, expected_mod_revision=expected)
    except EtcdRevisionConflict as exc:
        current = None
        if exc.current is not None:
            current = {
                **kv_node(gateway=gateway, kv=exc.current),
                "mod_revision": exc.current.mod_revision,
            }
        raise RevisionConflict(exc.message, current=current) from exc


def kv_delete(*, gateway: ClusterGateway, key: str, dir: bool, actor: Actor) -> int:
    """Delete a v3 key; with `dir` also everything under `key + separator`, in one transaction.

    Never touches siblings that merely share the prefix (`/ab` survives deleting `/a`). For the
    root (`key` == separator) a dir delete removes every key starting with the separator.
    Returns the number of keys deleted; deleting a missing key succeeds with 0.
    """
    separator = settings.KV_SEPARATOR
    raw_key = encode_key(key)
    base = None
    if dir:
        base = raw_key if key == separator else encode_key(key + separator)
    params = {"dir": dir}
    with _key_audited("delete", actor=actor, key=key, params=params) as action:
        _writable(actor=actor, key=key)
        deletion = gateway.remove(raw_key, prefix=base)
        if deletion.deleted:
            _produced(action, actor=actor, params=params, revision=deletion.revision)
        return deletion.deleted


def kv_revert(
    *,
    gateway: ClusterGateway,
    key: str,
    revision: int,
    actor: Actor,
    expected_mod_revision: int | None = None,
) -> dict:
    """Write back the value `key` had at `revision` (a put there) and return the key re-read.

    A compare-and-swap on the key's current mod_revision: `expected_mod_revision` when the
    caller saw one (the revision its view showed), else the one read here just before; 0 means
    "the key is deleted now" (the revert re-creates it). A key changed meanwhile is a
    RevisionConflict. The lease is kept while the key exists. Audited as `revert` with the
    source revision, the expected one and the revision produced.
    """
    params = {"from_revision": revision}
    with _key_audited("revert", actor=actor, key=key, params=params) as action:
        _writable(actor=actor, key=key)
        value = history.value_at(
            gateway=gateway, cluster_id=actor.cluster_id, key=key, revision=revision
        )
        if expected_mod_revision is None:
            current = gateway.get(encode_key(key))
            expected_mod_revision = 0 if current is None else current.mod_revision
        params.update(value_size=len(value), expected_mod_revision=expected_mod_revision)
        action.params = history.audit_revision_params(
            params, cluster_id=actor.cluster_id, revision=None
        )
        produced = _cas_put(
            gateway=gateway, key=key, value=value, ttl=None, expected=expected_mod_revision
        )
        _produced(action, actor=actor, params=params, revision=produced)
        return key_get(gateway=gateway, key=key)


def kv_restore(*, gateway: ClusterGateway, key: str, revision: int, actor: Actor) -> dict:
    """Bring back the value the delete of `key` at `revision` removed, as a create-only put
    (RevisionConflict when the key exists again); the key re-read. Without a lease: the old
    one has usually expired with its keys. Audited as `restore`."""
    params = {"deleted_revision": revision}
    with _key_audited("restore", actor=actor, key=key, params=params) as action:
        _writable(actor=actor, key=key)
        value = history.deleted_value(cluster_id=actor.cluster_id, key=key, revision=revision)
        params["value_size"] = len(value)
        produced = _cas_put(gateway=gateway, key=key, value=value, ttl=0, expected=0)
        _produced(action, actor=actor, params=params, revision=produced)
        return key_get(gateway=gateway, key=key)


def v2_put(
    *,
    gateway: ClusterGateway,
    key: str,
    value: str,
    ttl: int | None,
    dir: bool,
    actor: Actor,
) -> dict:
    """Create or update a v2 key or directory.

    `ttl` None keeps the node's remaining TTL (v2 itself drops it on a plain set), 0 removes it.
    """
    size = len(value.encode("utf-8"))
    params = {"ttl": ttl, "dir": dir, "value_size": size}
    scopes.refuse_v2(scopes.scope_for(actor), operation="put", key=key)
    client = V2Keys(gateway)
    with _key_audited("put", actor=actor, key=key, params=params), _size_named(size):
        _check_size(value.encode("utf-8"))
        effective_ttl = ttl
        if ttl is None:
            try:
                effective_ttl = client.get(key).get("ttl") or None
            except EtcdError as exc:
                if exc.status_code != 404:
                    raise
        return v2_node(client.set(key, value="" if dir else value, ttl=effective_ttl, dir=dir))


def v2_delete(*, gateway: ClusterGateway, key: str, dir: bool, actor: Actor) -> None:
    """Delete a v2 key; with `dir`, the directory and everything in it."""
    scopes.refuse_v2(scopes.scope_for(actor), operation="delete", key=key)
    with _key_audited("delete", actor=actor, key=key, params={"dir": dir}):
        V2Keys(gateway).delete(key, dir=dir)
