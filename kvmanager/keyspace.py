"""Low-level v3 keyspace helpers shared by selectors and services: ranges, pages, value codec.

Every range goes through the gateway's typed `range_page` (failover, timeouts, token) and is
read page by page at one revision, so a listing is a consistent snapshot that never has to fit in
one gRPC message.
"""

import base64
import binascii
from collections.abc import Iterator

from etcdgateway import ClusterGateway, EtcdError, EtcdResponseTooLarge, RangePage
from etcdgateway.kv import prefix_end as prefix_end  # selectors import it from here

KEYS_PAGE = 20000  # keys-only: ~40 B/key, ~1 MB a page; etcd 3.4 counts the rest per page
VALUES_PAGE = 256  # with values: shrunk on demand when a page is too big for one message


def encode_key(key: str) -> bytes:
    return key.encode("utf-8")


def decode_key(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        # Keys written by other tools may not be UTF-8; show them rather than fail the listing.
        return raw.decode("utf-8", errors="replace")


def value_fields(raw: bytes) -> dict:
    """`{"value": text}` for UTF-8 values, `{"value": b64, "encoding": "base64"}` otherwise."""
    try:
        return {"value": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(raw).decode("ascii"), "encoding": "base64"}


def decode_value(value: str, encoding: str | None) -> bytes:
    """The bytes a client sent: UTF-8 text, or base64 when `encoding` is "base64"."""
    if encoding == "base64":
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError("value is not valid base64") from exc
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a "\\udXXX" JSON escape
        raise ValueError("value is not valid UTF-8 text (send it base64-encoded)") from exc


def range_page(
    gateway: ClusterGateway,
    start: bytes,
    end: bytes,
    *,
    limit: int,
    keys_only: bool,
    revision: int = 0,
) -> RangePage:
    return gateway.range_page(start, end, limit=limit, keys_only=keys_only, revision=revision)


def count_range(gateway: ClusterGateway, start: bytes, end: bytes, *, revision: int = 0) -> int:
    return gateway.range_count(start, end, revision=revision)


def iter_pages(
    gateway: ClusterGateway,
    start: bytes,
    end: bytes,
    *,
    keys_only: bool,
    page_size: int | None = None,
) -> Iterator[RangePage]:
    """The pages of [start, end) in key order, each read at the first page's revision.

    Pages, not KeyValues: a reader of a whole keyspace walks `page.keys()` or `page.rows(...)`
    so no KeyValue is built per key (see `RangePage`).
    """
    page_size = page_size or (KEYS_PAGE if keys_only else VALUES_PAGE)
    revision = 0
    while True:
        try:
            page = range_page(
                gateway, start, end, limit=page_size, keys_only=keys_only, revision=revision
            )
        except EtcdResponseTooLarge:
            # The page of big values is over our receive limit: ask for fewer at a time.
            if page_size == 1:
                raise
            page_size = max(1, page_size // 4)
            continue
        revision = revision or page.revision
        yield page
        if not page.more or not len(page):
            return
        start = page.item(-1).key + b"\x00"


def lease_ttls(gateway: ClusterGateway, lease_ids: set[int]) -> dict[int, int]:
    """Remaining TTL per lease: one TimeToLive per distinct lease (not one per key)."""
    ttls = {}
    for lease_id in lease_ids:
        try:
            ttl = gateway.lease_ttl(lease_id)
        except EtcdError:
            ttls[lease_id] = 0
            continue
        ttls[lease_id] = max(0, ttl)
    return ttls
