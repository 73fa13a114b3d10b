"""DRF viewsets of the cluster records (`/api/clusters…`, issue 19) and of the KV tabs, a view of
a user's own clusters (`/api/kv/tabs…`, reference §1.4).

Error bodies are `{"error", "code", …}` with the reference's `KV_TAB_*` / `BAD_REQUEST` /
`INTERNAL` codes; a refused connection test is a 400, never a 401.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from audit.services import Actor
from clusters import selectors, services
from clusters.api import serializers
from etcdmonitor_site.api import validated_body
from etcdmonitor_site.exceptions import ErrorDialect

TAB_ERRORS = ErrorDialect(
    validation_code="BAD_REQUEST",
    parse_message="invalid request body",
    internal_code="INTERNAL",
    forbidden_code="FORBIDDEN",
)


@extend_schema(tags=["clusters"], responses=OpenApiTypes.OBJECT)
class ClusterViewSet(viewsets.ViewSet):
    """The clusters one deployment knows: every signed-in user reads the shared ones (the
    default among them) and their own; only staff write, and never the default."""

    error_dialect = TAB_ERRORS  # the connection refusals are the tabs' (KV_TAB_* codes)

    def actor(self) -> Actor:
        return Actor.from_request(self.request)

    def body(self, serializer_class) -> dict:
        return validated_body(
            self.request,
            serializer_class,
            not_an_object="request body must be a JSON object",
            code="BAD_REQUEST",
        )

    def record(self, cluster_id: str):
        return services.cluster_for_viewer(
            actor=self.actor(), cluster_id=cluster_id, route=self.request.path
        )

    @extend_schema(operation_id="clusters_list", responses=OpenApiTypes.OBJECT)
    def list(self, request):
        services.default_cluster_sync()
        records = selectors.clusters_visible(user=request.user)
        return Response({"clusters": [cluster.to_dict() for cluster in records]})

    @extend_schema(request=serializers.ClusterCreateSerializer, responses=OpenApiTypes.OBJECT)
    def create(self, request):
        data = self.body(serializers.ClusterCreateSerializer)
        cluster = services.cluster_create(actor=self.actor(), **data)
        return Response(cluster.to_dict(), status=status.HTTP_201_CREATED)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def retrieve(self, request, cluster_id: str):
        return Response(self.record(cluster_id).to_dict())

    @extend_schema(request=serializers.ClusterPatchSerializer, responses=OpenApiTypes.OBJECT)
    def partial_update(self, request, cluster_id: str):
        cluster = self.record(cluster_id)
        changes = self.body(serializers.ClusterPatchSerializer)
        cluster = services.cluster_update(actor=self.actor(), cluster=cluster, changes=changes)
        return Response(cluster.to_dict())

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, cluster_id: str):
        services.cluster_delete(actor=self.actor(), cluster=self.record(cluster_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["kv tabs"], responses=OpenApiTypes.OBJECT)
class KvTabViewSet(viewsets.ViewSet):
    """A user's remote-cluster tabs: list, add, edit, close, test (stored or not yet), reorder."""

    # 401 keeps the project-wide body {"error": "not authenticated"} (the auth sweep pins it
    # on every route), without the reference's "UNAUTHORIZED" code.
    error_dialect = TAB_ERRORS

    def actor(self) -> Actor:
        return Actor.from_request(self.request)

    def body(self, serializer_class, *, optional: bool = False) -> dict:
        return validated_body(
            self.request,
            serializer_class,
            not_an_object="request body must be a JSON object",
            code="BAD_REQUEST",
            optional=optional,
        )

    def owned(self, tab_id: str):
        return services.tab_for_user(actor=self.actor(), tab_id=tab_id, route=self.request.path)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def list(self, request):
        return Response({"tabs": selectors.tabs_for_user(user=request.user)})

    @extend_schema(request=serializers.TabCreateSerializer, responses=OpenApiTypes.OBJECT)
    def create(self, request):
        data = self.body(serializers.TabCreateSerializer)
        tab, warning = services.tab_create(actor=self.actor(), **data)
        body = {"tab": tab.to_tab_dict()}
        if warning:
            body["warning"] = warning
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.TabPatchSerializer, responses=OpenApiTypes.OBJECT)
    def partial_update(self, request, tab_id: str):
        tab = self.owned(tab_id)
        changes = self.body(serializers.TabPatchSerializer)
        tab, warning = services.tab_update(actor=self.actor(), tab=tab, changes=changes)
        body = {"tab": tab.to_tab_dict()}
        if warning:
            body["warning"] = warning
        return Response(body)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, tab_id: str):
        services.tab_delete(actor=self.actor(), tab=self.owned(tab_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=serializers.TabTestSerializer, responses=OpenApiTypes.OBJECT)
    def test(self, request, tab_id: str):
        tab = self.owned(tab_id)
        data = self.body(serializers.TabTestSerializer, optional=True)
        result, error = services.tab_test(tab=tab, **data)
        if result != "ok":
            return Response({"status": result, "error": error}, status=400)
        return Response({"status": "ok"})

    @extend_schema(
        operation_id="kv_tabs_test_connection",
        request=serializers.TabConnectionSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def test_connection(self, request):
        """Test a new tab's connection fields; nothing is stored (the add dialog's test)."""
        data = self.body(serializers.TabConnectionSerializer)
        members, warning = services.connection_fields_test(**data)
        body = {"status": "ok", "members": members}
        if warning:
            body["warning"] = warning
        return Response(body)

    @extend_schema(request=serializers.TabOrderSerializer, responses=OpenApiTypes.OBJECT)
    def order(self, request):
        data = self.body(serializers.TabOrderSerializer)
        services.tabs_reorder(actor=self.actor(), ids=data["ids"], route=request.path)
        return Response({"ok": True})
