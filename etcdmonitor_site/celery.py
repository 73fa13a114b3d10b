"""The Celery application: broker and beat schedule come from settings (CELERY_* names)."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

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
