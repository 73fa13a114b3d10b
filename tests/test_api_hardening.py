"""Issue 15's low findings on the API as a whole: deeply nested JSON bodies, caching of API
answers, and the CSRF token across a login.

Each test sends what the red-team sent, through the real URLconf, middleware and DRF stack.
"""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from conftest import ADMIN_TEST_PASSWORD

pytestmark = pytest.mark.django_db

NESTED = "[" * 1000  # the red-team's body: RecursionError in the json module


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/auth/login"),
        ("post", "/api/auth/change-password"),
        ("put", "/api/kv/v3/put"),
        ("put", "/api/kv/v2/put"),
        ("post", "/api/kv/tabs"),
        ("put", "/api/user/panel-config"),
        ("post", "/api/ops/compact"),
    ],
)
@pytest.mark.parametrize("body", [NESTED, "{" + '"a":[' * 3000])
def test_deeply_nested_json_is_a_400_with_a_json_error(method, path, body, api_client):
    response = getattr(api_client, method)(path, data=body, content_type="application/json")

    assert response.status_code == 400, response.content[:200]
    assert response["Content-Type"].startswith("application/json")
    assert "error" in response.json()


@pytest.mark.parametrize(
    "path",
    [
        "/api/auth/status",
        "/api/members",
        "/api/no-such-route",
        "/api/ops/audit-logs",
        "/api/ops/audit-logs?format=csv",
        "/api/user/panel-config",
    ],
)
def test_every_api_answer_is_not_stored(path, api_client):
    for client in (api_client, APIClient()):  # authenticated and 401
        response = client.get(path)

        assert "no-store" in response.headers.get("Cache-Control", ""), (path, response.status_code)


def test_kv_values_are_not_stored(api_client, kv_prefix):
    key = kv_prefix + "secret"
    put = api_client.put("/api/kv/v3/put", {"key": key, "value": "s3cr3t"}, format="json")
    assert put.status_code == 200, put.content

    response = api_client.get("/api/kv/v3/get", {"key": key})

    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    assert "no-store" in put.headers["Cache-Control"]


def test_login_answer_with_its_token_is_not_stored(admin_user):
    response = APIClient().post(
        "/api/auth/login",
        {"username": "admin", "password": ADMIN_TEST_PASSWORD},
        format="json",
    )

    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]


def test_login_rotates_the_csrf_token(admin_user):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/api/auth/status")  # the login page does this first: gets a CSRF cookie
    before = browser.cookies["csrftoken"].value

    response = browser.post(
        "/api/auth/login",
        {"username": "admin", "password": ADMIN_TEST_PASSWORD},
        content_type="application/json",
    )

    assert response.status_code == 200
    after = response.cookies["csrftoken"].value
    assert after and after != before
    # The new token works for a cookie-authenticated unsafe request; the old one no longer does.
    old = browser.post("/api/auth/logout", HTTP_X_CSRFTOKEN=before)
    assert old.status_code == 403
    new = browser.post("/api/auth/logout", HTTP_X_CSRFTOKEN=after)
    assert new.status_code == 200
