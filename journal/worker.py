"""The journal worker: follows one cluster's keyspace with a watch and stores every change.

Every followed cluster is a coroutine on one event loop (`manage.py journal` runs all of them on
its main thread), and every database call goes through one `DatabaseThread`: an idle cluster
costs no thread and wakes only to ask etcd for progress (the sync watch cost three threads and
ten wake-ups a second per cluster; measured in docs/PERFORMANCE.md). `ClusterJournal.run()`
still follows one cluster from a thread of its own (tests, bench/journal.py) on a private loop.

Per cluster a reader task moves the watch stream into a bounded queue; the worker drains
whatever has arrived (up to `max_batch` events) into one transaction. Under load the batches
grow by themselves, so a slow commit never turns into one commit per change; when the queue is
full the reader stops reading and gRPC's flow control holds etcd back, never memory.

Failures: an unavailable member or a broken stream → reconnect (another endpoint first) from
the cursor; compaction past the cursor → a gap row, then resync from etcd's oldest kept
revision; a silent stream (a paused member) is found by asking for progress after
`PROGRESS_AFTER` quiet seconds (up to half that more: idle clusters ask together, on a shared
grid) and dropped when no answer comes within `PROGRESS_AFTER` more.
"""

import asyncio
import concurrent.futures
import logging
import math
import queue
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections, connection

from etcdgateway import (
    ClusterGateway,
    EtcdError,
    EtcdUnavailable,
    EtcdWatchCompacted,
    WatchBatch,
    cluster_gateway,
)
from etcdgateway.aiowatch import AsyncGateway
from journal import services
from journal.selectors import journal_position
from journal.services import JournalPolicy

logger = logging.getLogger(__name__)

WHOLE_KEYSPACE = (b"\x00", b"\x00")  # [\0, \0): every key
PROGRESS_AFTER = 10.0
RETRY_DELAYS = (0.5, 1, 2, 5, 10)
# The database thread gives its connection back after this long without work: with a cluster
# followed there is a progress note every PROGRESS_AFTER seconds, so one connection serves the
# whole process (80 idle clusters used to hold 81 of PostgreSQL's default 100).
DB_IDLE_CLOSE = 3 * PROGRESS_AFTER
# Progress notes (liveness for the health check, which allows 60 s) wait this long to be
# written together with the other clusters' notes in one statement.
NOTES_DELAY = PROGRESS_AFTER / 2
_ENDED = object()
_STOP = object()


def gateway_for(cluster_id: str) -> ClusterGateway:
    """The gateway of a journaled cluster; "default" is the configured one."""
    if cluster_id == "default":
        return cluster_gateway()
    from clusters.connection import cluster_gateway as record_gateway
    from clusters.models import Cluster

    return record_gateway(Cluster.objects.get(pk=cluster_id))


def current_revision(gateway: ClusterGateway) -> int:
    """etcd's current revision: the header of a one-key range (no Status: that needs root)."""
    return gateway.range_page(b"\x00", limit=1, keys_only=True).revision


async def next_arrival(arrivals: asyncio.Queue, timeout: float):
    """The next item of `arrivals`; TimeoutError after `timeout` seconds.

    A cancellation always wins: on Python 3.11 `asyncio.wait_for` returned an item that arrived
    as the task was cancelled and dropped the cancellation, so a stopped worker went on.
    """
    async with asyncio.timeout(timeout):
        return await arrivals.get()


