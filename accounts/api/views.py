"""DRF viewsets of the accounts app: auth (login, change-password, logout, status) and users."""

from django.conf import settings
from django.contrib.auth import logout as auth_logout
from django.middleware.csrf import get_token, rotate_token
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.response import Response

from accounts import selectors, services
from accounts.api.serializers import (
    AuthStatusOutputSerializer,
    ChangePasswordInputSerializer,
    LoginInputSerializer,
    LoginOutputSerializer,
    UserCreateInputSerializer,
    UserEnvelopeSerializer,
    UserListSerializer,
    UserPatchInputSerializer,
)
from audit.services import Actor
from etcdmonitor_site.api import MessageSerializer, validated_body
from etcdmonitor_site.clientip import client_ip
from etcdmonitor_site.errors import InvalidInput, NotFound

NEVER_EXPIRES_MAX_AGE = 10 * 365 * 24 * 3600


def _credentials(request, serializer_class, *, refusal: str) -> dict:
    """The body's credentials. A body that is no JSON object is answered like one with missing
    fields: one `refusal` for every shape of bad input, as the reference."""
    try:
        return validated_body(request, serializer_class, not_an_object=refusal)
    except (ParseError, ValidationError):
        raise InvalidInput(refusal) from None


class AuthViewSet(viewsets.ViewSet):
    """/api/auth/*. Login, change-password and status are public; logout needs a session (and
    stays open to a user who must change their password first)."""

    password_change_pending_actions = ("logout",)

    @extend_schema(request=LoginInputSerializer, responses=LoginOutputSerializer)
    @action(
        detail=False,
        methods=["post"],
        url_path="login",
        authentication_classes=[],
    )
    def login(self, request):
        credentials = _credentials(
            request, LoginInputSerializer, refusal="username and password required"
        )
        result = services.login_attempt(**credentials, client_ip=client_ip(request))
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
    )
    def change_password(self, request):
        credentials = _credentials(
            request,
            ChangePasswordInputSerializer,
            refusal="username, old_password and new_password required",
        )
        services.password_change(**credentials, client_ip=client_ip(request))
        return Response({"message": services.PASSWORD_CHANGED})

    @extend_schema(request=None, responses=MessageSerializer)
    @action(detail=False, methods=["post"], url_path="logout")
    def logout(self, request):
        services.logout(session=request.auth, client_ip=client_ip(request))
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
    )
    def status(self, request):
        # A stale or unknown token is not an error here: the answer is "not authenticated".
        session = services.session_for_request(request=request)
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


USER_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)


@extend_schema(tags=["users"])
class UserViewSet(viewsets.ViewSet):
    """/api/users and /api/users/{id}: the admin's user management. Every action, reads
    included, is refused (403, audited) to a user who may not manage users."""

    def actor(self) -> Actor:
        return Actor.from_request(self.request)

    def body(self, serializer_class) -> dict:
        return validated_body(
            self.request, serializer_class, not_an_object="request body must be a JSON object"
        )

    def target(self, pk):
        user = selectors.user_by_id(user_id=pk)
        if user is None:
            raise NotFound("user not found")
        return user

    @staticmethod
    def answer(user, *, status_code=status.HTTP_200_OK) -> Response:
        return Response({"user": selectors.user_get(user_id=user.pk)}, status=status_code)

    @extend_schema(responses=UserListSerializer)
    def list(self, request):
        services.users_admin_require(actor=self.actor(), operation="user_list")
        return Response({"users": selectors.users_list()})

    @extend_schema(request=UserCreateInputSerializer, responses={201: UserEnvelopeSerializer})
    def create(self, request):
        services.users_admin_require(actor=self.actor(), operation="user_create")
        user = services.user_create(actor=self.actor(), **self.body(UserCreateInputSerializer))
        return self.answer(user, status_code=status.HTTP_201_CREATED)

    @extend_schema(parameters=[USER_ID], responses=UserEnvelopeSerializer)
    def retrieve(self, request, pk=None):
        services.users_admin_require(actor=self.actor(), operation="user_get", target=str(pk))
        return self.answer(self.target(pk))

    @extend_schema(
        parameters=[USER_ID], request=UserPatchInputSerializer, responses=UserEnvelopeSerializer
    )
    def partial_update(self, request, pk=None):
        services.users_admin_require(actor=self.actor(), operation="user_update", target=str(pk))
        user = self.target(pk)
        services.user_update(actor=self.actor(), user=user, **self.body(UserPatchInputSerializer))
        return self.answer(user)

    @extend_schema(parameters=[USER_ID], request=None, responses={204: None})
    def destroy(self, request, pk=None):
        services.users_admin_require(actor=self.actor(), operation="user_delete", target=str(pk))
        services.user_delete(actor=self.actor(), user=self.target(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
