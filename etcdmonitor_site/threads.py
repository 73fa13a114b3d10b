"""Named worker pools: the OS sees each pool thread under its Python name.

Python 3.11 leaves every thread's OS name as the program's, so `top -H`, py-spy and the fleet
bench's CPU-by-thread split (bench/fleet.py, from /proc/PID/task/*/comm) could not tell the
collection pool from the probe pool. Linux only (prctl); elsewhere the names stay as they were.
"""

import ctypes
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

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
