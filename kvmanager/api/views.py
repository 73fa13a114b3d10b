"""DRF viewsets of the kvmanager app: the v3 and v2 key trees (`/api/kv/v3/…`, `/api/kv/v2/…`).

Every KV error body is the reference's `{"error": msg, "code": code, "message": msg}`.
"""

import logging

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import viewsets
from rest_framework.response import Response

from accounts.selectors import client_ip
from etcdgateway import (
    ClusterGateway,
    EtcdError,
    EtcdNotFound,
    EtcdPermissionDenied,
    cluster_gateway,
)
from etcdgateway.v2 import EtcdV2Unavailable
from etcdmonitor_site.exceptions import ApiError, first_message
from kvmanager import selectors, services, tab_services
from kvmanager.api import serializers
from kvmanager.keyspace import decode_value
from kvmanager.tab_crypto import TabDecryptFailed, TabKeyMissing

logger = logging.getLogger(__name__)

PERMISSION_MESSAGE = (
    "permission denied: the configured etcd user does not have permission for this operation"
)


def kv_error(message: str, *, status_code: int, code: str) -> ApiError:
    return ApiError(message, status_code=status_code, code=code)


def _reshape(exc: Exception) -> Exception:
    """Any failure of a KV view as an ApiError with the KV body (auth failures stay DRF's)."""
    if isinstance(exc, ApiError | drf_exceptions.NotAuthenticated):
        return exc
    if isinstance(exc, drf_exceptions.AuthenticationFailed | drf_exceptions.PermissionDenied):
        return exc
    if isinstance(exc, EtcdV2Unavailable):
        return kv_error(exc.message, status_code=503, code="v2_unavailable")
    if isinstance(exc, EtcdPermissionDenied):
        return kv_error(PERMISSION_MESSAGE, status_code=403, code="permission_denied")
    if isinstance(exc, EtcdNotFound):
        return kv_error(exc.message, status_code=404, code="key_not_found")
    if isinstance(exc, EtcdError):
        return kv_error(exc.message, status_code=exc.status_code, code=exc.code)
    if isinstance(exc, services.ValueTooLarge):
        return kv_error(str(exc), status_code=413, code="value_too_large")
    if isinstance(exc, selectors.InvalidCursor):
        return kv_error(str(exc), status_code=400, code="invalid_cursor")
    if isinstance(exc, drf_exceptions.ParseError):
        return kv_error("invalid request body", status_code=400, code="invalid_request")
    if isinstance(exc, drf_exceptions.ValidationError):
        return kv_error(first_message(exc.detail), status_code=400, code="invalid_request")
    if isinstance(exc, drf_exceptions.APIException):
        message = first_message(exc.detail)
        return kv_error(message, status_code=exc.status_code, code=exc.default_code)
    return exc


@extend_schema(responses=OpenApiTypes.OBJECT)
class KvViewSet(viewsets.ViewSet):
    """Shared plumbing: cluster resolution (`?tab_id=`), input validation, error bodies."""

    def handle_exception(self, exc):
        if self.tab is not None and isinstance(exc, EtcdError):
            tab_services.tab_mark_used(tab=self.tab, error=exc)
        exc = _reshape(exc)
        if isinstance(exc, ApiError):
            # The project handler's error_body() has a `message` parameter of its own, so the
            # KV body's "message" field is added here rather than through ApiError extras.
            body = {"error": exc.message, "code": exc.error_code, "message": exc.message}
            logger.info("kv request failed: %s %s", exc.status_code, exc.message)
            return Response({**exc.extra, **body}, status=exc.status_code)
        return super().handle_exception(exc)

    tab = None  # the KvClusterTab behind `?tab_id=`, once gateway() resolved it

    def gateway(self) -> ClusterGateway:
        """The configured cluster, or the requesting user's tab named by `?tab_id=`."""
        tab_id = self.request.query_params.get("tab_id", "")
        if tab_id in ("", "default"):
            return cluster_gateway()
        actor = tab_services.TabActor(user=self.request.user, client_ip=client_ip(self.request))
        tab = tab_services.tab_for_user(actor=actor, tab_id=tab_id, route=self.request.path)
        try:
            gateway = tab_services.tab_gateway(tab)
        except (TabKeyMissing, TabDecryptFailed) as exc:
            raise kv_error(
                f"tab credentials unavailable: {exc}", status_code=500, code="INTERNAL"
            ) from None
        self.tab = tab
        return gateway

    def finalize_response(self, request, response, *args, **kwargs):
        if self.tab is not None and response.status_code < 400:
            tab_services.tab_mark_used(tab=self.tab, error=None)
        return super().finalize_response(request, response, *args, **kwargs)

    def actor(self) -> services.Actor:
        user = self.request.user
        return services.Actor(
            username=getattr(user, "username", "") or "anonymous",
            client_ip=client_ip(self.request),
            tab_id=str(self.tab.id) if self.tab is not None else "default",
        )

    def body(self, serializer_class) -> dict:
        if not isinstance(self.request.data, dict):
            raise kv_error(
                "invalid request body: expected a JSON object",
                status_code=400,
                code="invalid_request",
            )
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def query(self, serializer_class, **defaults) -> dict:
        data = {**defaults, **self.request.query_params.dict()}
        data.pop("tab_id", None)
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def key_param(self, *, default: str | None = None) -> str:
        if default is not None and not self.request.query_params.get("key"):
            return default
        if not self.request.query_params.get("key"):
            raise kv_error("key is required", status_code=400, code="invalid_request")
        return self.query(serializers.KeyQuerySerializer)["key"]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def separator(self, request):
        return Response({"separator": settings.KV_SEPARATOR})


