"""Embedded mode's journal: `runmonitor` starts `manage.py journal` as a child process.

A process of its own rather than a thread in the server: the watch and its inserts get their own
core and GIL (measured in bench/journal.py), and a crash in either leaves the other running. The
child exits with its parent: `--parent-pid` is checked every second, so even a SIGKILLed
runmonitor leaves no orphan behind for long.
"""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

MANAGE = Path(__file__).resolve().parent.parent / "manage.py"


def journal_process_start() -> subprocess.Popen | None:
    """Start the journal beside an embedded server; None when the journal is off."""
    if not settings.JOURNAL_ENABLED:
        return None
    return subprocess.Popen(
        [sys.executable, str(MANAGE), "journal", "--parent-pid", str(os.getpid())],
        env=os.environ.copy(),
        # Its own session: a terminal's Ctrl-C (SIGINT to the foreground group) must not hit
        # it mid-import; runmonitor stops it with SIGTERM on the way out.
        start_new_session=True,
    )


def journal_process_stop(process: subprocess.Popen | None, *, timeout: float = 10.0) -> None:
    """Stop the child started above: SIGTERM, then SIGKILL if it does not exit in time."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
