"""Celery tasks of the journal: thin wrappers over services. The watching itself is no task
(a stream that never ends fits a process of its own: `manage.py journal`)."""

from celery import shared_task

from journal import services


@shared_task(name="journal.tasks.purge_journal", ignore_result=True)
def purge_journal() -> int:
    """Hourly: delete journal events and gaps older than JOURNAL_RETENTION_DAYS."""
    return services.journal_purge()
