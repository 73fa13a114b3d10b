"""Reads of the kvmanager app: cluster info, key trees, one-level listings, search, single keys.

Node JSON is the reference's: `{"key", "value"?, "dir", "ttl"?, "createdIndex"?, "modifiedIndex"?,
"version"?, "nodes"?}`, plus `"encoding": "base64"` on values that are not UTF-8. Unlike the
reference, a real key with an empty value carries `"value": ""` (empty values are values).
"""

import base64
import binascii
import contextlib
import json
from collections.abc import Iterator
from itertools import chain

from django.conf import settings

from etcdgateway import (
    ClusterGateway,
    EtcdAuthFailed,
    EtcdError,
    EtcdNotFound,
    EtcdPermissionDenied,
    KeyValue,
    RangePage,
)
from etcdgateway.v2 import V2Keys
from etcdmonitor_site.errors import InvalidInput
from kvmanager import scopes
from kvmanager.keyspace import (
    count_range,
    decode_key,
    encode_key,
    iter_pages,
    lease_ttls,
    prefix_end,
    range_page,
    value_fields,
)
from kvmanager.scopes import ALL, Scope

LIST_PAGE = 1000
STREAM_DEPTH = 2  # tree levels streamed node by node; deeper subtrees are dumped in batches
STREAM_BATCH = 512


class InvalidCursor(InvalidInput):
    """A `cursor` that this server did not hand out for this prefix."""

    code = "invalid_cursor"


