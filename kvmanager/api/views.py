"""DRF viewsets of the kvmanager app: the v3 and v2 key trees (`/api/kv/v3/…`, `/api/kv/v2/…`).

Every KV error body is the reference's `{"error": msg, "code": code, "message": msg}`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from audit.services import Actor
from clusters.services import not_found as tab_not_found
from clusters.services import route_cluster, tab_usage
from etcdgateway import ClusterGateway, EtcdNotFound, EtcdPermissionDenied
from etcdmonitor_site.api import cluster_id_param, validated, validated_body
from etcdmonitor_site.errors import InvalidInput, NotFound
from etcdmonitor_site.exceptions import ErrorDialect
from kvmanager import history, scopes, selectors, services
from kvmanager.api import serializers
from kvmanager.keyspace import decode_value

PERMISSION_MESSAGE = (
    "permission denied: the configured etcd user does not have permission for this operation"
)

# Every KV error body is `{"error", "code", "message"}` (the reference's shape).
KV_ERRORS = ErrorDialect(
    validation_code="invalid_request",
    parse_message="invalid request body",
    echo_message=True,
    drf_codes=True,
    forbidden_code="permission_denied",
    etcd_overrides=(
        (EtcdPermissionDenied, PERMISSION_MESSAGE, "permission_denied"),
        (EtcdNotFound, None, "key_not_found"),
    ),
)


@extend_schema(responses=OpenApiTypes.OBJECT)
class KvViewSet(viewsets.ViewSet):
    """Shared plumbing: cluster resolution (`cluster_id`, alias `tab_id`), input validation."""

    error_dialect = KV_ERRORS
    cluster_id_names = ("cluster_id", "tab_id")  # also what the permission policy reads
    tab = None  # the Cluster behind `cluster_id` / `tab_id`, once cluster() resolved it

    @contextmanager
    def cluster(self) -> Iterator[ClusterGateway]:
        """The configured cluster, or the shared or own cluster named by `cluster_id` (query, or
        body on writes; `tab_id` is its older name); a record's health follows what its
        requests find (clusters.services.tab_usage)."""
        name, cluster_id = cluster_id_param(
            self.request, names=self.cluster_id_names, code="invalid_request"
        )
        try:
            record, gateway = route_cluster(
                actor=Actor.from_request(self.request),
                cluster_id=cluster_id,
                route=self.request.path,
            )
        except NotFound:
            if name == "tab_id":  # the tab routes' own answer, as before clusters were records
                raise tab_not_found() from None
            raise
        if record is None:
            yield gateway
            return
        self.tab = record
        with tab_usage(tab=record):
            yield gateway

    def actor(self) -> Actor:
        """Who writes, on which cluster: the record's id, or "default"."""
        cluster_id = str(self.tab.id) if self.tab is not None else "default"
        return Actor.from_request(self.request, cluster_id=cluster_id)

    def scope(self) -> scopes.Scope | None:
        """The user's KV prefix scope on the resolved cluster, handed to every selector (which
        enforces it, kvmanager.scopes); None: every key."""
        return scopes.scope_for(self.actor())

    def body(self, serializer_class) -> dict:
        return validated_body(
            self.request,
            serializer_class,
            not_an_object="invalid request body: expected a JSON object",
            code="invalid_request",
        )

    def query(self, serializer_class, **defaults) -> dict:
        data = {**defaults, **self.request.query_params.dict()}
        data.pop("tab_id", None)
        data.pop("cluster_id", None)
        return validated(serializer_class, data)

    def key_param(self, *, default: str | None = None) -> str:
        if default is not None and not self.request.query_params.get("key"):
            return default
        if not self.request.query_params.get("key"):
            raise InvalidInput("key is required", code="invalid_request")
        return self.query(serializers.KeyQuerySerializer)["key"]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def separator(self, request):
        return Response({"separator": settings.KV_SEPARATOR})

    # The keyspace's reads (selectors with one signature per action), set by each viewset.
    read_info = read_tree = read_key = read_count = read_page = None

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def connect(self, request):
        with self.cluster() as gateway:
            return Response(self.read_info(gateway=gateway, scope=self.scope()))

    @extend_schema(parameters=[serializers.KeyQuerySerializer], responses=OpenApiTypes.OBJECT)
    def getpath(self, request):
        key = self.key_param(default=settings.KV_SEPARATOR)
        with self.cluster() as gateway:
            node = self.read_tree(gateway=gateway, key=key, with_values=True, scope=self.scope())
        return Response({"node": node})

    @extend_schema(parameters=[serializers.KeyQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get_key(self, request):
        key = self.key_param()
        with self.cluster() as gateway:
            return Response({"node": self.read_key(gateway=gateway, key=key, scope=self.scope())})

    @extend_schema(parameters=[serializers.KeyQuerySerializer], responses=OpenApiTypes.OBJECT)
    def count(self, request):
        """How many keys a directory delete of `key` removes (asked before confirming)."""
        key = self.key_param()
        with self.cluster() as gateway:
            count = self.read_count(gateway=gateway, key=key, scope=self.scope())
        return Response({"key": key, "count": count})

    @extend_schema(parameters=[serializers.ListQuerySerializer], responses=OpenApiTypes.OBJECT)
    def list(self, request):
        params = self.query(serializers.ListQuerySerializer)
        with self.cluster() as gateway:
            page = self.read_page(
                gateway=gateway,
                prefix=params["prefix"],
                cursor=params.get("cursor") or None,
                limit=params["limit"],
                scope=self.scope(),
            )
        return Response(page)


@extend_schema(tags=["kv v3"], responses=OpenApiTypes.OBJECT)
class KvV3ViewSet(KvViewSet):
    """The v3 keyspace."""

    read_info = staticmethod(selectors.cluster_info)
    read_tree = staticmethod(selectors.key_tree)
    read_key = staticmethod(selectors.key_get)
    read_count = staticmethod(selectors.dir_count)
    read_page = staticmethod(selectors.key_list)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def keys(self, request):
        with self.cluster() as gateway:
            root = selectors.key_tree(
                gateway=gateway,
                key=settings.KV_SEPARATOR,
                with_values=False,
                scope=self.scope(),
            )
        return StreamingHttpResponse(
            selectors.stream_tree_json(root), content_type="application/json"
        )

    @extend_schema(parameters=[serializers.SearchQuerySerializer], responses=OpenApiTypes.OBJECT)
    def search(self, request):
        params = self.query(serializers.SearchQuerySerializer)
        with self.cluster() as gateway:
            page = selectors.key_search(
                gateway=gateway,
                prefix=params["prefix"],
                query=params["q"],
                limit=params["limit"],
                cursor=params.get("cursor") or None,
                scope=self.scope(),
            )
        return Response(page)

    @extend_schema(request=serializers.V3PutSerializer, responses=OpenApiTypes.OBJECT)
    def put_key(self, request):
        data = self.body(serializers.V3PutSerializer)
        try:
            value = decode_value(data["value"], data.get("encoding"))
        except ValueError as exc:
            raise InvalidInput(str(exc), code="invalid_request") from exc
        with self.cluster() as gateway:
            node = services.kv_put(
                gateway=gateway,
                key=data["key"],
                value=value,
                ttl=data.get("ttl"),
                actor=self.actor(),
                expected_mod_revision=data.get("expected_mod_revision"),
            )
        return Response({"node": node})

    @extend_schema(request=serializers.DeleteSerializer, responses=OpenApiTypes.OBJECT)
    def delete_key(self, request):
        data = self.body(serializers.DeleteSerializer)
        with self.cluster() as gateway:
            deleted = services.kv_delete(
                gateway=gateway, key=data["key"], dir=data["dir"], actor=self.actor()
            )
        return Response({"message": "ok", "deleted": deleted})

    def cluster_id(self) -> str:
        """The journal's name of the resolved cluster (after `cluster()`)."""
        return str(self.tab.id) if self.tab is not None else "default"

    @extend_schema(parameters=[serializers.HistoryQuerySerializer], responses=OpenApiTypes.OBJECT)
    def history(self, request):
        """A key's changes, newest first (journal + etcd), or with `revision` one of them."""
        if not request.query_params.get("key"):
            raise InvalidInput("key is required", code="invalid_request")
        params = self.query(serializers.HistoryQuerySerializer)
        with self.cluster() as gateway:
            if params.get("revision") is not None:
                body = history.key_revision(
                    gateway=gateway,
                    cluster_id=self.cluster_id(),
                    key=params["key"],
                    revision=params["revision"],
                    scope=self.scope(),
                )
            else:
                body = history.key_history(
                    gateway=gateway,
                    cluster_id=self.cluster_id(),
                    key=params["key"],
                    limit=params["limit"],
                    scope=self.scope(),
                )
        return Response(body)

    @extend_schema(parameters=[serializers.DeletedQuerySerializer], responses=OpenApiTypes.OBJECT)
    def deleted(self, request):
        """The journal's deletes under `prefix`, newest first, keyset-paginated."""
        params = self.query(serializers.DeletedQuerySerializer)
        with self.cluster():
            page = history.deleted_keys(
                cluster_id=self.cluster_id(),
                prefix=params["prefix"],
                cursor=params.get("cursor") or None,
                limit=params["limit"],
                scope=self.scope(),
            )
        return Response(page)

    @extend_schema(request=serializers.RevertSerializer, responses=OpenApiTypes.OBJECT)
    def revert(self, request):
        data = self.body(serializers.RevertSerializer)
        with self.cluster() as gateway:
            node = services.kv_revert(
                gateway=gateway,
                key=data["key"],
                revision=data["revision"],
                actor=self.actor(),
                expected_mod_revision=data.get("expected_mod_revision"),
            )
        return Response({"node": node})

    @extend_schema(request=serializers.RestoreSerializer, responses=OpenApiTypes.OBJECT)
    def restore(self, request):
        data = self.body(serializers.RestoreSerializer)
        with self.cluster() as gateway:
            node = services.kv_restore(
                gateway=gateway, key=data["key"], revision=data["revision"], actor=self.actor()
            )
        return Response({"node": node})


@extend_schema(tags=["kv v2"], responses=OpenApiTypes.OBJECT)
class KvV2ViewSet(KvViewSet):
    """The v2 keyspace (etcd started with --enable-v2); availability is checked on every call."""

    read_info = staticmethod(selectors.v2_cluster_info)
    read_tree = staticmethod(selectors.v2_key_tree)
    read_key = staticmethod(selectors.v2_key_get)
    read_count = staticmethod(selectors.v2_dir_count)
    read_page = staticmethod(selectors.v2_key_list)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def keys(self, request):
        with self.cluster() as gateway:
            node = selectors.v2_key_tree(
                gateway=gateway,
                key=settings.KV_SEPARATOR,
                with_values=False,
                scope=self.scope(),
                operation="kv_keys",
            )
        return Response({"node": node})

    @extend_schema(request=serializers.PutSerializer, responses=OpenApiTypes.OBJECT)
    def put_key(self, request):
        data = self.body(serializers.PutSerializer)
        if isinstance(request.data, dict) and "expected_mod_revision" in request.data:
            # Silently ignoring a safety precondition would be worse than refusing it.
            raise InvalidInput(
                "expected_mod_revision is a v3 field; v2 keys have no mod_revision",
                code="invalid_request",
            )
        try:
            raw = decode_value(data["value"], data.get("encoding"))
        except ValueError as exc:
            raise InvalidInput(str(exc), code="invalid_request") from exc
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("v2 values must be UTF-8 text", code="invalid_request") from exc
        with self.cluster() as gateway:
            node = services.v2_put(
                gateway=gateway,
                key=data["key"],
                value=value,
                ttl=data.get("ttl"),
                dir=data["dir"],
                actor=self.actor(),
            )
        return Response({"node": node})

    @extend_schema(request=serializers.DeleteSerializer, responses=OpenApiTypes.OBJECT)
    def delete_key(self, request):
        data = self.body(serializers.DeleteSerializer)
        with self.cluster() as gateway:
            services.v2_delete(
                gateway=gateway, key=data["key"], dir=data["dir"], actor=self.actor()
            )
        return Response({"message": "ok"})
