"""Watch streams: etcd's bidirectional Watch RPC as an iterator of typed `WatchBatch`es.

Apps never see the stream's messages: events arrive as `WatchEvent` tuples, a watch that asked
for compacted revisions raises `EtcdWatchCompacted`, a lost member `EtcdUnavailable`.
"""

import queue
from collections.abc import Iterator

import grpc
from pyetcd import etcdrpc

from etcdgateway.errors import EtcdError, EtcdUnavailable, EtcdWatchCompacted, translate
from etcdgateway.kv import WatchBatch, WatchEvent

_DELETE = 1  # mvccpb.Event.EventType.DELETE (PUT is 0)
# etcd's WithRequireLeader: a member that loses its leader (partitioned away) cancels the stream
# instead of leaving it open and silently behind.
REQUIRE_LEADER = ("hasleader", "true")


def batch_of(response, *, endpoint: str) -> WatchBatch:
    """A WatchResponse as a batch, or the domain error it carries (compacted, cancelled): the
    one mapping of the sync and the asyncio watch."""
    if response.compact_revision:
        raise EtcdWatchCompacted(response.compact_revision, endpoint=endpoint)
    if response.canceled:
        reason = response.cancel_reason or "no reason given"
        raise EtcdError(f"etcd cancelled the watch: {reason}", endpoint=endpoint)
    return WatchBatch(events=_events(response), revision=response.header.revision)


def _events(response) -> tuple[WatchEvent, ...]:
    """The response's events as tuples; a plain loop over the repeated field (the hot path of
    the journal, measured in bench/journal.py)."""
    events = []
    append = events.append
    for event in response.events:
        kv = event.kv
        prev = event.prev_kv.value if event.HasField("prev_kv") else None
        kind = "delete" if event.type == _DELETE else "put"
        append(WatchEvent(kind, kv.key, kv.mod_revision, kv.value, kv.lease, prev))
    return tuple(events)


class Watch:
    """One open watch stream; iterate it for `WatchBatch`es, `close()` it from any thread.

    The request side is a queue feeding gRPC's request iterator: the create request first, then
    progress requests, and None to half-close. No deadline applies: the stream lives until it is
    closed or fails. Iteration raises `EtcdWatchCompacted` when etcd cancels the watch for
    compaction, another `EtcdError` for any other failure or cancellation, and ends quietly only
    after `close()`.
    """

    def __init__(self, client, create: "etcdrpc.WatchCreateRequest"):
        self.endpoint = client.endpoint
        self._closed = False
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._requests.put(etcdrpc.WatchRequest(create_request=create))
        self._call = client.call(
            lambda raw: etcdrpc.WatchStub(raw.channel).Watch(
                self._outgoing(), metadata=(*(raw.metadata or ()), REQUIRE_LEADER)
            )
        )

    def _outgoing(self) -> Iterator:
        while (request := self._requests.get()) is not None:
            yield request

    def request_progress(self) -> None:
        """Ask etcd for a progress notification (an empty batch carrying the current revision):
        a reply proves the stream is alive even when nothing changes."""
        progress = etcdrpc.WatchRequest(progress_request=etcdrpc.WatchProgressRequest())
        self._requests.put(progress)

    def __iter__(self) -> Iterator[WatchBatch]:
        try:
            for response in self._call:
                yield batch_of(response, endpoint=self.endpoint)
        except grpc.RpcError as exc:
            if self._closed:
                return
            raise translate(exc, endpoint=self.endpoint) from exc
        if not self._closed:
            raise EtcdUnavailable(
                f"{self.endpoint}: the watch stream ended", endpoint=self.endpoint
            )

    def close(self) -> None:
        """End the stream; an iteration in progress stops without an error."""
        self._closed = True
        self._requests.put(None)
        self._call.cancel()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_watch(
    client, start: bytes, end: bytes, *, start_revision: int, prev_kv: bool, ready_timeout: float
) -> Watch:
    """A watch on `client`'s endpoint once its channel is connected (within `ready_timeout`), so
    a dead endpoint fails here, where the gateway can fail over, not at the first read."""

    def ready(raw) -> None:
        try:
            grpc.channel_ready_future(raw.channel).result(timeout=ready_timeout)
        except grpc.FutureTimeoutError:
            raise EtcdUnavailable(
                f"{client.endpoint}: not connected within {ready_timeout:g} s",
                endpoint=client.endpoint,
            ) from None

    client.call(ready)
    create = etcdrpc.WatchCreateRequest(
        key=start, range_end=end, start_revision=start_revision, prev_kv=prev_kv
    )
    return Watch(client, create)