class DatabaseThread:
    """The journal's one thread for the ORM: `await db.run(fn, ...)` from the loop runs `fn` there.

    Django must not run on the event loop, and one thread for every cluster means one database
    connection (thread-local) for the process. It blocks on its queue without a timeout while no
    connection is open, so an idle process never wakes it.
    """

    def __init__(self, *, idle_close: float = DB_IDLE_CLOSE, notes_delay: float = NOTES_DELAY):
        self.idle_close = idle_close
        self.notes_delay = notes_delay
        self._notes: dict[str, int] = {}
        self._noted: dict[str, int] = {}  # the last etcd revision noted per cluster
        self._notes_due: asyncio.TimerHandle | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="journal-db", daemon=True)
        self._thread.start()

    async def run(self, fn: Callable, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((future, fn, args, kwargs))
        return await asyncio.wrap_future(future)

    def note_progress(self, cluster_id: str, etcd_revision: int) -> None:
        """Note a progress reply (`services.journal_progress_notes`) within NOTES_DELAY, with
        whatever other clusters noted meanwhile; from the loop that made this object."""
        revisions = self._notes
        revisions[cluster_id] = max(etcd_revision, revisions.get(cluster_id, 0))
        if self._notes_due is None:
            loop = asyncio.get_running_loop()
            self._notes_due = loop.call_later(self.notes_delay, self._flush_notes)

    def _flush_notes(self) -> None:
        revisions, self._notes, self._notes_due = self._notes, {}, None
        if not revisions:
            return
        # A revision no higher than the one noted before changes nothing (GREATEST): skip it.
        moved = {c for c, r in revisions.items() if r > self._noted.get(c, 0)}
        self._noted.update((c, revisions[c]) for c in moved)
        notes = {"etcd_revisions": revisions, "moved": moved}
        self._jobs.put((None, services.journal_progress_notes, (), notes))

    def _serve(self) -> None:
        try:
            while True:
                idle = self.idle_close if connection.connection is not None else None
                try:
                    job = self._jobs.get(timeout=idle)
                except queue.Empty:
                    connection.close()
                    continue
                if job is _STOP:
                    return
                future, fn, args, kwargs = job
                if future is None:  # nobody waits for the notes: a failure is only logged
                    try:
                        fn(*args, **kwargs)
                    except DatabaseError as exc:
                        close_old_connections()
                        logger.warning("journal: progress notes not stored: %s", exc)
                    continue
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(*args, **kwargs))
                except Exception as exc:  # noqa: BLE001 (handed to the awaiting coroutine)
                    # A broken connection must not fail every later job: drop it if unusable.
                    close_old_connections()
                    future.set_exception(exc)
        finally:
            connection.close()  # this thread's own connection: nobody else will close it

    def close(self) -> None:
        """Store the pending notes, finish the queued jobs, close the connection and end the
        thread."""
        if self._notes_due is not None:
            self._notes_due.cancel()
        self._flush_notes()
        self._jobs.put(_STOP)
        self._thread.join()


