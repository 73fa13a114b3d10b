"""`manage.py journal [--cluster ID ...]`: watch each monitored cluster and store every change.

One long-running process: a worker thread per cluster (default: every journaled cluster, today
"default"), each resuming from its stored cursor. SIGTERM or SIGINT stops it cleanly; a kill at
any moment loses nothing (the cursor moves in the same transaction as the events). Embedded mode
runs it as a child of `runmonitor`; with a broker it is its own process (compose `journal`).
"""

import logging
import os
import signal
import threading
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from journal.selectors import journal_clusters, journal_stale
from journal.worker import ClusterJournal

logger = logging.getLogger(__name__)


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
            "--parent-pid",
            type=int,
            default=0,
            help="exit when this process is gone (runmonitor passes its own PID)",
        )

    def handle(self, *args, clusters, health, parent_pid, **options):
        if not settings.JOURNAL_ENABLED:
            self.stdout.write("the change journal is off (JOURNAL_ENABLED=false)")
            return
        known = journal_clusters()
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
        workers = [
            threading.Thread(
                target=ClusterJournal(cluster_id=cluster_id, stop=stop).run,
                name=f"journal-{cluster_id}",
            )
            for cluster_id in clusters
        ]
        for worker in workers:
            worker.start()
        self.stdout.write(f"journal: following {', '.join(clusters)}", ending="\n")
        self.stdout.flush()
        while not stop.wait(1.0):
            if parent_pid and os.getppid() != parent_pid:
                logger.warning("journal: runmonitor (pid %d) is gone; stopping", parent_pid)
                stop.set()
        for worker in workers:
            worker.join()
