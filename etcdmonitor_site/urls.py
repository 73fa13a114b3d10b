"""Project URLs: every app's API under /api/, the admin, health and the OpenAPI schema."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from etcdmonitor_site.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", include("accounts.api.urls")),
    path("api/", include("monitoring.api.urls")),
    path("api/", include("kvmanager.api.urls")),
    path("api/", include("ops.api.urls")),
]

handler404 = "etcdmonitor_site.exceptions.json_not_found"
handler500 = "etcdmonitor_site.exceptions.json_server_error"
