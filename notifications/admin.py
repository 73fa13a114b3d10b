"""Django admin of the notifications app: channels (secrets never shown) and the outbox."""

from django.contrib import admin

from notifications.models import Channel, OutboxMessage


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    """Read-only here: channels change through the API, which validates and encrypts."""

    list_display = ("name", "kind", "enabled", "updated_at")
    list_filter = ("kind", "enabled")
    exclude = ("secret_cipher",)
    readonly_fields = ("name", "kind", "config", "has_password", "created_at", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """What was sent, is waiting, or failed, and why."""

    list_display = (
        "id",
        "channel",
        "alert_status",
        "fingerprint",
        "state",
        "attempts",
        "next_attempt_at",
        "sent_at",
    )
    list_filter = ("state", "alert_status", "channel")
    search_fields = ("fingerprint",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
