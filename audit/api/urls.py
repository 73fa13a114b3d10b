"""HTTP routes of the audit app, mounted under /api/ by the project urls."""

from django.urls import path

from audit.api.views import AuditLogViewSet

urlpatterns = [
    path("ops/audit-logs", AuditLogViewSet.as_view({"get": "list"}), name="ops-audit-logs"),
]
