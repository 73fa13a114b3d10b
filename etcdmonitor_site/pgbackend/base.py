"""Django's PostgreSQL backend, health-checking a persistent connection only when it has idled,
and reading timestamps with psycopg's C loader.

CONN_HEALTH_CHECKS makes Django send `SELECT 1` before the first query of *every* request: at
a few hundred requests per second that was a third of the web workers' time (bench notes in
docs/PERFORMANCE.md). A connection that finished a request without errors less than
HEALTH_CHECK_GRACE seconds ago is taken as alive; an idle one is still checked, so a restarted
PostgreSQL (or one that ended an idle session) never leaves a dead connection to fail a
request after a pause.

Django registers its own `timestamptz` loader on every connection, a Python subclass of
psycopg's pure-Python one (it only sets the result's tzinfo), so psycopg's C loader is never
used: ~5.5 µs per value against ~0.4. A fleet's rounds read hundreds of timestamps every few
seconds. When the session's time zone is UTC, which is what Django's loader sets anyway, the
C loader gives the very same values (`UtcTimestamptzLoader`).
"""

import datetime
import time

import psycopg
from django.db.backends.postgresql import base
from psycopg.adapt import AdaptersMap
from psycopg.pq import Format
from psycopg.types.datetime import TimestamptzLoader

HEALTH_CHECK_GRACE = 1.0


def _c_timestamptz_loader():
    """psycopg's C `timestamptz` loader class, None without psycopg's C module: registering the
    Python class makes psycopg pick its C twin (public behaviour of `register_loader`)."""
    probe = AdaptersMap(psycopg.adapters)
    probe.register_loader("timestamptz", TimestamptzLoader)
    found = probe.get_loader(psycopg.adapters.types["timestamptz"].oid, Format.TEXT)
    return None if found is TimestamptzLoader else found


_C_TIMESTAMPTZ = _c_timestamptz_loader()


class UtcTimestamptzLoader:
    """Makes psycopg's C loader (final: no subclass) for a UTC session. `timezone` is what
    Django's cursor set-up compares with its own to decide whether a cursor needs its loader."""

    timezone = datetime.UTC
    format = Format.TEXT

    def __new__(cls, oid, context=None):
        return _C_TIMESTAMPTZ(oid, context)


class DatabaseWrapper(base.DatabaseWrapper):
    proven_alive_at = 0.0

    def init_connection_state(self):
        super().init_connection_state()  # sets the session's time zone
        if (
            _C_TIMESTAMPTZ is not None
            and self.timezone is datetime.UTC
            and self.connection.info.parameter_status("TimeZone") == "UTC"
        ):
            self.connection.adapters.register_loader("timestamptz", UtcTimestamptzLoader)

    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and not self.health_check_done
            and time.monotonic() - self.proven_alive_at < HEALTH_CHECK_GRACE
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def close_if_unusable_or_obsolete(self):
        # Called before and after each request (and Celery task): a connection that served
        # queries since the last call without an error has just proven itself alive. One that
        # was not used keeps its proof's age: the call that starts a request after an idle
        # spell must not vouch for a connection the server may have ended meanwhile.
        served = self.connection is not None and self.health_check_done
        served = served and not self.errors_occurred
        super().close_if_unusable_or_obsolete()
        if self.connection is None:
            self.proven_alive_at = 0.0
        elif served:
            self.proven_alive_at = time.monotonic()
