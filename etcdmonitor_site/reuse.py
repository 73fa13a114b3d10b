"""Per-process reuse windows: a value computed once is served again for a few seconds.

/healthz, the session lookup and /api/current each keep one (HEALTH_, AUTH_, CURRENT_CACHE_SECONDS).
The window is passed to every read, so a setting of 0 (the tests' default) turns reuse off at
once, and raising it serves the last stored value again.
"""

import threading
import time


class ReuseWindow:
    """A bounded map of key → (time stored, value); None is never stored (it means a miss)."""

    def __init__(self, max_entries: int):
        self._entries: dict = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key, seconds: float):
        """The value stored for `key` less than `seconds` ago, else None."""
        if seconds <= 0:
            return None
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < seconds:
            return hit[1]
        return None

    def put(self, key, value) -> None:
        """Keep `value`; a full map starts over rather than grow (keys can come from clients)."""
        if value is None:
            return
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)

    def clear(self, **_signal_kwargs) -> None:
        """Forget everything (also usable as a signal receiver)."""
        with self._lock:
            self._entries.clear()
