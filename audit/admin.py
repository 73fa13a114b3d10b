"""Django admin of the audit log: viewable, filterable, exportable, strictly read-only."""

from django.contrib import admin
from django.http import StreamingHttpResponse
from django.utils import timezone

from audit.models import AuditLog
from audit.selectors import audit_csv_lines


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """The audit trail: viewable, filterable, exportable; never added to, edited or deleted."""

    list_display = (
        "timestamp",
        "username",
        "operation",
        "target",
        "success",
        "duration_ms",
        "client_ip",
    )
    list_filter = ("operation", "username", "success", ("timestamp", admin.DateFieldListFilter))
    search_fields = ("target",)
    date_hierarchy = "timestamp"
    actions = ("export_csv",)
    list_per_page = 100

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        response = StreamingHttpResponse(
            audit_csv_lines(queryset.order_by("timestamp", "id").iterator()),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
        return response
