"""HTTP routes of the ops app, mounted under /api/ by the project urls."""

from django.urls import path

from ops.api.views import MaintenanceViewSet

urlpatterns = [
    path(
        "ops/defragment", MaintenanceViewSet.as_view({"post": "defragment"}), name="ops-defragment"
    ),
    path("ops/snapshot", MaintenanceViewSet.as_view({"get": "snapshot"}), name="ops-snapshot"),
    path("ops/alarms", MaintenanceViewSet.as_view({"get": "alarms"}), name="ops-alarms"),
    path(
        "ops/alarms/disarm",
        MaintenanceViewSet.as_view({"post": "alarm_disarm"}),
        name="ops-alarm-disarm",
    ),
    path(
        "ops/move-leader",
        MaintenanceViewSet.as_view({"post": "move_leader"}),
        name="ops-move-leader",
    ),
    path("ops/hashkv", MaintenanceViewSet.as_view({"post": "hashkv"}), name="ops-hashkv"),
    path("ops/compact", MaintenanceViewSet.as_view({"post": "compact"}), name="ops-compact"),
    path(
        "ops/compact/revision",
        MaintenanceViewSet.as_view({"get": "compact_revision"}),
        name="ops-compact-revision",
    ),
]
