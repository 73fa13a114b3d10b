"""Django's PostgreSQL backend, health-checking a persistent connection only when it has idled.

CONN_HEALTH_CHECKS makes Django send `SELECT 1` before the first query of *every* request: at
a few hundred requests per second that was a third of the web workers' time (bench notes in
docs/PERFORMANCE.md). A connection that finished a request without errors less than
HEALTH_CHECK_GRACE seconds ago is taken as alive; an idle one is still checked, so a restarted
PostgreSQL (or one that ended an idle session) never leaves a dead connection to fail a
request after a pause.
"""

import time

from django.db.backends.postgresql import base

HEALTH_CHECK_GRACE = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    proven_alive_at = 0.0

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
