"""`manage.py journal [--cluster ID ...]`: watch each monitored cluster and store every change.

One long-running process: a worker thread per cluster (default: every monitored cluster record,
re-read every RESCAN_SECONDS), each resuming from its stored cursor. SIGTERM or SIGINT stops it
cleanly; a kill at any moment loses nothing (the cursor moves in the same transaction as the
events). Embedded mode runs it as a child of `runmonitor`; with a broker it is its own process
(compose `journal`).
"""

import logging
import os
import signal
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from journal.selectors import journal_clusters, journal_stale
from journal.worker import ClusterJournal

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
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        # Without --cluster the set follows the records: a cluster switched to monitored (or
        # added) gets a worker within RESCAN_SECONDS, one no longer monitored loses its worker.
        follow_records = not options.get("clusters_given")
        running: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._reconcile(running, clusters)
        self.stdout.write(f"journal: following {', '.join(clusters)}", ending="\n")
        self.stdout.flush()
        last_scan = time.monotonic()
        while not stop.wait(1.0):
            if parent_pid and os.getppid() != parent_pid:
                logger.warning("journal: runmonitor (pid %d) is gone; stopping", parent_pid)
                stop.set()
            elif follow_records and time.monotonic() - last_scan >= rescan:
                last_scan = time.monotonic()
                try:
                    self._reconcile(running, journal_clusters())
                except DatabaseError as exc:
                    logger.warning("journal: cannot read the cluster records: %s", exc)
                finally:
                    connection.close()
        for _thread, own_stop in running.values():
            own_stop.set()
        for thread, _ in running.values():
            thread.join()

    def _reconcile(self, running: dict, wanted: list[str]) -> None:
        for cluster_id in [c for c in running if c not in wanted]:
            _thread, own_stop = running.pop(cluster_id)
            own_stop.set()
            logger.info("journal %s: no longer monitored; its worker stops", cluster_id)
        for cluster_id in [c for c in wanted if c not in running]:
            own_stop = threading.Event()
            thread = threading.Thread(
                target=ClusterJournal(cluster_id=cluster_id, stop=own_stop).run,
                name=f"journal-{cluster_id}",
                daemon=True,
            )
            thread.start()
            running[cluster_id] = (thread, own_stop)
