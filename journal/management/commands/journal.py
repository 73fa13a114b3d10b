"""`manage.py journal [--cluster ID ...]`: watch each monitored cluster and store every change.

One long-running process: a coroutine per cluster on one event loop, one thread for the database
(`journal.worker`; an idle cluster costs no thread and no wake-up), following every monitored
cluster record (re-read every RESCAN_SECONDS) unless --cluster names some, each resuming from its
stored cursor. SIGTERM or SIGINT stops it cleanly; a kill at any moment loses nothing (the
cursor moves in the same transaction as the events). Embedded mode runs it as a child of
`runmonitor`; with a broker it is its own process (compose `journal`).
"""

import asyncio
import logging
import os
import signal
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from journal.selectors import journal_clusters, journal_stale
from journal.worker import ClusterJournal, DatabaseThread

logger = logging.getLogger(__name__)
RESCAN_SECONDS = 30


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument(
            "--cluster", action="append", dest="clusters", help="cluster id (repeatable)"
        )
        parser.add_argument(
            "--health",
            type=int,
            metavar="SECONDS",
            help="only check: exit 1 unless every cluster's journal moved or heard from etcd "
            "within SECONDS (the compose healthcheck)",
        )
        parser.add_argument(
            "--rescan",
            type=float,
            default=RESCAN_SECONDS,
            metavar="SECONDS",
            help="how often the set of monitored clusters is read again",
        )
        parser.add_argument(
            "--parent-pid",
            type=int,
            default=0,
            help="exit when this process is gone (runmonitor passes its own PID)",
        )

    def handle(self, *args, clusters, health, rescan, parent_pid, **options):
        if not settings.JOURNAL_ENABLED:
            self.stdout.write("the change journal is off (JOURNAL_ENABLED=false)")
            return
        known = journal_clusters()
        options["clusters_given"] = bool(clusters)
        clusters = clusters or known
        unknown = sorted(set(clusters) - set(known))
        if unknown:
            raise CommandError(f"unknown cluster id(s): {', '.join(unknown)}")
        if health is not None:
            stale = journal_stale(cluster_ids=clusters, max_age=timedelta(seconds=health))
            if stale:
                raise CommandError(f"journal not following: {', '.join(stale)}")
            self.stdout.write("journal: following " + ", ".join(clusters))
            return
        asyncio.run(
            self._follow(
                clusters,
                follow_records=not options.get("clusters_given"),
                rescan=rescan,
                parent_pid=parent_pid,
            )
        )

    async def _follow(
        self, clusters: list[str], *, follow_records: bool, rescan: float, parent_pid: int
    ) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        db = DatabaseThread()
        running: dict[str, asyncio.Task] = {}
        self._reconcile(running, clusters, db)
        self.stdout.write(f"journal: following {', '.join(clusters)}", ending="\n")
        self.stdout.flush()
        # Without --cluster the set follows the records: a cluster switched to monitored (or
        # added) gets a worker within `rescan` seconds, one no longer monitored loses its
        # worker. The parent check is the only once-a-second wake-up, and only when embedded.
        tick = min(1.0, rescan) if parent_pid else rescan
        last_scan = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(tick):
                    await stop.wait()
                break
            except TimeoutError:
                pass
            if parent_pid and os.getppid() != parent_pid:
                logger.warning("journal: runmonitor (pid %d) is gone; stopping", parent_pid)
                break
            if follow_records and time.monotonic() - last_scan >= rescan:
                last_scan = time.monotonic()
                try:
                    self._reconcile(running, await db.run(journal_clusters), db)
                except DatabaseError as exc:
                    logger.warning("journal: cannot read the cluster records: %s", exc)
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        db.close()

    def _reconcile(self, running: dict, wanted: list[str], db: DatabaseThread) -> None:
        for cluster_id in [c for c in running if c not in wanted]:
            running.pop(cluster_id).cancel()
            logger.info("journal %s: no longer monitored; its worker stops", cluster_id)
        for cluster_id in [c for c in wanted if c not in running]:
            running[cluster_id] = asyncio.create_task(
                ClusterJournal(cluster_id=cluster_id).follow(db), name=f"journal-{cluster_id}"
            )
