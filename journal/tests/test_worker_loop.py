"""The journal worker's loop primitives, on an event loop of the test's own (no etcd needed:
what is tested is how the loop treats a cancellation)."""

import asyncio
import contextlib

import pytest

from journal.worker import next_arrival
from tests.loops import run_on_a_thread


def test_a_cancel_as_an_item_arrives_is_not_lost():
    async def scenario():
        arrivals: asyncio.Queue = asyncio.Queue()

        async def follow():
            while True:  # as the worker's loop: wait for the next batch, again and again
                with contextlib.suppress(TimeoutError):
                    await next_arrival(arrivals, 10)

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.01)
        arrivals.put_nowait("batch")  # wakes the waiting get ...
        task.cancel()  # ... in the same turn of the loop as the stop's cancel
        done, _ = await asyncio.wait([task], timeout=2)
        task.cancel()
        return bool(done) and task.cancelled()

    assert run_on_a_thread(scenario()) is True


def test_the_next_arrival_or_a_timeout():
    async def scenario():
        arrivals: asyncio.Queue = asyncio.Queue()
        arrivals.put_nowait("ready")
        first = await next_arrival(arrivals, 0)  # already there: no wait, even with no time
        with pytest.raises(TimeoutError):
            await next_arrival(arrivals, 0.05)
        return first

    assert run_on_a_thread(scenario()) == "ready"
