"""Typed results of the gateway's v3 operations: apps never see a protobuf message."""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import FrozenInstanceError, dataclass
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
_key_of = attrgetter("key")


def key_values(messages: Iterable) -> tuple[KeyValue, ...]:
    """Protobuf KeyValues as KeyValue tuples. map/attrgetter/tuple.__new__ run in C: half the
    time of a Python-level loop over a 100 k-key tree (measured)."""
    return tuple(map(_as_key_value, map(_fields_of, messages)))


class RangePage:
    """One Range reply: `kvs` in key order, `more` when the limit cut it short, `count` the
    number of keys in the range as etcd reports it, `revision` the store's revision it was read
    at.

    The page keeps the reply's own key list and builds KeyValue tuples only when asked, once:
    100 k tuples kept alive at once made the cyclic GC run a full collection over the whole
    heap during a keys tree, which cost more than building them (measured, issue 18). Readers
    that walk every key of a big range take `keys()` or `rows()` instead, which hand out bytes
    and plain tuples one by one and keep nothing. `kvs` may be any sequence of objects with
    KeyValue's attributes: a reply's repeated field, or KeyValues.
    """

    __slots__ = ("_items", "_kvs", "count", "more", "revision")

    def __init__(self, kvs: Sequence, more: bool, count: int, revision: int) -> None:
        set_field = object.__setattr__  # read-only to everyone else, as a frozen dataclass
        set_field(self, "_items", kvs)
        set_field(self, "_kvs", None)
        set_field(self, "more", more)
        set_field(self, "count", count)
        set_field(self, "revision", revision)

    def __setattr__(self, name: str, value) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    @property
    def kvs(self) -> tuple[KeyValue, ...]:
        """Every key of the page as a KeyValue, built on first use."""
        if self._kvs is None:
            object.__setattr__(self, "_kvs", key_values(self._items))
        return self._kvs

    def __len__(self) -> int:
        """How many keys the page holds (without building them)."""
        return len(self._items)

    def keys(self) -> tuple[bytes, ...]:
        """The page's keys in order: one C-level pass, no KeyValue built."""
        return tuple(map(_key_of, self._items))

    def item(self, index: int) -> KeyValue:
        """The KeyValue at `index` (negative counts from the end) without building the rest."""
        if self._kvs is not None:
            return self._kvs[index]
        return _as_key_value(_fields_of(self._items[index]))

    def rows(self, *fields: str) -> Iterator[tuple]:
        """Plain tuples of the named KeyValue `fields`, key by key, built as they are read.

        For loops over a whole range that need a few fields of every key: nothing is kept
        between keys, so the cyclic GC is not triggered by them.
        """
        unknown = set(fields) - set(KeyValue._fields)
        if unknown or not fields:
            raise ValueError(f"rows() takes KeyValue fields, not {sorted(unknown) or 'none'}")
        if len(fields) == 1:
            return zip(map(attrgetter(fields[0]), self._items))
        return map(attrgetter(*fields), self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangePage):
            return NotImplemented
        return (self.kvs, self.more, self.count, self.revision) == (
            other.kvs,
            other.more,
            other.count,
            other.revision,
        )

    def __hash__(self) -> int:
        return hash((self.kvs, self.more, self.count, self.revision))

    def __repr__(self) -> str:
        return (
            f"RangePage(kvs={self.kvs!r}, more={self.more!r}, count={self.count!r}, "
            f"revision={self.revision!r})"
        )


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
