"""`GET /api/kv/v3/watch?prefix=&cluster_id=`: a live tail of a prefix as server-sent events.

The view is the short part (authentication, cluster, a stream slot, the etcd watch opened); the
stream itself runs on the event loop once the view returned (etcdmonitor_site/streams.py,
kvmanager/watch.py), so an open watch never holds one of Django's threads.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema

from etcdmonitor_site.streams import handoff_response, stream_slot_reserve
from kvmanager.api import serializers
from kvmanager.api.views import KvViewSet
from kvmanager.watch import WatchStream


@extend_schema(tags=["kv v3"])
class KvWatchViewSet(KvViewSet):
    """Live watch of the v3 keyspace."""

    @extend_schema(
        parameters=[serializers.WatchQuerySerializer],
        responses={(200, "text/event-stream"): OpenApiTypes.STR},
    )
    def watch(self, request):
        """`event: put|delete` frames with `{"key", "revision", "value", "encoding"?, "lease"}`
        after an `event: ready` naming the revision they follow; see kvmanager/watch.py."""
        prefix = self.query(serializers.WatchQuerySerializer)["prefix"]
        slot = stream_slot_reserve(user_id=request.user.pk)
        try:
            with self.cluster() as gateway:
                stream = WatchStream(
                    gateway=gateway,
                    prefix=prefix,
                    user_id=request.user.pk,
                    session_id=getattr(request.auth, "pk", None),
                )
        except BaseException:
            slot.release()
            raise
        return handoff_response(slot.attach(stream))
