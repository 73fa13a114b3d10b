"""Typed results of the gateway's v3 operations: apps never see a protobuf message."""

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import NamedTuple


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with `prefix` (etcd's range_end)."""
    for index in range(len(prefix) - 1, -1, -1):
        if prefix[index] < 0xFF:
            return prefix[:index] + bytes([prefix[index] + 1])
    return b"\x00"  # every key from `prefix` on


class KeyValue(NamedTuple):
    """One key of a range. `value` is b"" in keys-only ranges; `lease` 0 means none.

    A named tuple rather than a dataclass: a 100 k-key tree builds one per key, and a tuple is
    built in a fraction of the time of a frozen dataclass (measured).
    """

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


_fields_of = attrgetter(*KeyValue._fields)
_as_key_value = partial(tuple.__new__, KeyValue)


def key_values(messages: Iterable) -> tuple[KeyValue, ...]:
    """Protobuf KeyValues as KeyValue tuples. map/attrgetter/tuple.__new__ run in C: half the
    time of a Python-level loop over a 100 k-key tree (measured)."""
    return tuple(map(_as_key_value, map(_fields_of, messages)))


@dataclass(frozen=True)
class RangePage:
    """One Range reply: `kvs` in key order, `more` when the limit cut it short, `count` the
    number of keys in the range as etcd reports it, `revision` the store's revision it was read
    at."""

    kvs: tuple[KeyValue, ...]
    more: bool
    count: int
    revision: int


class Deletion(NamedTuple):
    """A delete's outcome: how many keys went, and the store's revision after it (the
    revision of the deletes themselves when `deleted` > 0)."""

    deleted: int
    revision: int


@dataclass(frozen=True)
class KeyspaceHash:
    """HashKV of one member: the hash of its MVCC keyspace up to `revision`."""

    hash: int
    revision: int
    compact_revision: int


class WatchEvent(NamedTuple):
    """One change seen by a watch. `type` is "put" or "delete"; `revision` is the change's own
    (a delete's is the revision that deleted the key); `value` is b"" for a delete; `lease` 0
    means none; `prev_value` is the value before the change when the watch asked for prev_kv
    and the key existed (None otherwise)."""

    type: str
    key: bytes
    revision: int
    value: bytes
    lease: int
    prev_value: bytes | None


@dataclass(frozen=True)
class WatchBatch:
    """The events of one watch response, in revision order (etcd never splits a revision across
    responses). `revision` is the store's revision when etcd sent it; an empty batch is the
    watch's creation or a progress notification."""

    events: tuple[WatchEvent, ...]
    revision: int
