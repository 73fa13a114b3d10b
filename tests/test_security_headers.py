"""Security headers on every kind of answer, and the session cookie's flags.

Pages, API answers (good, 401, 404) and the health check all carry the Content-Security-Policy,
`X-Frame-Options: DENY`, `nosniff` and the Referrer-Policy; the login cookie is HttpOnly and
SameSite, and Secure once DJANGO_SECURE_COOKIES is set.
"""

import json
import subprocess
import sys

import pytest
from django.conf import settings
from django.urls import URLPattern, get_resolver
from rest_framework.test import APIClient

from tests.test_project import ROOT, clean_env

EXPECTED_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def _html_pages() -> list[str]:
    """Every parameterless top-level page of the URLconf (the dashboard views)."""
    pages = ["/admin/login/"]
    for pattern in get_resolver().url_patterns:
        route = str(pattern.pattern)
        if isinstance(pattern, URLPattern) and "<" not in route and not route.startswith("api/"):
            pages.append("/" + route)
    return sorted(set(pages) - {"/healthz"})


def _assert_secure_headers(response):
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, f"{name} on {response.request['PATH_INFO']}"
    csp = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp
    assert (
        "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    assert "default-src 'self'" in csp


@pytest.mark.django_db
@pytest.mark.parametrize("path", _html_pages())
def test_every_page_carries_the_security_headers(path, client):
    response = client.get(path)

    assert response.status_code < 500
    _assert_secure_headers(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/healthz", "/api/auth/status", "/api/members", "/api/no-such-route", "/no-such-page"],
)
def test_api_and_error_answers_carry_the_security_headers(path):
    response = APIClient().get(path)

    _assert_secure_headers(response)


@pytest.mark.django_db
def test_authenticated_api_answer_carries_the_security_headers(api_client):
    response = api_client.get("/api/status")

    assert response.status_code == 200
    _assert_secure_headers(response)


def _login(admin_user):
    from conftest import ADMIN_TEST_PASSWORD

    return APIClient().post(
        "/api/auth/login",
        {"username": admin_user.username, "password": ADMIN_TEST_PASSWORD},
        format="json",
    )


@pytest.mark.django_db
def test_session_cookie_is_httponly_and_samesite_and_not_secure_on_plain_http(admin_user):
    response = _login(admin_user)

    assert response.status_code == 200
    cookie = response.cookies["etcdmonitor_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]
    assert cookie["path"] == "/"


@pytest.mark.django_db
def test_session_cookie_is_secure_when_secure_cookies_are_on(admin_user, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True

    response = _login(admin_user)

    assert response.cookies["etcdmonitor_session"]["secure"] is True
    assert response.cookies["etcdmonitor_session"]["httponly"] is True
    assert response.cookies[settings.CSRF_COOKIE_NAME]["secure"] is True


def test_secure_cookies_switch_turns_on_every_cookie_flag(tmp_path):
    probe = (
        "import django, os, json; os.environ['DJANGO_SETTINGS_MODULE']='etcdmonitor_site.settings';"
        "django.setup(); from django.conf import settings as s;"
        "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE, s.CSRF_COOKIE_SAMESITE]))"
    )

    def flags(**env) -> list:
        out = subprocess.check_output(
            [sys.executable, "-c", probe], cwd=ROOT, env=clean_env(DATA_DIR=str(tmp_path), **env)
        )
        return json.loads(out)

    assert flags() == [False, False, True, "Lax", "Lax"]
    assert flags(DJANGO_SECURE_COOKIES="true") == [True, True, True, "Lax", "Lax"]


def test_the_configured_policy_forbids_framing_and_foreign_scripts():
    policy = dict(
        part.strip().split(" ", 1) for part in settings.CONTENT_SECURITY_POLICY.split(";")
    )

    assert policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["base-uri"] == "'self'"
    assert policy["form-action"] == "'self'"
