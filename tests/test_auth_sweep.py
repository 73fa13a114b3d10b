"""Every route under /api/ requires a session, except the three public auth routes (and /healthz).

The routes are enumerated from the URL resolver, so a route added by any app is swept too: each
protected (route, method) must answer 401 `{"error": "not authenticated"}` with no token, a
garbage token, an expired token, a revoked token and a garbage cookie.
"""

import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AccountProfile, UserSession
from accounts.services import PASSWORD_CHANGE_REQUIRED, session_create, sessions_revoke
from audit.models import AuditLog

PUBLIC = {
    ("/api/auth/login", "post"),
    ("/api/auth/change-password", "post"),
    ("/api/auth/status", "get"),
}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
_ROUTE_CONVERTER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<\w+>[^)]*\)")
_SAMPLES = {"int": "1", "path": "a/b", "uuid": "00000000-0000-0000-0000-000000000001"}


def _sample(pattern) -> str:
    """A concrete path segment matching one URL pattern (route or regex)."""
    text = str(pattern)
    if hasattr(pattern, "_route"):  # RoutePattern: path("kv/<str:name>")
        return _ROUTE_CONVERTER.sub(lambda m: _SAMPLES.get(m["converter"] or "str", "x"), text)
    text = text.removeprefix("^").removesuffix("$").removesuffix("\\Z")
    text = _REGEX_GROUP.sub("1", text)
    return text.replace("/?", "/").replace("\\.", ".").replace("\\-", "-")


def _methods(callback) -> list[str]:
    actions = getattr(callback, "actions", None)
    if actions:  # a DRF viewset route: exactly the mapped methods
        return sorted(actions)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is not None:
        return [m for m in HTTP_METHODS if hasattr(view_class, m)]
    return ["get", "post"]  # a plain function view: try both


def _api_routes(resolver=None, prefix: str = ""):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        path = prefix + _sample(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _api_routes(pattern, path)
        elif isinstance(pattern, URLPattern) and path.startswith("api/"):
            for method in _methods(pattern.callback):
                yield "/" + path, method, pattern.callback


ROUTES = sorted({(path, method): cb for path, method, cb in _api_routes()}.items())
PROTECTED = [(path, method, cb) for (path, method), cb in ROUTES if (path, method) not in PUBLIC]


def test_the_sweep_sees_every_app_and_the_public_routes():
    paths = {path for (path, _), _ in ROUTES}

    assert {key for key, _ in ROUTES} >= PUBLIC
    assert {"/api/auth/logout", "/api/user/panel-config"} <= paths
    assert len(PROTECTED) >= 2


@pytest.mark.parametrize(("path", "method", "callback"), PROTECTED, ids=lambda v: str(v))
def test_sample_url_resolves_to_its_own_view(path, method, callback):
    assert resolve(path).func is callback


def _body(response):
    # DRF content negotiation may pick another renderer (the schema view's YAML): compare data.
    data = getattr(response, "data", None)
    return data if data is not None else response.json()


def _expired_token(user) -> str:
    token, session = session_create(user=user)
    UserSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(1))
    return token


def _revoked_token(user) -> str:
    token, _ = session_create(user=user)
    sessions_revoke(user=user)
    return token


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "method"), [(path, method) for path, method, _ in PROTECTED], ids=str
)
def test_protected_route_refuses_every_bad_credential(path, method, admin_user, settings):
    settings.OPS_ENABLED = True
    credentials = {
        "no token": {},
        "garbage token": {"HTTP_AUTHORIZATION": "Bearer not-a-real-token"},
        "expired token": {"HTTP_AUTHORIZATION": f"Bearer {_expired_token(admin_user)}"},
        "revoked token": {"HTTP_AUTHORIZATION": f"Bearer {_revoked_token(admin_user)}"},
    }
    results = {}
    for kind, headers in credentials.items():
        response = getattr(APIClient(), method)(path, {}, format="json", **headers)
        results[kind] = (response.status_code, _body(response))
    cookie_client = APIClient()
    cookie_client.cookies["etcdmonitor_session"] = "garbage-cookie"
    response = getattr(cookie_client, method)(path, {}, format="json")
    results["garbage cookie"] = (response.status_code, _body(response))

    assert results == {
        kind: (401, {"error": "not authenticated"}) for kind in [*credentials, "garbage cookie"]
    }


@pytest.mark.django_db
@pytest.mark.parametrize("path", [path for path, method, _ in PROTECTED if method == "get"])
def test_protected_get_route_accepts_a_live_session(path, api_client, settings):
    """The other half (safe methods only): a real token gets past authentication."""
    settings.OPS_ENABLED = True

    response = api_client.get(path)

    assert response.status_code != 401


@pytest.mark.django_db
def test_public_routes_stay_public_even_with_garbage_credentials():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer garbage")
    client.cookies["etcdmonitor_session"] = "garbage"

    assert client.get("/api/auth/status").status_code == 200
    assert client.post("/api/auth/login", {}, format="json").status_code == 400
    assert client.post("/api/auth/change-password", {}, format="json").status_code == 400
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "method"), [(path, method) for path, method, _ in PROTECTED], ids=str
)
def test_a_user_who_must_change_the_password_is_refused_everywhere_but_logout(
    path, method, admin_user, settings
):
    """Login issues such a user no session, but an admin may force the change while one is
    live: until the change, only logout (and the public routes) answer."""
    settings.OPS_ENABLED = True
    token, _ = session_create(user=admin_user)
    AccountProfile.objects.filter(user=admin_user).update(must_change_password=True)

    response = getattr(APIClient(), method)(
        path, {}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    if (path, method) == ("/api/auth/logout", "post"):
        assert response.status_code == 200
    else:
        assert (response.status_code, _body(response)) == (
            403,
            {"error": PASSWORD_CHANGE_REQUIRED, "code": "password_change_required"},
        )
        entry = AuditLog.objects.get(operation="password_change_required")
        assert (entry.username, entry.target, entry.success) == (
            "admin",
            f"{method.upper()} {path}",
            False,
        )
