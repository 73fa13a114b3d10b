"""Live watch of a key prefix as server-sent events (`GET /api/kv/v3/watch`).

The view opens the etcd watch (so a cluster that cannot be watched is a JSON error, not a
stream) and hands a `WatchStream` to `etcdmonitor_site.streams`. A thread of the streams' pool
reads the gRPC watch and turns each event into its SSE frame; the event loop writes frames,
`: heartbeat` comments after `WATCH_HEARTBEAT_SECONDS` without one, and the goodbye.

Frames: `event: ready` (`{"revision"}`: events after it follow), `event: put|delete`
(`{"key", "revision", "value", "encoding"?, "lease"}`), and a last `event: error`
(`{"error", "code"}`) when the stream ends for a reason the client should know:
`session_ended`, `compacted`, `etcd_unavailable`, `slow_client`, `server_closing`.

A member lost under the watch: the stream resumes from the next revision on another endpoint
(no event lost or repeated), trying for `WATCH_RESUME_SECONDS`; after that it ends with
`etcd_unavailable`. A member that keeps the connection but stops answering (paused, hung) is
found by a progress request on each quiet heartbeat left unanswered until the next one.

A user with a KV scope (kvmanager.scopes) gets only the events of keys inside its read
prefixes, whatever prefix they watch: a watch of a prefix outside them stays silent, as the
keys there do not exist for that user.

A client that stops reading: frames wait in a buffer of at most
`WATCH_BUFFER_BYTES`; beyond it the stream is closed (`slow_client`), never grown or thinned
(a tail that silently skipped events would lie).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

from django.conf import settings

from audit.services import Actor, audit_record
from etcdgateway import ClusterGateway, EtcdError, EtcdWatchCompacted
from etcdgateway.kv import WatchEvent, prefix_end
from etcdmonitor_site.streams import Stream, stream_pool
from kvmanager.keyspace import decode_key, encode_key, value_fields
from kvmanager.scopes import Scope

logger = logging.getLogger(__name__)

HEARTBEAT = b": heartbeat\n\n"
RESUME_PAUSE_SECONDS = 0.5
SILENCE_GRACE_SECONDS = 5.0
REASONS = {
    "session_ended": "the session ended (logged out or expired)",
    "compacted": "etcd compacted the revisions this watch needed",
    "etcd_unavailable": "no etcd member could continue the watch",
    "slow_client": "the client did not read the stream fast enough",
    "server_closing": "the server is shutting down",
}


def frame(event: str, data: dict) -> bytes:
    """One SSE message: `event:` line, one `data:` line of JSON, blank line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def event_frame(event: WatchEvent) -> bytes:
    data = {"key": decode_key(event.key), "revision": event.revision}
    data.update(value_fields(event.value))
    data["lease"] = event.lease
    return frame(event.type, data)


def watch_range(prefix: str) -> tuple[bytes, bytes]:
    """[start, end) of every key starting with `prefix` (empty: the whole keyspace)."""
    if not prefix:
        return b"\x00", b"\x00"
    start = encode_key(prefix)
    return start, prefix_end(start)


def watch_refused(*, actor: Actor, prefix: str, reason: str) -> None:
    """Audit a live watch refused before it started (the per-user or per-process cap)."""
    audit_record(
        operation="kv_watch",
        username=actor.username,
        target=prefix or "(every key)",
        params={"cluster_id": actor.cluster_id},
        result=reason,
        success=False,
        client_ip=actor.client_ip,
    )


