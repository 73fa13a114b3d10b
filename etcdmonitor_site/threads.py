"""Named worker pools (the OS sees each pool thread under its Python name), and calls made
later on a named thread of their own.

Python 3.11 leaves every thread's OS name as the program's, so `top -H`, py-spy and the fleet
bench's CPU-by-thread split (bench/fleet.py, from /proc/PID/task/*/comm) could not tell the
collection pool from the probe pool. Linux only (prctl); elsewhere the names stay as they were.
"""

import ctypes
import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

_PR_SET_NAME = 15
_libc = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def name_native_thread() -> None:
    """Give the calling OS thread the current Python thread's name (the kernel keeps 15 bytes)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_NAME, threading.current_thread().name.encode()[:15], 0, 0, 0)


def named_pool(max_workers: int, prefix: str) -> ThreadPoolExecutor:
    """A ThreadPoolExecutor whose threads carry `prefix_N` as their OS name too."""
    return ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix=prefix, initializer=name_native_thread
    )


class LaterCalls:
    """Calls due at given times in this process, made one after another on one daemon thread
    of its own (started when first needed, again after a fork).

    For work a Celery task spreads over the coming seconds: each later start as a task of its
    own costs the broker's message, its acknowledgement and the worker's bookkeeping (2.6 ms of
    CPU in a quiet worker, bench/celery_tasks.py; ~7 ms in the fleet scale run), more than
    starting it here. A call should only hand work off
    (a pool submit): the next one waits for it.
    """

    def __init__(self, name: str):
        self.name = name
        self._order = itertools.count()
        self._forked()
        # A child starts empty, with its own thread: the parent's was not copied into it, and
        # its lock may have been held by a thread that does not exist there.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._condition = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], object], float]] = []
        self._started = False

    def call_at(self, when: float, call: Callable[[], object], *, expires: float) -> None:
        """Make `call()` at `when` (time.monotonic()), unless that moment is only reached after
        `expires` (the process was held up): then it is dropped, as an expired task would be."""
        with self._condition:
            if not self._started:
                threading.Thread(target=self._run, name=self.name, daemon=True).start()
                self._started = True
            heapq.heappush(self._due, (when, next(self._order), call, expires))
            self._condition.notify()

    def pending(self) -> int:
        """How many calls are still waiting in this process."""
        with self._condition:
            return len(self._due)

    def _next(self) -> tuple[Callable[[], object], float]:
        with self._condition:
            while True:
                delay = self._due[0][0] - time.monotonic() if self._due else None
                if delay is not None and delay <= 0:
                    _, _, call, expires = heapq.heappop(self._due)
                    return call, expires
                self._condition.wait(delay)

    def _run(self) -> None:
        name_native_thread()
        while True:
            call, expires = self._next()
            if time.monotonic() > expires:
                logger.warning("%s: a call due earlier expired before it could be made", self.name)
                continue
            try:
                call()
            except Exception:
                logger.exception("%s: a later call failed", self.name)
