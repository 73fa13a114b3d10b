"""DRF viewsets of the accounts app: auth (login, change-password, logout, status) and the
per-user panel config."""

import json

from django.conf import settings
from django.contrib.auth import logout as auth_logout
from django.core.exceptions import RequestDataTooBig
from django.middleware.csrf import get_token, rotate_token
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from accounts import selectors, services
from accounts.api.serializers import (
    AuthStatusOutputSerializer,
    ChangePasswordInputSerializer,
    LoginInputSerializer,
    LoginOutputSerializer,
    MessageSerializer,
    PanelConfigSerializer,
)
from etcdmonitor_site.exceptions import ApiError

PANEL_CONFIG_MAX_BYTES = 64 * 1024
NEVER_EXPIRES_MAX_AGE = 10 * 365 * 24 * 3600


def _json_body(request) -> dict:
    """The parsed body, or {} when it is not a JSON object (answered like missing fields)."""
    try:
        data = request.data
    except ParseError:
        return {}
    return data if isinstance(data, dict) else {}


def _refuse(failure: services.AuthFailure) -> ApiError:
    return ApiError(failure.message, status_code=failure.status)


class AuthViewSet(viewsets.ViewSet):
    """/api/auth/*. Login, change-password and status are public; logout needs a session."""

    @extend_schema(request=LoginInputSerializer, responses=LoginOutputSerializer)
    @action(
        detail=False,
        methods=["post"],
        url_path="login",
        authentication_classes=[],
        permission_classes=[AllowAny],
    )
    def login(self, request):
        serializer = LoginInputSerializer(data=_json_body(request))
        if not serializer.is_valid():
            raise ApiError("username and password required")
        try:
            result = services.login_attempt(
                **serializer.validated_data, client_ip=selectors.client_ip(request)
            )
        except services.AuthFailure as failure:
            raise _refuse(failure) from None
        username = result.user.get_username()
        if result.must_change_password:
            return Response(
                {"username": username, "must_change_password": True, "authenticated": False}
            )
        session = result.session
        response = Response(
            {
                "username": username,
                "expires_at": session.expires_at_unix,
                "session_token": result.token,
                "must_change_password": False,
                "authenticated": True,
            }
        )
        response.set_cookie(
            selectors.SESSION_COOKIE,
            result.token,
            max_age=None if session.expires_at else NEVER_EXPIRES_MAX_AGE,
            expires=session.expires_at,
            path="/",
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
        # A new CSRF secret for the signed-in browser: a token planted or read before the login
        # (e.g. on a shared machine) must not carry over (the cookie is set by CsrfViewMiddleware).
        rotate_token(request)
        return response

    @extend_schema(request=ChangePasswordInputSerializer, responses=MessageSerializer)
    @action(
        detail=False,
        methods=["post"],
        url_path="change-password",
        authentication_classes=[],
        permission_classes=[AllowAny],
    )
    def change_password(self, request):
        serializer = ChangePasswordInputSerializer(data=_json_body(request))
        if not serializer.is_valid():
            raise ApiError("username, old_password and new_password required")
        try:
            services.password_change(
                **serializer.validated_data, client_ip=selectors.client_ip(request)
            )
        except services.AuthFailure as failure:
            raise _refuse(failure) from None
        return Response({"message": services.PASSWORD_CHANGED})

    @extend_schema(request=None, responses=MessageSerializer)
    @action(detail=False, methods=["post"], url_path="logout")
    def logout(self, request):
        services.logout(session=request.auth, client_ip=selectors.client_ip(request))
        # The same browser's Django admin session ends too (a no-op without one).
        auth_logout(request._request)
        response = Response({"message": "logged out"})
        response.delete_cookie(
            selectors.SESSION_COOKIE,
            path="/",
            samesite="Lax",
        )
        return response

    @extend_schema(responses=AuthStatusOutputSerializer)
    @action(
        detail=False,
        methods=["get"],
        url_path="status",
        authentication_classes=[],
        permission_classes=[AllowAny],
    )
    def status(self, request):
        # A stale or unknown token is not an error here: the answer is "not authenticated".
        session = selectors.session_for_request(request)
        body = {
            "auth_required": True,
            "authenticated": session is not None,
            "initial_setup_pending": services.initial_password_path().exists(),
            "app_version": settings.APP_VERSION,
            "ops_enabled": settings.OPS_ENABLED,
            "etcd_auth_required": selectors.etcd_auth_required(),
        }
        if session is not None:
            body["username"] = session.user.get_username()
            body["expires_at"] = session.expires_at_unix
        get_token(request)
        return Response(body)


class PanelConfigViewSet(viewsets.ViewSet):
    """/api/user/panel-config: the session user's dashboard layout."""

    @extend_schema(responses=PanelConfigSerializer)
    @action(detail=False, methods=["get"], url_path="panel-config")
    def panel_config(self, request):
        return Response(selectors.panel_config_for(request.user))

    @extend_schema(request=PanelConfigSerializer, responses=MessageSerializer)
    @panel_config.mapping.put
    def panel_config_save(self, request):
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > PANEL_CONFIG_MAX_BYTES:
            raise ApiError("invalid JSON")
        try:
            body = request.body
        except RequestDataTooBig:
            raise ApiError("invalid JSON") from None
        if len(body) > PANEL_CONFIG_MAX_BYTES:
            raise ApiError("invalid JSON")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ApiError("invalid JSON") from None
        serializer = PanelConfigSerializer(data=data)
        if not isinstance(data, dict) or not serializer.is_valid():
            raise ApiError("invalid JSON")
        try:
            services.panel_config_save(user=request.user, config=serializer.validated_data)
        except services.TooManyVisibleCards as exc:
            raise ApiError("too many visible cards", max=exc.maximum) from None
        return Response({"message": "ok"})
