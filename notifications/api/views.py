"""DRF viewset of the notification channels (`/api/alerts/channels…`, issue 20).

Every signed-in user may list channels (secrets masked); adding, changing, deleting and
testing are for staff users, and a refusal is audited.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from audit.services import Actor
from etcdmonitor_site.api import validated_body
from notifications import selectors, services
from notifications.api import serializers

NOT_AN_OBJECT = "request body must be a JSON object"


@extend_schema(tags=["alert channels"], responses=OpenApiTypes.OBJECT)
class ChannelViewSet(viewsets.ViewSet):
    """Notification channels: list, add, change, delete, send a test."""

    def writer(self, operation: str, target: str = "") -> Actor:
        actor = Actor.from_request(self.request)
        services.channel_writer_check(actor=actor, operation=operation, target=target)
        return actor

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def list(self, request):
        return Response({"channels": selectors.channels_list()})

    @extend_schema(request=serializers.ChannelCreateSerializer, responses=OpenApiTypes.OBJECT)
    def create(self, request):
        actor = self.writer("alert_channel_create")
        data = validated_body(
            request, serializers.ChannelCreateSerializer, not_an_object=NOT_AN_OBJECT
        )
        channel = services.channel_create(actor=actor, **data)
        return Response({"channel": channel.to_dict()}, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.ChannelPatchSerializer, responses=OpenApiTypes.OBJECT)
    def partial_update(self, request, channel_id: str):
        actor = self.writer("alert_channel_update", f"channel {channel_id}")
        channel = selectors.channel_get(channel_id)
        changes = validated_body(
            request, serializers.ChannelPatchSerializer, not_an_object=NOT_AN_OBJECT
        )
        channel = services.channel_update(actor=actor, channel=channel, changes=changes)
        return Response({"channel": channel.to_dict()})

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, channel_id: str):
        actor = self.writer("alert_channel_delete", f"channel {channel_id}")
        services.channel_delete(actor=actor, channel=selectors.channel_get(channel_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def test(self, request, channel_id: str):
        """Send one firing and one resolved `etcdmonitor_test` message now; 200 with
        `{"ok": true, "sent": [...]}` or `{"ok": false, "error": "<reason>", "sent": [...]}`."""
        actor = self.writer("alert_channel_test", f"channel {channel_id}")
        channel = selectors.channel_get(channel_id)
        return Response(services.channel_test(actor=actor, channel=channel))
