"""The journal worker: follows one cluster's keyspace with a watch and stores every change.

A reader thread iterates the watch stream into a bounded queue; the worker's own thread drains
whatever has arrived (up to `max_batch` events) into one transaction. Under load the batches
grow by themselves, so a slow commit never turns into one commit per change; when the queue is
full the reader stops reading and gRPC's flow control holds etcd back, never memory.

Failures: an unavailable member or a broken stream → reconnect (another endpoint first) from
the cursor; compaction past the cursor → a gap row, then resync from etcd's oldest kept
revision; a silent stream (a paused member) is found by asking for progress after
`PROGRESS_AFTER` quiet seconds and dropped when no answer comes within `PROGRESS_AFTER` more.
"""

import logging
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
from journal import services
from journal.services import JournalPolicy

logger = logging.getLogger(__name__)

WHOLE_KEYSPACE = (b"\x00", b"\x00")  # [\0, \0): every key
PROGRESS_AFTER = 10.0
RETRY_DELAYS = (0.5, 1, 2, 5, 10)
_ENDED = object()


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


class ClusterJournal:
    """Journals one cluster until `stop` is set; `run()` blocks."""

    def __init__(
        self,
        *,
        cluster_id: str,
        stop: threading.Event,
        policy: JournalPolicy | None = None,
        gateway_factory: Callable[[str], ClusterGateway] = gateway_for,
        max_batch: int = 5000,
        progress_after: float = PROGRESS_AFTER,
    ):
        self.cluster_id = cluster_id
        self.stop = stop
        self.policy = policy or JournalPolicy.from_settings()
        self.gateway_factory = gateway_factory
        self.max_batch = max_batch
        self.progress_after = progress_after
        self.endpoint = ""  # the endpoint of the current watch, for logs and tests
        self.stored = 0  # rows written by this worker (the benchmark reads it)

    def run(self) -> None:
        try:
            self._run()
        finally:
            connection.close()  # this thread's own connection: nobody else will close it

    def _run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                self._follow()
                failures = 0
            except EtcdWatchCompacted as exc:
                gap = services.journal_gap_record(
                    cluster_id=self.cluster_id, compact_revision=exc.compact_revision
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
                failures = 0
            except Exception as exc:
                # etcd or the database away, or a bug: a long-running worker backs off and
                # retries from its cursor rather than die silently.
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                if isinstance(exc, EtcdError | DatabaseError):
                    logger.warning("journal %s: %s; retrying in %g s", self.cluster_id, exc, delay)
                else:
                    logger.exception("journal %s failed; retrying in %g s", self.cluster_id, delay)
                close_old_connections()
                self.stop.wait(delay)

    def _follow(self) -> None:
        """One watch from the cursor until it fails or `stop` is set."""
        gateway = self.gateway_factory(self.cluster_id)
        position = services.journal_start(
            cluster_id=self.cluster_id, current_revision=lambda: current_revision(gateway)
        )
        watch = gateway.watch(*WHOLE_KEYSPACE, start_revision=position + 1, prev_kv=True)
        self.endpoint = watch.endpoint
        arrivals: queue.Queue = queue.Queue(maxsize=64)
        heard = [time.monotonic()]
        reader = threading.Thread(
            target=self._read,
            args=(watch, arrivals, heard),
            name=f"journal-watch-{self.cluster_id}",
            daemon=True,
        )
        reader.start()
        asked_progress_at = None
        try:
            while not self.stop.is_set():
                try:
                    first = arrivals.get(timeout=0.5)
                except queue.Empty:
                    quiet = time.monotonic() - heard[0]
                    if asked_progress_at is None and quiet > self.progress_after:
                        watch.request_progress()
                        asked_progress_at = time.monotonic()
                    elif (
                        asked_progress_at is not None
                        and time.monotonic() - asked_progress_at > self.progress_after
                    ):
                        # A hung member keeps the connection open: try the others first.
                        reason = "the watch stream went silent"
                        gateway.report_unavailable(watch.endpoint, reason)
                        raise EtcdUnavailable(
                            f"{watch.endpoint}: {reason}", endpoint=watch.endpoint
                        ) from None
                    continue
                asked_progress_at = None
                self._store([first], arrivals)
        finally:
            watch.close()
            reader.join(timeout=5)

    def _store(self, items: list, arrivals: queue.Queue) -> None:
        """Store `items` plus whatever else has already arrived, in one transaction; re-raise a
        failure the reader queued (after storing what came before it)."""
        failure = None
        count = sum(len(i.events) for i in items if isinstance(i, WatchBatch))
        while count < self.max_batch and isinstance(items[-1], WatchBatch):
            try:
                item = arrivals.get_nowait()
            except queue.Empty:
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
                self.stored += services.journal_events_store(
                    cluster_id=self.cluster_id,
                    events=events,
                    etcd_revision=newest,
                    policy=self.policy,
                )
            else:
                services.journal_progress_note(cluster_id=self.cluster_id, etcd_revision=newest)
                # A quiet stream: give the connection back rather than hold one per cluster
                # (80 idle clusters held 81 of PostgreSQL's default 100); reconnecting for a
                # note every PROGRESS_AFTER seconds costs ~0.5 ms of CPU.
                if not connection.in_atomic_block:
                    connection.close()
        if failure is _ENDED:
            raise EtcdUnavailable("the watch stream ended")
        if failure is not None:
            raise failure

    def _read(self, watch, arrivals: queue.Queue, heard: list) -> None:
        try:
            for batch in watch:
                heard[0] = time.monotonic()
                arrivals.put(batch)
        except EtcdError as exc:
            arrivals.put(exc)
            return
        arrivals.put(_ENDED)
