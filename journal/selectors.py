"""Reads of the journal: which clusters are journaled, positions, events and gaps."""

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from journal.models import JournalCursor, JournalEvent, JournalGap


def journal_clusters() -> list[str]:
    """The cluster ids the journal follows: every monitored cluster record, "default" first."""
    from clusters.selectors import monitored_cluster_ids

    return monitored_cluster_ids()


def journal_position(*, cluster_id: str) -> JournalCursor | None:
    """The cluster's cursor (revision stored up to, etcd's newest seen), None before the first
    start."""
    return JournalCursor.objects.filter(cluster_id=cluster_id).first()


def journal_events(*, cluster_id: str, key: bytes | None = None) -> QuerySet[JournalEvent]:
    """The cluster's stored events in revision order, optionally of one key."""
    events = JournalEvent.objects.filter(cluster_id=cluster_id)
    if key is not None:
        events = events.filter(key=key)
    return events.order_by("revision", "key")


def journal_gaps(*, cluster_id: str) -> QuerySet[JournalGap]:
    """The cluster's recorded gaps, oldest first."""
    return JournalGap.objects.filter(cluster_id=cluster_id).order_by("from_revision")


def journal_stale(*, cluster_ids: list[str], max_age: timedelta) -> list[str]:
    """The clusters whose journal has not stored or heard from etcd within `max_age` (an idle
    worker still notes etcd's progress every PROGRESS_AFTER seconds), or never started."""
    fresh = set(
        JournalCursor.objects.filter(
            cluster_id__in=cluster_ids, updated_at__gte=timezone.now() - max_age
        ).values_list("cluster_id", flat=True)
    )
    return [cluster_id for cluster_id in cluster_ids if cluster_id not in fresh]
