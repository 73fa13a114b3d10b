"""Pool threads carry their Python names as OS names (what top -H and the fleet bench read);
later calls are made on time, dropped when expired, and kept apart across a fork."""

import functools
import logging
import multiprocessing
import threading
import time
from pathlib import Path

from etcdmonitor_site.threads import LaterCalls, named_pool


def _os_name() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


def test_a_named_pools_threads_show_their_names_to_the_os():
    with named_pool(2, "collect") as pool:
        names = {pool.submit(_os_name).result() for _ in range(4)}

    assert names and all(name.startswith("collect_") for name in names)
    assert _os_name() != "collect_0"  # the caller's own name is untouched


def test_later_calls_are_made_in_time_order_at_their_moments_on_their_own_thread():
    later = LaterCalls("later-test")
    made = []
    done = threading.Event()
    start = time.monotonic()

    def note(label):
        made.append((label, time.monotonic() - start, _os_name()))
        if len(made) == 3:
            done.set()

    for label, offset in (("c", 0.6), ("a", 0.2), ("b", 0.4)):
        later.call_at(start + offset, functools.partial(note, label), expires=start + 5)

    assert done.wait(5)
    assert [label for label, _, _ in made] == ["a", "b", "c"]
    for (_, at, _), offset in zip(made, (0.2, 0.4, 0.6), strict=True):
        assert offset <= at < offset + 0.15
    assert {name for _, _, name in made} == {"later-test"}
    assert later.pending() == 0


def test_a_later_call_reached_only_after_its_expiry_is_dropped(caplog):
    later = LaterCalls("later-test")
    made = []
    # Said for this logger: a Celery worker started by an earlier test leaves the root at ERROR.
    with caplog.at_level(logging.WARNING, logger="etcdmonitor_site.threads"):
        start = time.monotonic()
        # The first call holds the thread past the second's expiry; the third is in time.
        later.call_at(start, lambda: time.sleep(0.5), expires=start + 5)
        later.call_at(start + 0.1, lambda: made.append("expired"), expires=start + 0.3)
        later.call_at(start + 0.2, lambda: made.append("in time"), expires=start + 5)

        deadline = time.monotonic() + 5
        while not made and time.monotonic() < deadline:
            time.sleep(0.05)

    assert made == ["in time"]
    assert "expired before it could be made" in caplog.text


def test_a_forked_child_makes_its_own_later_calls_and_none_of_the_parents():
    later = LaterCalls("later-test")
    start = time.monotonic()
    parent_made = threading.Event()
    later.call_at(start + 0.05, parent_made.set, expires=start + 5)
    assert parent_made.wait(5)
    later.call_at(start + 3, lambda: None, expires=start + 5)  # still waiting at the fork

    context = multiprocessing.get_context("fork")
    answer = context.Queue()

    def child():
        made = threading.Event()
        pending_at_fork = later.pending()
        later.call_at(time.monotonic() + 0.05, made.set, expires=time.monotonic() + 5)
        answer.put((pending_at_fork, made.wait(5)))

    process = context.Process(target=child)
    process.start()
    pending_at_fork, made_in_child = answer.get(timeout=10)
    process.join(10)

    assert pending_at_fork == 0
    assert made_in_child
    assert later.pending() == 1  # the parent's own call still waits