@extend_schema(tags=["kv v3"], responses=OpenApiTypes.OBJECT)
class KvV3ViewSet(KvViewSet):
    """The v3 keyspace."""

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def connect(self, request):
        return Response(selectors.cluster_info(gateway=self.gateway()))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def keys(self, request):
        gateway = self.gateway()
        root = selectors.key_tree(gateway=gateway, key=settings.KV_SEPARATOR, with_values=False)
        return StreamingHttpResponse(
            selectors.stream_tree_json(root), content_type="application/json"
        )

    @extend_schema(parameters=[serializers.KeyQuerySerializer], responses=OpenApiTypes.OBJECT)
    def getpath(self, request):
        key = self.key_param(default=settings.KV_SEPARATOR)
        node = selectors.key_tree(gateway=self.gateway(), key=key, with_values=True)
        return Response({"node": node})

    @extend_schema(parameters=[serializers.KeyQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get_key(self, request):
        key = self.key_param()
        return Response({"node": selectors.key_get(gateway=self.gateway(), key=key)})

    @extend_schema(parameters=[serializers.KeyQuerySerializer], responses=OpenApiTypes.OBJECT)
    def count(self, request):
        """How many keys a directory delete of `key` removes (asked before confirming)."""
        key = self.key_param()
        return Response({"key": key, "count": selectors.dir_count(gateway=self.gateway(), key=key)})

    @extend_schema(parameters=[serializers.ListQuerySerializer], responses=OpenApiTypes.OBJECT)
    def list(self, request):
        params = self.query(serializers.ListQuerySerializer)
        return Response(
            selectors.key_list(
                gateway=self.gateway(),
                prefix=params["prefix"],
                cursor=params.get("cursor") or None,
                limit=params["limit"],
            )
        )

    @extend_schema(parameters=[serializers.SearchQuerySerializer], responses=OpenApiTypes.OBJECT)
    def search(self, request):
        params = self.query(serializers.SearchQuerySerializer)
        return Response(
            selectors.key_search(
                gateway=self.gateway(),
                prefix=params["prefix"],
                query=params["q"],
                limit=params["limit"],
                cursor=params.get("cursor") or None,
            )
        )

    @extend_schema(request=serializers.PutSerializer, responses=OpenApiTypes.OBJECT)
    def put_key(self, request):
        data = self.body(serializers.PutSerializer)
        try:
            value = decode_value(data["value"], data.get("encoding"))
        except ValueError as exc:
            raise kv_error(str(exc), status_code=400, code="invalid_request") from exc
        node = services.kv_put(
            gateway=self.gateway(),
            key=data["key"],
            value=value,
            ttl=data.get("ttl"),
            actor=self.actor(),
        )
        return Response({"node": node})

    @extend_schema(request=serializers.DeleteSerializer, responses=OpenApiTypes.OBJECT)
    def delete_key(self, request):
        data = self.body(serializers.DeleteSerializer)
        deleted = services.kv_delete(
            gateway=self.gateway(), key=data["key"], dir=data["dir"], actor=self.actor()
        )
        return Response({"message": "ok", "deleted": deleted})


@extend_schema(tags=["kv v2"], responses=OpenApiTypes.OBJECT)
class KvV2ViewSet(KvViewSet):
    """The v2 keyspace (etcd started with --enable-v2); availability is checked on every call."""

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def connect(self, request):
        return Response(selectors.v2_cluster_info(gateway=self.gateway()))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def keys(self, request):
        node = selectors.v2_key_tree(
            gateway=self.gateway(), key=settings.KV_SEPARATOR, with_values=False
        )
        return Response({"node": node})

    @extend_schema(parameters=[serializers.KeyQuerySerializer], responses=OpenApiTypes.OBJECT)
    def getpath(self, request):
        key = self.key_param(default=settings.KV_SEPARATOR)
        return Response(
            {"node": selectors.v2_key_tree(gateway=self.gateway(), key=key, with_values=True)}
        )

    @extend_schema(parameters=[serializers.KeyQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get_key(self, request):
        key = self.key_param()
        return Response({"node": selectors.v2_key_get(gateway=self.gateway(), key=key)})

    @extend_schema(parameters=[serializers.KeyQuerySerializer], responses=OpenApiTypes.OBJECT)
    def count(self, request):
        """How many keys a directory delete of `key` removes (asked before confirming)."""
        key = self.key_param()
        return Response(
            {"key": key, "count": selectors.v2_dir_count(gateway=self.gateway(), key=key)}
        )

    @extend_schema(parameters=[serializers.ListQuerySerializer], responses=OpenApiTypes.OBJECT)
    def list(self, request):
        params = self.query(serializers.ListQuerySerializer)
        return Response(
            selectors.v2_key_list(
                gateway=self.gateway(),
                prefix=params["prefix"],
                cursor=params.get("cursor") or None,
                limit=params["limit"],
            )
        )

    @extend_schema(request=serializers.PutSerializer, responses=OpenApiTypes.OBJECT)
    def put_key(self, request):
        data = self.body(serializers.PutSerializer)
        try:
            raw = decode_value(data["value"], data.get("encoding"))
        except ValueError as exc:
            raise kv_error(str(exc), status_code=400, code="invalid_request") from exc
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise kv_error(
                "v2 values must be UTF-8 text", status_code=400, code="invalid_request"
            ) from exc
        node = services.v2_put(
            gateway=self.gateway(),
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
        services.v2_delete(
            gateway=self.gateway(), key=data["key"], dir=data["dir"], actor=self.actor()
        )
        return Response({"message": "ok"})
