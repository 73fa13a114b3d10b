"""Long-lived responses (server-sent events) served on the event loop, not on Django's threads.

A Django view does the short part of such a request on one of the `WEB_THREADS`: it
authenticates, validates, resolves the cluster and opens what it streams, reserves a slot
(`stream_slot_reserve`: at most `WATCH_MAX_PER_USER` per user, `WATCH_MAX_STREAMS` per process)
and answers `handoff_response()`, an empty response carrying a one-time ticket in an internal
header. `StreamHandoff`, the ASGI layer in front of Django, sees that header, drops the empty
body and runs the ticket's `Stream` on the event loop until it ends; the Django thread is free
as soon as the view returned. A stream that produces from blocking calls (a gRPC watch) does so
on a thread of its own bounded pool (`stream_pool()`), never on Django's.

One sweeper thread per process ends every stream whose session was logged out, expired, or
whose user was deactivated, within `WATCH_SESSION_CHECK_SECONDS` (one query for all streams).

The per-user cap holds across web processes when there are several (a broker is configured):
each slot is also an entry in a Redis sorted set per user, scored by a lease the sweeper renews,
so a process that died frees its users' slots when their leases run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponse

from etcdmonitor_site.errors import RateLimited, Unavailable

logger = logging.getLogger(__name__)

# Set by a view on its (empty) response; never sent to the client: StreamHandoff strips it.
HANDOFF_HEADER = "X-Etcdmonitor-Stream"
_HANDOFF_KEY = HANDOFF_HEADER.lower().encode("latin1")
# Set by StreamHandoff on every request it passes to Django (a client's own is dropped): a view
# served without it (Django's test client, a plain WSGI server) has nobody to hand a stream to.
AVAILABLE_HEADER = b"x-etcdmonitor-streams"
AVAILABLE_META = "HTTP_X_ETCDMONITOR_STREAMS"
# A stream asked to close gets this long to say why and end before it is cut (a client that
# reads nothing never lets the goodbye through).
CLOSE_GRACE_SECONDS = 1.5
# A ticket the ASGI layer never claimed (the view ran without it, e.g. under a test client)
# gives its slot back after this long.
UNCLAIMED_SECONDS = 30.0


class Stream:
    """One long-lived response. Subclasses implement `run(send, receive)`: send the response
    start and body on the event loop, and return when done. `close(reason)` may be called from
    any thread; it must make `run` return soon (StreamHandoff cancels it after a grace)."""

    def __init__(self, *, user_id: int, session_id: int | None):
        self.user_id = user_id
        self.session_id = session_id
        self.closing_reason: str | None = None
        self.slot_id: str | None = None  # set when a slot is attached
        self.attached_at = 0.0
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = threading.Lock()
        self._ended = False  # set on the loop once StreamHandoff is done with the stream

    async def run(self, send, receive) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_close(self, reason: str) -> None:
        """Subclass hook: stop producing and let `run` finish (called once, any thread)."""

    def close(self, reason: str) -> None:
        """End the stream for `reason` (e.g. "session_ended"), from any thread."""
        with self._closing:  # the sweeper, the reader and the loop may all try at once
            if self.closing_reason is not None:
                return
            self.closing_reason = reason
        self.on_close(reason)
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.call_later, CLOSE_GRACE_SECONDS, self._cut)

    def _cut(self) -> None:
        """On the loop, after the grace: cancel the stream's task, and again after each grace
        while it still runs. One cancel is not enough: code it interrupts may swallow it (Python
        3.11's `asyncio.wait_for` does when its awaited result is ready in the same turn), and a
        stream blocked on a client that reads nothing would then hold its connection for ever."""
        if self._ended or self._task is None or self._task.done():
            return
        self._task.cancel()
        self._loop.call_later(CLOSE_GRACE_SECONDS, self._cut)


class _Registry:
    """This process's streams: reserved slots (a view counted them) and running ones."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_user: dict[int, int] = {}
        self.pending: dict[str, Stream] = {}
        self.running: set[Stream] = set()
        self.sweeper: threading.Thread | None = None

    def total(self) -> int:
        return sum(self.by_user.values())


_registry = _Registry()

# Reserve one slot of a user across processes: drop expired leases, refuse at the cap, else add.
_RESERVE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _lease_seconds() -> float:
    return 3 * settings.WATCH_SESSION_CHECK_SECONDS + 10


@functools.cache
def _shared(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


@functools.cache
def _database_tag() -> str:
    """User ids are per database: deployments sharing one Redis must not share counts."""
    db = settings.DATABASES["default"]
    where = f"{db['ENGINE']}|{db.get('HOST')}|{db.get('PORT')}|{db['NAME']}"
    return hashlib.sha256(where.encode()).hexdigest()[:12]


def _shared_key(user_id: int) -> str:
    return f"etcdmonitor:streams:{_database_tag()}:user:{user_id}"


def _shared_client() -> redis.Redis | None:
    """The broker's Redis when several processes serve (None in embedded mode: one process)."""
    return None if settings.EMBEDDED_MODE else _shared(settings.CELERY_BROKER_URL)


def _shared_reserve(user_id: int, slot_id: str) -> bool | None:
    """True / False: reserved / at the cap across processes; None: Redis did not answer (the
    caller counts this process only, rather than refusing every watch)."""
    client = _shared_client()
    if client is None:
        return None
    now = time.time()
    try:
        reserved = client.eval(
            _RESERVE_SCRIPT, 1, _shared_key(user_id), now, settings.WATCH_MAX_PER_USER,
            now + _lease_seconds(), slot_id, int(_lease_seconds()) + 1,
        )  # fmt: skip
    except redis.RedisError as exc:
        logger.warning("stream slots: Redis unavailable, counting this process only: %s", exc)
        return None
    return bool(reserved)


def _shared_release(user_id: int, slot_id: str) -> None:
    client = _shared_client()
    if client is not None:
        with contextlib.suppress(redis.RedisError):  # else the lease runs out instead
            client.zrem(_shared_key(user_id), slot_id)


def _shared_renew(slots: list[tuple[int, str]]) -> None:
    """Extend the leases of this process's slots (the sweeper, every round)."""
    client = _shared_client()
    if client is None or not slots:
        return
    expiry = time.time() + _lease_seconds()
    try:
        with client.pipeline(transaction=False) as pipe:
            for user_id, slot_id in slots:
                pipe.zadd(_shared_key(user_id), {slot_id: expiry}, xx=True)
            pipe.execute()
    except redis.RedisError as exc:
        logger.warning("stream slots: lease renewal failed: %s", exc)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def stream_pool() -> ThreadPoolExecutor:
    """The threads streams produce on: one per stream at most, `WATCH_MAX_STREAMS` in all, so
    no stream ever waits for one (slots are reserved first) and none is Django's."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=settings.WATCH_MAX_STREAMS, thread_name_prefix="stream"
            )
        return _pool


class StreamSlot:
    """A reserved place for one stream of a user; `attach` it to a stream, or `release` it."""

    def __init__(self, user_id: int, slot_id: str):
        self.user_id = user_id
        self.slot_id = slot_id
        self._held = True

    def attach(self, stream: Stream) -> str:
        """The ticket StreamHandoff runs `stream` by (the slot now belongs to the stream)."""
        ticket = secrets.token_urlsafe(24)
        stream.slot_id = self.slot_id
        stream.attached_at = time.monotonic()
        with _registry.lock:
            _registry.pending[ticket] = stream
        self._held = False
        _sweeper_ensure()
        return ticket

    def release(self) -> None:
        if self._held:
            self._held = False
            _slot_free(self.user_id, self.slot_id)


def streams_available(request) -> None:
    """Raise Unavailable (503) unless the request came through StreamHandoff (runmonitor)."""
    if request.META.get(AVAILABLE_META) != "1":
        raise Unavailable(
            "live streams are served by `manage.py runmonitor` only", code="streams_unavailable"
        )


def stream_slot_reserve(*, user_id: int) -> StreamSlot:
    """A slot for one more stream of `user_id`: RateLimited (429) beyond `WATCH_MAX_PER_USER`
    open (across processes when there are several), Unavailable (503) when this process holds
    `WATCH_MAX_STREAMS`."""
    slot_id = secrets.token_hex(8)
    with _registry.lock:
        mine = _registry.by_user.get(user_id, 0)
        if mine >= settings.WATCH_MAX_PER_USER:
            raise RateLimited(
                f"too many live watches: at most {settings.WATCH_MAX_PER_USER} per user",
                code="too_many_watches",
            )
        if _registry.total() >= settings.WATCH_MAX_STREAMS:
            raise Unavailable("the server holds as many live watches as it can", code="busy")
        _registry.by_user[user_id] = mine + 1
    if _shared_reserve(user_id, slot_id) is False:
        _slot_free(user_id, None)
        raise RateLimited(
            f"too many live watches: at most {settings.WATCH_MAX_PER_USER} per user",
            code="too_many_watches",
        )
    return StreamSlot(user_id, slot_id)


def _slot_free(user_id: int, slot_id: str | None) -> None:
    if slot_id is not None:
        _shared_release(user_id, slot_id)
    with _registry.lock:
        left = _registry.by_user.get(user_id, 0) - 1
        if left > 0:
            _registry.by_user[user_id] = left
        else:
            _registry.by_user.pop(user_id, None)


def streams_open(*, user_id: int | None = None) -> int:
    """Slots held in this process (reserved or running), of one user or of all."""
    with _registry.lock:
        if user_id is None:
            return _registry.total()
        return _registry.by_user.get(user_id, 0)


def handoff_response(ticket: str) -> HttpResponse:
    """What the view answers: StreamHandoff replaces it with the ticket's stream."""
    response = HttpResponse(b"", content_type="text/event-stream")
    response[HANDOFF_HEADER] = ticket
    return response


def _claim(ticket: str) -> Stream | None:
    with _registry.lock:
        stream = _registry.pending.pop(ticket, None)
        if stream is not None:
            _registry.running.add(stream)
        return stream


def _finished(stream: Stream) -> None:
    """On the event loop: the Redis part of freeing the slot goes to the pool (no blocking)."""
    with _registry.lock:
        _registry.running.discard(stream)
    _slot_free(stream.user_id, None)
    if stream.slot_id is not None and _shared_client() is not None:
        stream_pool().submit(_shared_release, stream.user_id, stream.slot_id)


class StreamHandoff:
    """ASGI layer in front of Django: a response carrying HANDOFF_HEADER is replaced by the
    ticket's stream, run here on the event loop with the response's other headers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        handoff: dict = {}
        headers = [(k, v) for k, v in scope.get("headers", []) if k != AVAILABLE_HEADER]
        scope = {**scope, "headers": [*headers, (AVAILABLE_HEADER, b"1")]}

        async def intercept(message):
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                ticket = next((v for k, v in headers if k == _HANDOFF_KEY), None)
                if ticket is not None:
                    handoff["ticket"] = ticket.decode("latin1")
                    handoff["headers"] = [
                        (k, v)
                        for k, v in headers
                        if k not in (_HANDOFF_KEY, b"content-length", b"content-type")
                    ]
                    return None
            if "ticket" in handoff:
                return None  # the view's empty body
            return await send(message)

        await self.app(scope, receive, intercept)
        if "ticket" not in handoff:
            return None
        stream = _claim(handoff["ticket"])
        if stream is None:  # never expected: the view registered it a moment ago
            logger.error("stream ticket unknown; answering 500")
            return await _send_internal_error(send)
        stream._loop = asyncio.get_running_loop()
        stream._task = asyncio.current_task()
        stream.headers = handoff["headers"]
        try:
            await stream.run(send, receive)
        except asyncio.CancelledError:
            # Cut after the close grace (a client that does not read): the server then drops
            # the connection. Swallowed only when we asked for it, and then taken back from the
            # task's count, so awaits after this one in the task are not cancelled too.
            if stream.closing_reason is None:
                raise
            asyncio.current_task().uncancel()
        finally:
            stream._ended = True
            stream.close("finished")
            _finished(stream)


async def _send_internal_error(send) -> None:
    body = json.dumps({"error": "internal error", "code": "internal_error"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _sweeper_ensure() -> None:
    with _registry.lock:
        if _registry.sweeper is not None and _registry.sweeper.is_alive():
            return
        _registry.sweeper = threading.Thread(target=_sweep_forever, name="stream-sessions")
        _registry.sweeper.daemon = True
        _registry.sweeper.start()


def _sweep_forever() -> None:
    while True:
        time.sleep(settings.WATCH_SESSION_CHECK_SECONDS)
        try:
            streams_sweep()
        except Exception:  # the next round tries again; a failed round ends nothing
            logger.exception("checking the sessions of live streams failed")


def streams_close_all(reason: str) -> None:
    """End every stream of this process (the server is shutting down)."""
    with _registry.lock:
        streams = [*_registry.running, *_registry.pending.values()]
    for stream in streams:
        stream.close(reason)


def streams_sweep(*, unclaimed_after: float = UNCLAIMED_SECONDS) -> int:
    """End every running or pending stream whose session is no longer live (logged out,
    expired, user deactivated); how many were ended. One query for all of them. Tickets
    unclaimed for `unclaimed_after` seconds give their slots back."""
    from accounts.selectors import live_session_ids

    now = time.monotonic()
    with _registry.lock:
        unclaimed = [
            ticket
            for ticket, stream in _registry.pending.items()
            if now - stream.attached_at >= unclaimed_after
        ]
        abandoned = [_registry.pending.pop(ticket) for ticket in unclaimed]
        streams = [*_registry.running, *_registry.pending.values()]
    for stream in abandoned:
        stream.close("unclaimed")
        _slot_free(stream.user_id, stream.slot_id)
    _shared_renew([(s.user_id, s.slot_id) for s in streams if s.slot_id])
    watched = {s.session_id for s in streams if s.session_id is not None}
    if not watched:
        return 0
    try:
        live = live_session_ids(ids=watched)
    finally:
        connection.close()  # this thread's own; a round every few seconds needs no pool
    ended = 0
    for stream in streams:
        if stream.session_id is not None and stream.session_id not in live:
            stream.close("session_ended")
            ended += 1
    return ended
