"""`GET /api/kv/v3/watch?prefix=&cluster_id=`: a live tail of a prefix as server-sent events.

The view is the short part (authentication, cluster, a stream slot, the etcd watch opened); the
stream itself runs on the event loop once the view returned (etcdmonitor_site/streams.py,
kvmanager/watch.py), so an open watch never holds one of Django's threads.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation

from audit.services import Actor
from etcdmonitor_site.errors import DomainError
from etcdmonitor_site.streams import handoff_response, stream_slot_reserve, streams_available
from kvmanager.api import serializers
from kvmanager.api.views import KvViewSet
from kvmanager.watch import WatchStream, watch_refused


class EventStreamNegotiation(BaseContentNegotiation):
    """A browser's EventSource accepts only `text/event-stream`; a refusal before the stream
    starts is still the contract's JSON body, so the client's Accept header is not consulted."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(tags=["kv v3"])
class KvWatchViewSet(KvViewSet):
    """Live watch of the v3 keyspace."""

    content_negotiation_class = EventStreamNegotiation

    @extend_schema(
        parameters=[serializers.WatchQuerySerializer],
        responses={(200, "text/event-stream"): OpenApiTypes.STR},
    )
    def watch(self, request):
        """`event: put|delete` frames with `{"key", "revision", "value", "encoding"?, "lease"}`
        after an `event: ready` naming the revision they follow; see kvmanager/watch.py."""
        prefix = self.query(serializers.WatchQuerySerializer)["prefix"]
        streams_available(request)
        try:
            slot = stream_slot_reserve(user_id=request.user.pk)
        except DomainError as exc:
            cluster_id = request.query_params.get("cluster_id") or "default"
            actor = Actor.from_request(request, cluster_id=cluster_id)
            watch_refused(actor=actor, prefix=prefix, reason=exc.message)
            raise
        try:
            with self.cluster() as gateway:
                stream = WatchStream(
                    gateway=gateway,
                    prefix=prefix,
                    user_id=request.user.pk,
                    session_id=getattr(request.auth, "pk", None),
                    scope=self.scope(),
                )
        except BaseException:
            slot.release()
            raise
        return handoff_response(slot.attach(stream))
