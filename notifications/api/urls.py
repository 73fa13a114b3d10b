"""HTTP routes of the notification channels, mounted under /api/ by the project urls.

Each path is exact, so every other /api/alerts/* path stays the alerts app's."""

from django.urls import path

from notifications.api.views import ChannelViewSet

urlpatterns = [
    path(
        "alerts/channels",
        ChannelViewSet.as_view({"get": "list", "post": "create"}),
        name="alert-channels",
    ),
    path(
        "alerts/channels/<str:channel_id>",
        ChannelViewSet.as_view({"patch": "partial_update", "delete": "destroy"}),
        name="alert-channel",
    ),
    path(
        "alerts/channels/<str:channel_id>/test",
        ChannelViewSet.as_view({"post": "test"}),
        name="alert-channel-test",
    ),
]
