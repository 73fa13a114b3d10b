"""Reads of the notifications app: channels and the outbox's state."""

from django.db.models import Count

from etcdmonitor_site.errors import NotFound
from notifications.models import Channel, OutboxMessage


def channels_list() -> list[dict]:
    """Every channel as the API shows it (secrets masked), by name."""
    return [channel.to_dict() for channel in Channel.objects.order_by("name", "pk")]


def channel_get(channel_id) -> Channel:
    """The channel `channel_id` (an int or its decimal text), or NotFound."""
    try:
        key = int(channel_id)
    except (TypeError, ValueError):
        raise NotFound("channel not found") from None
    channel = Channel.objects.filter(pk=key).first()
    if channel is None:
        raise NotFound("channel not found")
    return channel


def outbox_counts() -> dict[str, int]:
    """Outbox rows by state (for /metrics and the admin): {"pending": 3, "failed": 1, …}."""
    rows = OutboxMessage.objects.values("state").annotate(n=Count("id")).order_by("state")
    return {row["state"]: row["n"] for row in rows}
