"""`manage.py runmonitor --bind HOST:PORT`: serve etcdmonitor (gunicorn processes, uvicorn loops).

Every server set-up we ship runs this command (make run, the image, compose), so the limits and
timeouts live in one place: `etcdmonitor_site.server` (the HTTP protocol) and
`etcdmonitor_site.asgi` (the app, Django on a fixed thread pool).

Embedded mode (no CELERY_BROKER_URL): one worker process, and the periodic jobs run in it by the
in-process scheduler; the change journal runs as a child process (`manage.py journal`). With a
broker: web only, several workers; Celery beat and workers run the jobs, and the journal is a
process of its own.
"""

import logging
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from gunicorn.app.base import BaseApplication

from journal.runner import journal_process_start, journal_process_stop

logger = logging.getLogger(__name__)


class MonitorServer(BaseApplication):
    """gunicorn, configured from code instead of a config file or its own command line."""

    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if key != "threads":  # ours: Django's thread pool, not gunicorn's
                self.cfg.set(key, value)

    def load(self):
        from etcdmonitor_site.asgi import build_application

        return build_application(threads=self.options["threads"])


def _start_scheduler(worker):
    """gunicorn post_worker_init hook: the jobs live in the (single) worker process."""
    from etcdmonitor_site.scheduler import InProcessScheduler

    worker.etcdmonitor_scheduler = InProcessScheduler().start()


def _reset_after_fork(server, worker):
    """gRPC channels must not cross a fork: every worker builds its own."""
    from etcdgateway import reset_gateways

    reset_gateways()


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:9090", help="HOST:PORT to listen on")
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("WEB_CONCURRENCY", 2)),
            help="worker processes when a broker is configured (embedded: 1)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.WEB_THREADS,
            help="threads running Django per worker (slow clients never hold one)",
        )

    def handle(self, *args, bind, workers, threads, **options):
        if ":" not in bind:
            raise CommandError("--bind must be HOST:PORT")
        embedded = settings.EMBEDDED_MODE
        self._bootstrap()
        connections.close_all()  # nothing opened here may be shared with forked workers
        server_options = {
            "bind": bind,
            "workers": 1 if embedded else workers,
            "worker_class": "etcdmonitor_site.server.MonitorWorker",
            "threads": threads,
            # The worker's timeout is a liveness heartbeat from its event loop, not a per-request
            # limit, so long snapshot downloads are fine; keep-alive matches the reference's
            # idle timeout. Request-size limits: HTTP_MAX_HEADER_BYTES, REQUEST_BODY_MAX_BYTES.
            "timeout": 60,
            "graceful_timeout": 10,
            "keepalive": 60,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": settings.LOG_LEVEL.lower(),
            "post_fork": _reset_after_fork,
            # One shared control socket path per user would collide between instances.
            "control_socket_disable": True,
        }
        if embedded:
            server_options["post_worker_init"] = _start_scheduler
        mode = "embedded (jobs in-process)" if embedded else "web only (jobs on Celery)"
        self.stdout.write(f"etcdmonitor {settings.APP_VERSION} on http://{bind} - {mode}")
        # Embedded mode has no other process to run the change journal in: start it here.
        journal = journal_process_start() if embedded else None
        try:
            MonitorServer(server_options).run()
        finally:
            journal_process_stop(journal)

    def _bootstrap(self) -> None:
        """Start-up steps that need the database (e.g. the initial admin)."""
        from accounts.services import admin_bootstrap, initial_password_path

        if admin_bootstrap() is not None or initial_password_path().exists():
            # Only where the password is, never the password itself.
            self.stdout.write(f"Initial admin password: see {initial_password_path()}")
