"""Embedded mode runs the journal as a child of `runmonitor` (the real server, as `make run`
starts it, on its own SQLite): it journals, and it never outlives the server."""

import sqlite3
import time
import uuid
from pathlib import Path

from etcdgateway import cluster_gateway
from tests.servers import runmonitors


def _children(pid: int, word: bytes) -> list[int]:
    """The child processes of `pid` with `word` as one of their arguments."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"\x00" + word + b"\x00" in Path(f"/proc/{child}/cmdline").read_bytes() + b"\x00"
    ]


def _journal_children(pid: int) -> list[int]:
    return _children(pid, b"journal")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/stat")
        # A zombie has exited; its parent (gone or not yet waiting) has not reaped it.
        if not status.exists() or status.read_text().split(") ")[1].startswith("Z"):
            return True
        time.sleep(0.1)
    return False


def _has_cursor(database: Path, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(database, timeout=5) as connection:
            if connection.execute("SELECT 1 FROM journal_journalcursor").fetchone():
                return True
        time.sleep(0.2)
    return False


def _journaled(database: Path, key: bytes, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(database, timeout=5) as connection:
            found = connection.execute(
                "SELECT value FROM journal_journalevent WHERE key = ?", (key,)
            ).fetchone()
        if found:
            return bytes(found[0]) == b"from the test"
        time.sleep(0.2)
    return False


def test_runmonitor_runs_the_journal_and_stops_it_with_itself(etcd_cluster, tmp_path):
    endpoints = ",".join(etcd_cluster.client_urls)
    with runmonitors(tmp_path, ETCD_ENDPOINTS=endpoints) as start:
        server = start()
        journal = _journal_children(server.process.pid)
        assert len(journal) == 1
        key = f"/embedded-journal/{uuid.uuid4().hex[:8]}".encode()
        database = server.data_dir / "etcdmonitor.sqlite3"
        # A first start begins at etcd's revision then: write once the cursor exists.
        assert _has_cursor(database)
        cluster_gateway().put(key, b"from the test", ttl=None)
        assert _journaled(database, key)

        server.stop()  # SIGTERM: runmonitor stops its journal on the way out
        assert _gone(journal[0], timeout=15)

        killed = start()
        orphan = _journal_children(killed.process.pid)
        assert len(orphan) == 1
        web_workers = _children(killed.process.pid, b"runmonitor")
        assert web_workers
        killed.process.kill()  # SIGKILL: no clean-up runs, the child notices its parent left
        killed.process.wait()
        assert _gone(orphan[0], timeout=10)
        # The web worker notices too, at its next heartbeat (gunicorn's timeout, 60 s).
        assert all(_gone(pid, timeout=75) for pid in web_workers)
