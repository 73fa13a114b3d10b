"""Writes of the kvmanager app: put and delete on v3 and v2, each audited (success and failure).

Audit entries follow the reference: operation `put` / `delete`, target = key, params a JSON
string (`ttl`, `dir`, `tab_id`, plus the value's size — never the value itself), result `ok` or
the error message.
"""

import json
import time
from dataclasses import dataclass

from django.conf import settings

from audit.services import audit_record
from etcdgateway import (
    ClusterGateway,
    EtcdError,
    EtcdRequestTooLarge,
)
from etcdgateway.v2 import V2Keys
from etcdmonitor_site.errors import TooLarge
from kvmanager.keyspace import encode_key
from kvmanager.selectors import key_get, v2_node

MAX_TTL = 9_000_000_000  # etcd's MaxLeaseTTL; larger TTLs are refused by the server anyway


class ValueTooLarge(TooLarge):
    """A value over KV_MAX_VALUE_SIZE."""

    code = "value_too_large"

    def __init__(self, size: int, limit: int):
        self.size, self.limit = size, limit
        super().__init__(f"value is {size} bytes; the limit (KV_MAX_VALUE_SIZE) is {limit} bytes")


@dataclass(frozen=True)
class Actor:
    """Who asked, for the audit log."""

    username: str
    client_ip: str | None = None
    tab_id: str = "default"


def _audit(operation: str, *, actor: Actor, key: str, params: dict, started: float, error=None):
    audit_record(
        operation=operation,
        username=actor.username or "anonymous",
        target=key if actor.tab_id == "default" else f"[tab={actor.tab_id}] {key}",
        params=json.dumps({**params, "tab_id": actor.tab_id}),
        result="ok" if error is None else str(error),
        duration_ms=int((time.monotonic() - started) * 1000),
        success=error is None,
        client_ip=actor.client_ip,
    )


def _check_size(value: bytes) -> None:
    if len(value) > settings.KV_MAX_VALUE_SIZE:
        raise ValueTooLarge(len(value), settings.KV_MAX_VALUE_SIZE)


def _sized(exc: Exception, size: int) -> Exception:
    """A size refusal names the value's size, so the audit row and the client see both."""
    if isinstance(exc, EtcdRequestTooLarge):
        return EtcdRequestTooLarge(f"value of {size} bytes: {exc.message}", endpoint=exc.endpoint)
    return exc


def kv_put(
    *, gateway: ClusterGateway, key: str, value: bytes, ttl: int | None, actor: Actor
) -> dict:
    """Create or update a v3 key and return it re-read.

    `ttl` None keeps the key's current lease (the reference dropped it on every edit), 0 detaches
    any lease, N > 0 grants a new N-second lease. Raises ValueTooLarge or EtcdError.
    """
    started = time.monotonic()
    params = {"ttl": ttl, "value_size": len(value)}
    try:
        _check_size(value)
        raw_key = encode_key(key)
        gateway.put(raw_key, value, ttl=ttl)
        node = key_get(gateway=gateway, key=key)
    except (EtcdError, ValueTooLarge) as exc:
        error = _sized(exc, len(value))
        _audit("put", actor=actor, key=key, params=params, started=started, error=error)
        if error is exc:
            raise
        raise error from exc
    _audit("put", actor=actor, key=key, params=params, started=started)
    return node


def kv_delete(*, gateway: ClusterGateway, key: str, dir: bool, actor: Actor) -> int:
    """Delete a v3 key; with `dir` also everything under `key + separator`, in one transaction.

    Never touches siblings that merely share the prefix (`/ab` survives deleting `/a`). For the
    root (`key` == separator) a dir delete removes every key starting with the separator.
    Returns the number of keys deleted; deleting a missing key succeeds with 0.
    """
    started = time.monotonic()
    separator = settings.KV_SEPARATOR
    raw_key = encode_key(key)
    base = None
    if dir:
        base = raw_key if key == separator else encode_key(key + separator)
    try:
        deleted = gateway.delete(raw_key, prefix=base)
    except EtcdError as exc:
        _audit("delete", actor=actor, key=key, params={"dir": dir}, started=started, error=exc)
        raise
    _audit("delete", actor=actor, key=key, params={"dir": dir}, started=started)
    return deleted


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
    started = time.monotonic()
    params = {"ttl": ttl, "dir": dir, "value_size": len(value.encode("utf-8"))}
    client = V2Keys(gateway)
    try:
        _check_size(value.encode("utf-8"))
        effective_ttl = ttl
        if ttl is None:
            try:
                effective_ttl = client.get(key).get("ttl") or None
            except EtcdError as exc:
                if exc.status_code != 404:
                    raise
        node = v2_node(client.set(key, value="" if dir else value, ttl=effective_ttl, dir=dir))
    except (EtcdError, ValueTooLarge) as exc:
        error = _sized(exc, params["value_size"])
        _audit("put", actor=actor, key=key, params=params, started=started, error=error)
        if error is exc:
            raise
        raise error from exc
    _audit("put", actor=actor, key=key, params=params, started=started)
    return node


def v2_delete(*, gateway: ClusterGateway, key: str, dir: bool, actor: Actor) -> None:
    """Delete a v2 key; with `dir`, the directory and everything in it."""
    started = time.monotonic()
    try:
        V2Keys(gateway).delete(key, dir=dir)
    except EtcdError as exc:
        _audit("delete", actor=actor, key=key, params={"dir": dir}, started=started, error=exc)
        raise
    _audit("delete", actor=actor, key=key, params={"dir": dir}, started=started)
