"""Django admin of the change journal: read-only, as a record of what etcd reported must be."""

from django.contrib import admin

from journal.models import JournalCursor, JournalEvent, JournalGap


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable and filterable; rows are written by the journal worker alone."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(JournalEvent)
class JournalEventAdmin(ReadOnlyAdmin):
    list_display = ("cluster_id", "revision", "shown_key", "kind", "value_size", "observed_at")
    list_filter = ("cluster_id", "kind")
    ordering = ("-revision",)
    list_per_page = 100
    show_full_result_count = False  # counting a large journal on every page is slow

    @admin.display(description="key")
    def shown_key(self, obj: JournalEvent) -> str:
        return bytes(obj.key).decode("utf-8", "backslashreplace")


@admin.register(JournalGap)
class JournalGapAdmin(ReadOnlyAdmin):
    list_display = ("cluster_id", "from_revision", "to_revision", "detected_at")
    list_filter = ("cluster_id",)


@admin.register(JournalCursor)
class JournalCursorAdmin(ReadOnlyAdmin):
    list_display = ("cluster_id", "revision", "etcd_revision", "updated_at")