class ClusterJournal:
    """Journals one cluster: `await follow(db)` on a loop until cancelled, or `run()` in a
    thread of its own until `stop` is set."""

    def __init__(
        self,
        *,
        cluster_id: str,
        stop: threading.Event | None = None,
        policy: JournalPolicy | None = None,
        gateway_factory: Callable[[str], ClusterGateway] = gateway_for,
        max_batch: int = 5000,
        progress_after: float = PROGRESS_AFTER,
    ):
        self.cluster_id = cluster_id
        self.stop = stop or threading.Event()
        self.policy = policy or JournalPolicy.from_settings()
        self.gateway_factory = gateway_factory
        self.max_batch = max_batch
        self.progress_after = progress_after
        self.endpoint = ""  # the endpoint of the current watch, for logs and tests
        self.stored = 0  # rows written by this worker (the benchmark reads it)

    def run(self) -> None:
        """Follow the cluster on a private loop and database thread until `stop` is set."""
        asyncio.run(self._run_until_stopped())

    async def _run_until_stopped(self) -> None:
        db = DatabaseThread()
        task = asyncio.create_task(self.follow(db))
        try:
            # One thread blocked in Event.wait (no timeout, no wake-ups) bridges the two worlds.
            await asyncio.get_running_loop().run_in_executor(None, self.stop.wait)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            db.close()

    async def follow(self, db: DatabaseThread) -> None:
        """Follow the cluster until cancelled, reconnecting and resyncing as the module says;
        every database call through `db`."""
        gateway = None
        failures = 0
        try:
            while True:
                try:
                    # Read again at every (re)connect: an edited record's endpoints count.
                    configured = await db.run(self.gateway_factory, self.cluster_id)
                    if gateway is None or gateway.gateway is not configured:
                        if gateway is not None:
                            await gateway.close()
                        gateway = AsyncGateway(configured)
                    await self._follow(gateway, db)
                    failures = 0
                except EtcdWatchCompacted as exc:
                    await self._record_gap(exc, db)
                    failures = 0
                except Exception as exc:
                    # etcd or the database away, or a bug: a long-running worker backs off and
                    # retries from its cursor rather than die silently.
                    delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                    failures += 1
                    if isinstance(exc, EtcdError | DatabaseError):
                        logger.warning(
                            "journal %s: %s; retrying in %g s", self.cluster_id, exc, delay
                        )
                    else:
                        logger.exception(
                            "journal %s failed; retrying in %g s", self.cluster_id, delay
                        )
                    await asyncio.sleep(delay)
        finally:
            if gateway is not None:
                await gateway.close()

    async def _record_gap(self, exc: EtcdWatchCompacted, db: DatabaseThread) -> None:
        gap = await db.run(
            services.journal_gap_record,
            cluster_id=self.cluster_id,
            compact_revision=exc.compact_revision,
        )
        if gap is not None:
            logger.warning(
                "journal %s: etcd compacted revisions %d-%d before they were read; "
                "recorded as a gap, resyncing from %d",
                self.cluster_id,
                gap.from_revision,
                gap.to_revision,
                exc.compact_revision,
            )

    async def _start_position(self, gateway: AsyncGateway, db: DatabaseThread) -> int:
        cursor = await db.run(journal_position, cluster_id=self.cluster_id)
        if cursor is not None:
            return cursor.revision
        revision = await gateway.revision()  # etcd's, asked on the loop
        return await db.run(
            services.journal_start, cluster_id=self.cluster_id, current_revision=lambda: revision
        )

    async def _follow(self, gateway: AsyncGateway, db: DatabaseThread) -> None:
        """One watch from the cursor until it fails or the task is cancelled."""
        position = await self._start_position(gateway, db)
        watch = await gateway.watch(*WHOLE_KEYSPACE, start_revision=position + 1, prev_kv=True)
        self.endpoint = watch.endpoint
        arrivals: asyncio.Queue = asyncio.Queue(maxsize=64)
        heard = [time.monotonic()]
        reader = asyncio.create_task(
            self._read(watch, arrivals, heard, db), name=f"journal-watch-{self.cluster_id}"
        )
        asked_progress_at = None
        try:
            while True:
                unanswered = asked_progress_at is not None and heard[0] < asked_progress_at
                if unanswered:
                    deadline = asked_progress_at + self.progress_after
                else:
                    # Rounded up to a grid every cluster shares: idle clusters ask together, so
                    # the loop, gRPC's threads and the notes wake once for all of them.
                    grid = self.progress_after / 2
                    deadline = math.ceil((heard[0] + self.progress_after) / grid) * grid
                try:
                    first = await next_arrival(arrivals, max(deadline - time.monotonic(), 0))
                except TimeoutError:
                    now = time.monotonic()
                    unanswered = asked_progress_at is not None and heard[0] < asked_progress_at
                    if unanswered and now - asked_progress_at >= self.progress_after:
                        # A hung member keeps the connection open: try the others first.
                        reason = "the watch stream went silent"
                        gateway.gateway.report_unavailable(watch.endpoint, reason)
                        raise EtcdUnavailable(
                            f"{watch.endpoint}: {reason}", endpoint=watch.endpoint
                        ) from None
                    if not unanswered and now - heard[0] >= self.progress_after:
                        await watch.request_progress()
                        asked_progress_at = now
                    continue
                await self._store([first], arrivals, db)
        finally:
            watch.close()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _store(self, items: list, arrivals: asyncio.Queue, db: DatabaseThread) -> None:
        """Store `items` plus whatever else has already arrived, in one transaction; re-raise a
        failure the reader queued (after storing what came before it)."""
        failure = None
        count = sum(len(i.events) for i in items if isinstance(i, WatchBatch))
        while count < self.max_batch and isinstance(items[-1], WatchBatch):
            try:
                item = arrivals.get_nowait()
            except asyncio.QueueEmpty:
                break
            items.append(item)
            if isinstance(item, WatchBatch):
                count += len(item.events)
        if not isinstance(items[-1], WatchBatch):
            failure = items.pop()
        if items:
            events = [event for batch in items for event in batch.events]
            newest = max(batch.revision for batch in items)
            if events:
                self.stored += await db.run(
                    services.journal_events_store,
                    cluster_id=self.cluster_id,
                    events=events,
                    etcd_revision=newest,
                    policy=self.policy,
                )
            else:
                db.note_progress(self.cluster_id, newest)
        if failure is _ENDED:
            raise EtcdUnavailable("the watch stream ended")
        if failure is not None:
            raise failure

    async def _read(self, watch, arrivals: asyncio.Queue, heard: list, db: DatabaseThread) -> None:
        try:
            async for batch in watch:
                heard[0] = time.monotonic()
                if not batch.events and arrivals.empty():
                    # An answer with nothing to store (created, progress): noted from here, the
                    # worker sleeps on (an idle cluster's whole cycle is one request, one reply).
                    db.note_progress(self.cluster_id, batch.revision)
                    continue
                await arrivals.put(batch)
        except EtcdError as exc:
            await arrivals.put(exc)
            return
        await arrivals.put(_ENDED)
