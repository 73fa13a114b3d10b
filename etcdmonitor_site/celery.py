"""The Celery application: broker and beat schedule come from settings (CELERY_* names)."""

import gc
import os

from celery import Celery
from celery.beat import PersistentScheduler
from celery.signals import task_postrun, task_prerun, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")

app = Celery("etcdmonitor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Allocations between two young-generation collections (CPython's default is 700).
WORKER_GC_THRESHOLD = 20_000


@worker_process_init.connect
def quiet_garbage_collector(**_) -> None:
    """A worker process's garbage collector: what exists once the process is set up (Django,
    the apps, the Celery app) is frozen out of every later collection, and young collections
    run less often.

    A fleet's rounds make many short-lived objects, nearly all freed by reference counting;
    with the defaults the collector ran often and walked the long-lived objects too (3.6 % of
    the workers' CPU in `perf`, docs/PERFORMANCE.md). Cycles are still collected, in bigger
    batches.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(WORKER_GC_THRESHOLD, middle, old)


@task_prerun.connect
@task_postrun.connect
def database_connections_checked(task=None, **_) -> None:
    """Before and after each task, what Django does around each request: drop a connection
    that is past CONN_MAX_AGE or broke, and check the next one before use (health checks).

    Celery's Django fix-up closes every connection around every task instead, unless
    CELERY_DB_REUSE_MAX is set (settings.py sets it): a new PostgreSQL session per task, ~1.5 ms
    of the worker's CPU and a server process each time, for ~20 tasks every 15 s. An eager
    call (embedded mode, tests) runs inside its caller's request and transaction: left alone.
    """
    from django.db import close_old_connections  # the app module loads before Django is set up

    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()


class SteadyScheduler(PersistentScheduler):
    """Celery beat's persistent scheduler (the schedule file keeps each job's last run across
    restarts), sleeping until each job is due instead of spinning towards it.

    Celery's `adjust` wakes beat 10 ms early; the tick that then finds the job due in under
    10 ms returns a negative delay, and beat ticks again without sleeping until it is: ~150
    ticks and ~10 ms of CPU at every due time, 2.6 of beat's 3.3 ms/s (docs/PERFORMANCE.md,
    "beat without its busy wait"). Here a delay shorter than the drift is slept whole.
    """

    def adjust(self, n, drift=-0.010):
        if n and n > 0:
            return n + drift if n + drift > 0 else n
        return n
