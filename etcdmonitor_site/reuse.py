"""Per-process reuse windows: a value computed once is served again for a few seconds.

/healthz, the session lookup and /api/current each keep one (HEALTH_, AUTH_, CURRENT_CACHE_SECONDS),
as do etcd's auth status and the default cluster's member URLs. The window is passed to every
read, so a setting of 0 (the tests' default) turns reuse off at once, and raising it serves the
last stored value again. A window may depend on the value (a guess is kept less long than an
answer): pass a function of the stored value instead of a number.

A reader that computed its value before a `clear()` must not store it afterwards (a session
lookup racing a logout would put the revoked row back): readers take `generation()` before
computing and pass it to `put(..., since=)`, which drops the value if a clear came in between.
"""

import threading
import time
from collections.abc import Callable


class ReuseWindow:
    """A bounded map of key → (time stored, value); None is never stored (it means a miss)."""

    def __init__(self, max_entries: int):
        self._entries: dict = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._generation = 0

    def generation(self) -> int:
        """A token for `put(since=)`: it changes with every `clear()`."""
        return self._generation

    def get(self, key, seconds: float | Callable[..., float]):
        """The value stored for `key` less than `seconds` (or `seconds(value)`) ago, else None."""
        hit = self._entries.get(key)
        if hit is None:
            return None
        window = seconds(hit[1]) if callable(seconds) else seconds
        if window > 0 and time.monotonic() - hit[0] < window:
            return hit[1]
        return None

    def put(self, key, value, *, since: int | None = None) -> None:
        """Keep `value`; a full map starts over rather than grow (keys can come from clients).

        With `since` (a `generation()` taken before the value was computed) the value is kept
        only if nothing was cleared meanwhile.
        """
        if value is None:
            return
        with self._lock:
            if since is not None and since != self._generation:
                return
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)

    def clear(self, **_signal_kwargs) -> None:
        """Forget everything (also usable as a signal receiver)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