def format_size(size: int) -> str:
    """The reference's `size_str`: 1024-based, two decimals, `N B` below a KiB."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.2f} {unit}"
    return f"{size} B"


# --- v3 -------------------------------------------------------------------------------------


def cluster_info(*, gateway: ClusterGateway, scope: Scope | None = None) -> dict:
    """`connect`: version, leader member name, DB size of the member that answered.

    etcd 3.5 answers Status to root only; for another user the version comes from the
    member's public `/version` and the leader and size stay unknown (never guessed). Names no
    key, so a KV scope changes nothing here.
    """
    try:
        status = gateway.status()
    except EtcdAuthFailed:
        raise
    except EtcdPermissionDenied:
        return {"version": gateway.server_version(), "name": "", "size": None, "size_str": ""}
    leader = next((m for m in gateway.members() if m.id == status.leader_id), None)
    return {
        "version": status.version,
        "name": leader.name if leader else "",
        "size": status.db_size,
        "size_str": format_size(status.db_size),
    }


def _meta(kv) -> dict:
    meta = {}
    if kv.create_revision:
        meta["createdIndex"] = kv.create_revision
    if kv.mod_revision:
        meta["modifiedIndex"] = kv.mod_revision
    if kv.version:
        meta["version"] = kv.version
    return meta


def key_get(*, gateway: ClusterGateway, key: str, scope: Scope | None = None) -> dict:
    """One key with value, remaining TTL and revisions; `EtcdNotFound` when absent (or outside
    the user's read prefixes: such keys do not exist for them)."""
    if scope is not None and not scope.can_read(key):
        raise EtcdNotFound(f"key not found: {key}")
    raw = encode_key(key)
    page = range_page(gateway, raw, b"", limit=1, keys_only=False)
    if not page.kvs:
        raise EtcdNotFound(f"key not found: {key}")
    return kv_node(gateway=gateway, kv=page.kvs[0])


def kv_node(*, gateway: ClusterGateway, kv: KeyValue) -> dict:
    """The node `get` answers for a key already read: value, revisions, remaining TTL."""
    node = {"key": decode_key(kv.key), **value_fields(kv.value), "dir": False, **_meta(kv)}
    if kv.lease:
        ttl = lease_ttls(gateway, {kv.lease})[kv.lease]
        if ttl:
            node["ttl"] = ttl
    return node


def _scoped(scope: Scope | None, ranges: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The ranges as they are, or cut to the scope's read prefixes (keys outside never read)."""
    if scope is None:
        return ranges
    return [part for start, end in ranges for part in scope.ranges(start, end)]


def _subtree_pages(
    gateway: ClusterGateway,
    key: str,
    separator: str,
    *,
    keys_only: bool,
    scope: Scope | None = None,
) -> Iterator[RangePage]:
    """The key itself and everything under `key + separator` (all keys for the root), as pages;
    with a scope, only what lies inside its read prefixes."""
    if key == separator:
        ranges = [(ALL, ALL)]
    else:
        own = None
        if scope is None or scope.can_read(key):
            # A user granted `/app/` may not read the key `/app` itself; its subtree still shows.
            with contextlib.suppress(EtcdPermissionDenied):
                own = range_page(gateway, encode_key(key), b"", limit=1, keys_only=keys_only)
        if own is not None:
            yield own
        base = encode_key(key + separator)
        ranges = [(base, prefix_end(base))]
    for start, end in _scoped(scope, ranges):
        yield from iter_pages(gateway, start, end, keys_only=keys_only)


# The fields a tree node shows, as `RangePage.rows` hands them out (indexes used below).
TREE_FIELDS = ("key", "create_revision", "mod_revision", "version")
TREE_VALUE_FIELDS = (*TREE_FIELDS, "value", "lease")


def key_tree(
    *, gateway: ClusterGateway, key: str, with_values: bool, scope: Scope | None = None
) -> dict:
    """The tree under `key` on the separator boundary (`/a` never includes `/ab`).

    With a KV scope only keys inside the read prefixes are read, so the directories shown are
    exactly the paths down to them: no other directory's name is revealed.

    Node keys are literal key prefixes, so a directory's key plus the separator is exactly the
    prefix its children share: deleting a directory node deletes what the tree showed under it.
    Keys without a leading separator hang under the root as their own top-level directories.
    """
    separator = settings.KV_SEPARATOR
    is_root = key == separator
    root: dict = {"key": key, "dir": True}
    index: dict[str, dict] = {}
    leased: list[tuple[dict, int]] = []
    last_parent_key, last_parent = None, root

    def parent_for(parent_key: str) -> dict:
        # Iterative on purpose: a self-recursive closure is a reference cycle that kept each
        # 100 k-node tree alive until the next cyclic GC.
        missing = []
        probe = parent_key
        while True:
            if probe == key or (is_root and probe == ""):
                node = root
                break
            node = index.get(probe)
            if node is not None:
                break
            missing.append(probe)
            cut = probe.rfind(separator)
            probe = probe[:cut] if cut >= 0 else ""
        node["dir"] = True
        for probe in reversed(missing):
            child = index[probe] = {"key": probe, "dir": True}
            node.setdefault("nodes", []).append(child)
            node = child
        return node

    fields = TREE_VALUE_FIELDS if with_values else TREE_FIELDS
    pages = _subtree_pages(gateway, key, separator, keys_only=not with_values, scope=scope)
    # The hot loop of a 100 k-key tree: plain tuples read one by one (chain and the rows run in
    # C), never a KeyValue per key (see RangePage). Existing keys always have all three
    # revisions.
    for row in chain.from_iterable(page.rows(*fields) for page in pages):
        name = decode_key(row[0])
        node = {
            "key": name,
            "dir": False,
            "createdIndex": row[1],
            "modifiedIndex": row[2],
            "version": row[3],
        }
        if with_values:
            node.update(value_fields(row[4]))
        if name == key:
            root.update(node, dir=True)
            node = root
        else:
            cut = name.rfind(separator)
            parent_key = name[:cut] if cut >= 0 else ""
            if parent_key != last_parent_key:
                last_parent_key, last_parent = parent_key, parent_for(parent_key)
            last_parent["dir"] = True
            last_parent.setdefault("nodes", []).append(node)
            index[name] = node
        if with_values and row[5]:
            leased.append((node, row[5]))
    if leased:
        ttls = lease_ttls(gateway, {lease for _, lease in leased})
        for node, lease in leased:
            if ttls.get(lease):
                node["ttl"] = ttls[lease]
    return root


def stream_tree_json(root: dict) -> Iterator[str]:
    """`{"node": root}` as JSON chunks, so a 100 k-key tree is never one string in memory."""
    yield '{"node":'
    yield from _stream_node(root, 0)
    yield "}"


def _stream_node(node: dict, depth: int) -> Iterator[str]:
    children = node.get("nodes")
    if not children or depth >= STREAM_DEPTH:
        yield json.dumps(node, ensure_ascii=False)
        return
    head = {k: v for k, v in node.items() if k != "nodes"}
    yield json.dumps(head, ensure_ascii=False)[:-1] + ',"nodes":['
    for start in range(0, len(children), STREAM_BATCH):
        if start:
            yield ","
        batch = children[start : start + STREAM_BATCH]
        if depth + 1 >= STREAM_DEPTH or not any("nodes" in child for child in batch):
            yield json.dumps(batch, ensure_ascii=False)[1:-1]
        else:
            for position, child in enumerate(batch):
                if position:
                    yield ","
                yield from _stream_node(child, depth + 1)
    yield "]}"


def encode_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str, base: bytes) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise InvalidCursor("invalid cursor") from exc
    if not raw.startswith(base) or raw == b"":
        raise InvalidCursor("invalid cursor")
    return raw


def list_base(prefix: str, separator: str) -> str:
    """The key prefix a listing's children share: `/a` → `/a/`; `""` (the root) stays empty."""
    return prefix if prefix == "" or prefix.endswith(separator) else prefix + separator


def key_list(
    *,
    gateway: ClusterGateway,
    prefix: str,
    cursor: str | None,
    limit: int,
    scope: Scope | None = None,
) -> dict:
    """One level under `prefix`: child keys and child directories with their key counts.

    `prefix` "" is the whole keyspace's top level (keys without a leading separator included);
    each directory item carries the `prefix` to list it with.

    Keys-only pages at one revision; once a child directory is seen its keys are skipped in the
    page, and if it outlasts the page the next range starts past it (its remaining keys are
    counted with a count-only range, never transferred). With a KV scope the ranges are cut to
    its read prefixes (one after the other, at the same revision), so directories and counts
    hold only the keys the user may see.
    """
    separator = settings.KV_SEPARATOR
    sep = encode_key(separator)
    base_key = list_base(prefix, separator)
    base = encode_key(base_key)
    end = prefix_end(base) if base else b"\x00"
    start = decode_cursor(cursor, base) if cursor else (base or b"\x00")
    items: list[dict] = []
    open_dir: dict | None = None
    open_prefix = b""
    next_cursor: bytes | None = None
    revision = 0
    ranges = _scoped(scope, [(start, end)])
    for start, end in ranges:
        while True:
            page = range_page(
                gateway, start, end, limit=LIST_PAGE, keys_only=True, revision=revision
            )
            revision = revision or page.revision
            for kv in page.kvs:
                if open_dir is not None and kv.key.startswith(open_prefix):
                    open_dir["count"] += 1
                    continue
                open_dir = None
                if len(items) >= limit:
                    next_cursor = kv.key
                    break
                rest = kv.key[len(base) :]
                cut = rest.find(sep)
                if cut < 0:
                    items.append({"key": decode_key(kv.key), "dir": False, **_meta(kv)})
                    continue
                dir_key = base + rest[:cut]
                open_prefix = dir_key + sep
                # `prefix` is what to list next; the key "" (all `/…` keys under the root) shows
                # as "/".
                open_dir = {
                    "key": decode_key(dir_key) or separator,
                    "dir": True,
                    "count": 1,
                    "prefix": decode_key(open_prefix),
                }
                items.append(open_dir)
            if next_cursor is not None or not page.more or not page.kvs:
                break
            if open_dir is not None:
                # Skip the rest of the open directory (to the range's end at most): counted,
                # never transferred. It stays open: the next range may go on inside it.
                jump = prefix_end(open_prefix)
                stop = end if scopes.ends_before(end, jump) else jump
                rest_start = page.kvs[-1].key + b"\x00"
                open_dir["count"] += count_range(gateway, rest_start, stop, revision=revision)
                start = stop
                if start == ALL or (end != ALL and start >= end):
                    break
            else:
                start = page.kvs[-1].key + b"\x00"
        if next_cursor is not None:
            break
    return {
        "prefix": prefix,
        "nodes": items,
        "next_cursor": encode_cursor(next_cursor) if next_cursor is not None else None,
    }


def dir_count(*, gateway: ClusterGateway, key: str, scope: Scope | None = None) -> int:
    """How many keys deleting `key` as a directory removes: the key itself and every key under
    `key + separator` (for the root, every key starting with the separator), as `kv_delete`.

    Count-only ranges: nothing is transferred however large the directory. A hint for the
    confirmation, so writes between the count and the delete may change the real number.
    With a KV scope only the keys inside its read prefixes are counted.
    """
    separator = settings.KV_SEPARATOR
    raw = encode_key(key)
    if key == separator:
        ranges = [(raw, prefix_end(raw))]
    else:
        base = encode_key(key + separator)
        ranges = [(raw, raw + b"\x00"), (base, prefix_end(base))]
    return sum(count_range(gateway, start, end) for start, end in _scoped(scope, ranges))


def key_search(
    *,
    gateway: ClusterGateway,
    prefix: str,
    query: str,
    limit: int,
    cursor: str | None,
    scope: Scope | None = None,
) -> dict:
    """Keys under raw `prefix` containing `query` (case-insensitive), at most `limit` of them.

    Streams keys-only pages and stops at the limit; `truncated` says that keys remain unscanned.
    With a KV scope only the read prefixes' keys are scanned.
    """
    base = encode_key(prefix)
    end = prefix_end(base) if base else b"\x00"
    start = decode_cursor(cursor, base) if cursor else (base or b"\x00")
    needle = query.lower()
    matches: list[dict] = []
    scanned = 0
    next_cursor = None
    # Keys only, as bytes: a KeyValue is built for the matches alone (see RangePage).
    pages = chain.from_iterable(
        iter_pages(gateway, low, high, keys_only=True)
        for low, high in _scoped(scope, [(start, end)])
    )
    for page in pages:
        for index, raw in enumerate(page.keys()):
            if len(matches) >= limit:
                next_cursor = raw
                break
            scanned += 1
            name = decode_key(raw)
            if needle in name.lower():
                matches.append({"key": name, "dir": False, **_meta(page.item(index))})
        if next_cursor is not None:
            break
    return {
        "prefix": prefix,
        "q": query,
        "nodes": matches,
        "scanned": scanned,
        "truncated": next_cursor is not None,
        "next_cursor": encode_cursor(next_cursor) if next_cursor is not None else None,
    }


# --- v2 -------------------------------------------------------------------------------------


def v2_node(raw: dict, *, with_values: bool = True) -> dict:
    """A v2 API node in the reference's shape (children sorted by key, ttl only when > 0)."""
    node: dict = {"key": raw.get("key", "/"), "dir": bool(raw.get("dir"))}
    if with_values and not node["dir"]:
        node["value"] = raw.get("value", "")
    if raw.get("ttl", 0) > 0:
        node["ttl"] = raw["ttl"]
    for field in ("createdIndex", "modifiedIndex"):
        if raw.get(field):
            node[field] = raw[field]
    children = raw.get("nodes") or []
    if children:
        node["nodes"] = [
            v2_node(child, with_values=with_values)
            for child in sorted(children, key=lambda c: c.get("key", ""))
        ]
    return node


def v2_cluster_info(*, gateway: ClusterGateway, scope: Scope | None = None) -> dict:
    """`v2/connect`: proves v2 answers, then borrows v3 Status for version, leader and size.
    Every v2 read refuses a user with a KV scope (kvmanager.scopes.refuse_v2)."""
    scopes.refuse_v2(scope, operation="kv_connect")
    V2Keys(gateway).get(settings.KV_SEPARATOR)
    try:
        return cluster_info(gateway=gateway)
    except EtcdError:
        return {"version": "v2", "name": "", "size": 0, "size_str": "-"}


def v2_key_get(*, gateway: ClusterGateway, key: str, scope: Scope | None = None) -> dict:
    scopes.refuse_v2(scope, operation="kv_get", key=key)
    return v2_node(V2Keys(gateway).get(key))


def v2_key_tree(
    *,
    gateway: ClusterGateway,
    key: str,
    with_values: bool,
    scope: Scope | None = None,
    operation: str = "kv_getpath",
) -> dict:
    """The recursive v2 tree under `key`; a missing key is an empty directory. `operation`
    names a scoped user's refusal in the audit log (`kv_keys` for the whole tree)."""
    scopes.refuse_v2(scope, operation=operation, key=key)
    try:
        raw = V2Keys(gateway).get(key, recursive=True)
    except EtcdNotFound:
        return {"key": key, "dir": True}
    return v2_node(raw, with_values=with_values)


def v2_dir_count(*, gateway: ClusterGateway, key: str, scope: Scope | None = None) -> int:
    """How many keys (not directories) deleting the v2 directory `key` removes; 1 for a key."""
    scopes.refuse_v2(scope, operation="kv_count", key=key)

    def leaves(node: dict) -> int:
        if not node.get("dir"):
            return 1
        return sum(leaves(child) for child in node.get("nodes") or [])

    try:
        raw = V2Keys(gateway).get(key, recursive=True)
    except EtcdNotFound:
        return 0
    return leaves(raw)


def v2_key_list(
    *,
    gateway: ClusterGateway,
    prefix: str,
    cursor: str | None,
    limit: int,
    scope: Scope | None = None,
) -> dict:
    """One level of a v2 directory (native in v2), paginated by an opaque cursor."""
    scopes.refuse_v2(scope, operation="kv_list", key=prefix)
    directory = prefix or "/"
    try:
        raw = V2Keys(gateway).get(directory)
    except EtcdNotFound:
        raw = {"key": directory, "dir": True}
    children = sorted(raw.get("nodes") or [], key=lambda c: c.get("key", ""))
    after = decode_cursor(cursor, b"").decode("utf-8", "replace") if cursor else None
    if after is not None:
        children = [c for c in children if c.get("key", "") >= after]
    page = [v2_node(child, with_values=False) for child in children[:limit]]
    more = len(children) > limit
    return {
        "prefix": directory,
        "nodes": page,
        "next_cursor": encode_cursor(encode_key(children[limit]["key"])) if more else None,
    }