class WatchStream(Stream):
    """One client's watch of one prefix; see the module docstring for what it sends."""

    def __init__(
        self,
        *,
        gateway: ClusterGateway,
        prefix: str,
        user_id: int,
        session_id: int | None,
        scope: Scope | None = None,
    ):
        super().__init__(user_id=user_id, session_id=session_id)
        self.gateway = gateway
        self.scope = scope
        self.range = watch_range(prefix)
        self.headers: list = []
        self._lock = threading.Lock()
        self._buffered = 0
        self._queue: asyncio.Queue | None = None
        # Current revision first: it is where the watch starts and where a resume must go on.
        # Read over the watched range itself: an etcd user may be allowed nothing else.
        self.revision = gateway.range_page(*self.range, limit=1, keys_only=True).revision
        self._last = self.revision
        self._heard = time.monotonic()  # the last answer of the current etcd stream
        self._stale = False  # the current etcd stream went silent: resume elsewhere
        self._watch = gateway.watch(*self.range, start_revision=self.revision + 1)

    # --- the event loop side --------------------------------------------------------------

    async def run(self, send, receive) -> None:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        headers = [
            *self.headers,
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"x-accel-buffering", b"no"),  # a proxy in front must not hold frames back
        ]
        if not any(k == b"cache-control" for k, _ in headers):
            headers.append((b"cache-control", b"no-store"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": frame("ready", {"revision": self.revision}),
             "more_body": True}
        )  # fmt: skip
        if self.closing_reason is not None:  # ended while waiting for the loop (a logout)
            self.on_close(self.closing_reason)
        else:
            loop.run_in_executor(stream_pool(), self._read)
        gone = asyncio.ensure_future(self._client_gone(receive))
        heartbeat = settings.WATCH_HEARTBEAT_SECONDS
        try:
            while True:
                try:
                    # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that lands as a
                    # frame arrives, and the cut of a client that reads nothing would be lost.
                    async with asyncio.timeout(heartbeat):
                        chunk = await self._queue.get()
                except TimeoutError:
                    chunk = HEARTBEAT
                    self._check_alive(heartbeat)
                if chunk is None:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                with self._lock:
                    self._buffered -= len(chunk)
            if self.closing_reason == "slow_client":
                # Left unfinished, so the server aborts the connection: a finished response
                # would leave the connection and its unsent bytes to a graceful close, which
                # waits for a client that does not read for ever.
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            self.close("finished")  # the reader thread ends with its watch

    async def _client_gone(self, receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.close("client_gone")

    def on_close(self, reason: str) -> None:
        if reason in REASONS:
            logger.info("live watch of user %s ended: %s", self.user_id, reason)
            self._push(frame("error", {"error": REASONS[reason], "code": reason}), force=True)
        self._push(None, force=True)
        with self._lock:
            watch = self._watch
        watch.close()

    def _check_alive(self, heartbeat: float) -> None:
        """On a quiet interval: ask etcd for progress; when the last request went unanswered
        (a paused or hung member keeps its connection open), drop the stream so the reader
        resumes on another member."""
        with self._lock:
            watch = self._watch
        # A quiet interval plus time for the last progress answer; at least 5 s of it, so a
        # loaded machine's slow answer is not taken for a hung member.
        if time.monotonic() - self._heard > heartbeat + max(heartbeat / 2, SILENCE_GRACE_SECONDS):
            logger.info("watch on %s went silent, resuming elsewhere", watch.endpoint)
            self.gateway.report_unavailable(watch.endpoint, "the watch stream went silent")
            self._stale = True
            watch.close()
        else:
            watch.request_progress()

    # --- the reader thread ----------------------------------------------------------------

    def _push(self, chunk: bytes | None, *, force: bool = False) -> bool:
        """Queue a frame for the loop (None ends the stream); False when the buffer is full."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return True  # not running yet, or gone: nothing to deliver to
        if chunk is not None:
            with self._lock:
                if not force and self._buffered + len(chunk) > settings.WATCH_BUFFER_BYTES:
                    return False
                self._buffered += len(chunk)
        loop.call_soon_threadsafe(queue.put_nowait, chunk)
        return True

    def _read(self) -> None:
        """Blocking: iterate the watch, resuming on another endpoint after a failure."""
        try:
            while self.closing_reason is None:
                try:
                    self._forward(self._watch)
                    if not self._stale:
                        return  # closed on purpose
                    self._stale = False
                    if not self._resume():
                        self.close("etcd_unavailable")
                        return
                except EtcdWatchCompacted:
                    self.close("compacted")
                    return
                except EtcdError as exc:
                    if self.closing_reason is not None:
                        return
                    logger.info("watch lost on %s, resuming: %s", exc.endpoint, exc)
                    self._stale = False
                    if exc.endpoint:  # the next open should try the other members first
                        self.gateway.report_unavailable(exc.endpoint, str(exc))
                    if not self._resume():
                        self.close("etcd_unavailable")
                        return
        except Exception:
            logger.exception("live watch failed")
            self.close("etcd_unavailable")

    def _forward(self, watch) -> None:
        for batch in watch:
            self._heard = time.monotonic()  # progress answers are empty batches
            for event in batch.events:
                if self.scope is not None and not self.scope.can_read_raw(event.key):
                    self._last = event.revision  # not this user's: skipped, never resent
                    continue
                if not self._push(event_frame(event)):
                    self.close("slow_client")
                    return
                self._last = event.revision
            if self.closing_reason is not None:
                return

    def _resume(self) -> bool:
        """Open the watch again after the last delivered revision, on whichever endpoint
        answers, for up to WATCH_RESUME_SECONDS."""
        deadline = time.monotonic() + settings.WATCH_RESUME_SECONDS
        while self.closing_reason is None and time.monotonic() < deadline:
            try:
                watch = self.gateway.watch(*self.range, start_revision=self._last + 1)
            except EtcdError as exc:
                logger.info("watch resume failed: %s", exc)
                time.sleep(RESUME_PAUSE_SECONDS)
                continue
            with self._lock:
                self._watch = watch
                self._heard = time.monotonic()
            if self.closing_reason is not None:
                watch.close()
            return True
        return False
