"""Project URLs: the dashboard pages, every app's API under /api/, the admin, health and the
OpenAPI schema."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from alerts.metrics import metrics_view
from etcdmonitor_site import pages
from etcdmonitor_site.health import healthz

urlpatterns = [
    path("", pages.dashboard_page, name="dashboard"),
    path("fleet", pages.dashboard_page, {"view": "fleet"}, name="dashboard-fleet"),
    path("alerts", pages.dashboard_page, {"view": "alerts"}, name="dashboard-alerts"),
    path("kv", pages.dashboard_page, {"view": "kv"}, name="dashboard-kv"),
    path("ops", pages.dashboard_page, {"view": "ops"}, name="dashboard-ops"),
    path("users", pages.dashboard_page, {"view": "users"}, name="dashboard-users"),
    path("login", pages.login_page, name="login"),
    path("change-password", pages.change_password_page, name="change-password"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    # The audit log's admin moved with its model (accounts → audit); old links follow it.
    re_path(
        r"^admin/accounts/auditlog/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/audit/auditlog/%(rest)s", query_string=True),
        name="admin-auditlog-moved",
    ),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", include("accounts.api.urls")),
    path("api/", include("monitoring.api.urls")),
    path("api/", include("kvmanager.api.urls")),
    path("api/", include("clusters.api.urls")),
    path("api/", include("ops.api.urls")),
    path("api/", include("audit.api.urls")),
    # Exactly the /api/alerts/channels… paths: other /api/alerts/ routes are the alerts app's.
    path("api/", include("notifications.api.urls")),
    path("api/", include("alerts.api.urls")),
]

handler404 = "etcdmonitor_site.pages.not_found"
handler500 = "etcdmonitor_site.exceptions.json_server_error"
