"""HTTP routes of the monitoring app, mounted under /api/ (no trailing slash, as the reference)."""

from django.urls import path

from monitoring.api.views import (
    DebugViewSet,
    FleetViewSet,
    MembersViewSet,
    MetricsViewSet,
    PanelConfigViewSet,
    StatusViewSet,
)

urlpatterns = [
    path("members", MembersViewSet.as_view({"get": "list"}), name="members"),
    path("current", MetricsViewSet.as_view({"get": "current"}), name="metrics-current"),
    path("range", MetricsViewSet.as_view({"get": "range"}), name="metrics-range"),
    path("status", StatusViewSet.as_view({"get": "retrieve"}), name="status"),
    path("fleet", FleetViewSet.as_view({"get": "list"}), name="fleet"),
    path("debug", DebugViewSet.as_view({"get": "retrieve"}), name="debug"),
    path(
        "user/panel-config",
        PanelConfigViewSet.as_view({"get": "retrieve", "put": "update"}),
        name="user-panel-config",
    ),
]
