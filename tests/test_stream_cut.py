"""A stream asked to close is cut after the grace even when the code it is awaiting in swallows
the cancel (Python 3.11's asyncio.wait_for does when its result is ready in the same turn): a
client that reads nothing must never keep its connection."""

import asyncio
import threading

from etcdmonitor_site import streams
from etcdmonitor_site.streams import Stream


class SwallowsOneCancel(Stream):
    """Waits for ever; takes the first cancel for a wake-up, as wait_for can."""

    swallowed = 0

    async def run(self, send=None, receive=None) -> None:
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1


def test_a_stream_that_swallows_the_first_cancel_is_cut_anyway(monkeypatch):
    monkeypatch.setattr(streams, "CLOSE_GRACE_SECONDS", 0.05)

    async def scenario():
        stream = SwallowsOneCancel(user_id=1, session_id=None)
        stream._loop = asyncio.get_running_loop()
        stream._task = asyncio.ensure_future(stream.run())
        await asyncio.sleep(0)
        stream.close("slow_client")
        await asyncio.wait([stream._task], timeout=5)
        # Judged here: leaving asyncio.run cancels whatever still runs.
        return stream, stream._task.cancelled()

    # A loop of its own on a thread: the browser tests leave Playwright's loop running here.
    answer = {}
    runner = threading.Thread(target=lambda: answer.update(out=asyncio.run(scenario())))
    runner.start()
    runner.join(15)
    stream, cut = answer["out"]
    assert stream.swallowed == 1
    assert cut, "still running 5 s after the close: the cut was lost"
