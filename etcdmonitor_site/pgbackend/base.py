"""Django's PostgreSQL backend, health-checking a persistent connection only when it has idled.

CONN_HEALTH_CHECKS makes Django send `SELECT 1` before the first query of *every* request: at
a few hundred requests per second that was a third of the web workers' time (bench notes in
docs/PERFORMANCE.md). A connection that finished a request without errors less than
HEALTH_CHECK_GRACE seconds ago is taken as alive; an idle one is still checked, so a restarted
PostgreSQL never leaves a dead connection to fail a request after a pause.
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
        # Called at the end of each request: no error since the last commit means the
        # connection just answered.
        healthy = self.connection is not None and not self.errors_occurred
        super().close_if_unusable_or_obsolete()
        self.proven_alive_at = time.monotonic() if healthy and self.connection is not None else 0.0
