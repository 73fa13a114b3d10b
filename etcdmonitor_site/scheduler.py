"""The in-process scheduler of embedded mode: runs settings.PERIODIC_JOBS without Celery.

Beat and this scheduler read the same job list and call the same Celery tasks (here synchronously,
in this process), so there is one code path and two ways to drive it. A job's `task` is the
Celery task's name, looked up in Celery's registry as a worker would. Each job has its own thread,
so a slow job delays only itself and two runs of one job never overlap.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger(__name__)


def celery_task(name: str):
    """The registered Celery task called `name` (KeyError if none is): every installed app's
    tasks module is imported first, as a worker does at start."""
    from etcdmonitor_site.celery import app

    # Not app.loader.import_default_modules(): its one-shot discovery imported nothing in the
    # gunicorn worker of `make run`, where every job then failed as NotRegistered.
    autodiscover_modules("tasks")
    return app.tasks[name]


class InProcessScheduler:
    """Runs each periodic job every `interval` seconds until `stop()`; the first run is at once."""

    def __init__(self, jobs: dict | None = None):
        self.jobs = jobs if jobs is not None else settings.PERIODIC_JOBS
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run_once(self, name: str) -> None:
        try:
            celery_task(self.jobs[name]["task"])()
        except Exception:
            logger.exception("periodic job %s failed", name)
        finally:
            close_old_connections()

    def _loop(self, name: str) -> None:
        interval = float(self.jobs[name]["interval"])
        while not self._stop.is_set():
            self.run_once(name)
            self._stop.wait(interval)

    def start(self) -> "InProcessScheduler":
        for name in self.jobs:
            thread = threading.Thread(
                target=self._loop, args=(name,), name=f"job:{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        logger.info("in-process scheduler started: %s", ", ".join(self.jobs) or "no jobs")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
