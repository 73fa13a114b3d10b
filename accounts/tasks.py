"""Celery tasks of the accounts app: thin wrappers over services."""

from celery import shared_task

from accounts import services


@shared_task(name="accounts.tasks.purge_expired_sessions", ignore_result=True)
def purge_expired_sessions() -> int:
    """Hourly: delete expired bearer sessions (they are already refused on use) and sign-in
    failure counters that no longer count (their window and any block are over)."""
    return services.sessions_purge_expired() + services.login_throttles_purge()
