"""Running a coroutine from a synchronous test."""

import asyncio
from concurrent.futures import ThreadPoolExecutor


def run_on_a_thread(coroutine):
    """asyncio.run on a thread of its own: the session's browser tests leave Playwright's
    event loop running on the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()
