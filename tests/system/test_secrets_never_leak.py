"""No answer and no log line ever carries a password, a session token or an etcd credential.

The sweep of every route for 401 lives in tests/test_auth_sweep.py; this adds the other half of
its promise. One realistic session against an etcd with auth enabled — failed and good logins,
the forced password change, KV reads and writes (allowed and refused), ops, a collection cycle,
logout and reuse of the dead token — with every log record captured at DEBUG and every response
kept; then each secret is searched for in all of them. The only place a session token may appear
is the login answer that issues it (its body and its Set-Cookie).
"""

import base64
import logging

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import AccountProfile
from audit.models import AuditLog
from etcdgateway import cluster_gateway, reset_gateways
from tests.etcdctl import etcdctl

pytestmark = pytest.mark.django_db

INITIAL_PASSWORD = "Init1al-Pw-q8Zr2LmX"
NEW_PASSWORD = "N3w-Adm1n-Pw-Vt7Kc0sQ"
WRONG_PASSWORD = "Wr0ng-Guess-Pw-Hj5Pn4dE"
ETCD_APP_PASSWORD = "Etcd-App-Pw-Yq3Wm8fB"
ETCD_ROOT_PASSWORD = "Etcd-Root-Pw-Xa6Tg1uR"


@pytest.fixture
def auth_cluster(etcd_cluster_factory, settings):
    """One member with auth on; the app's etcd user may read and write /app/ only."""
    cluster = etcd_cluster_factory(size=1)
    url = cluster.client_urls[0]
    etcdctl(url, "user", "add", f"root:{ETCD_ROOT_PASSWORD}")
    etcdctl(url, "role", "add", "app")
    etcdctl(url, "role", "grant-permission", "app", "--prefix=true", "readwrite", "/app/")
    etcdctl(url, "user", "add", f"app:{ETCD_APP_PASSWORD}")
    etcdctl(url, "user", "grant-role", "app", "app")
    etcdctl(url, "auth", "enable")
    settings.ETCD_USERNAME, settings.ETCD_PASSWORD = "app", ETCD_APP_PASSWORD
    settings.OPS_ENABLED = True
    reset_gateways()
    return cluster


@pytest.fixture
def admin_to_set_up(db):
    """The admin as bootstrap leaves it: an initial password that must be changed."""
    user, _ = get_user_model().objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    user.set_password(INITIAL_PASSWORD)
    user.is_active = True
    user.save()
    AccountProfile.objects.update_or_create(
        user=user,
        defaults={"must_change_password": True},
    )
    return user


def _etcd_tokens() -> set[str]:
    """The simple-tokens etcd handed to our clients (their gRPC metadata)."""
    tokens = set()
    for client in cluster_gateway()._clients.values():
        raw = getattr(client, "_raw", None) or getattr(client, "raw", None)
        for key, value in getattr(raw, "metadata", None) or ():
            if key == "token":
                tokens.add(value)
    return tokens


def _run_session(client: APIClient) -> tuple[list, str]:
    """The realistic session; returns [(label, response)] and the session token it got."""
    seen = []

    def call(label, method, path, data=None, **extra):
        kwargs = {"format": "json"} if method != "get" else {}
        response = getattr(client, method)(path, data, **kwargs, **extra)
        seen.append((label, response))
        return response

    call("status anonymous", "get", "/api/auth/status")
    call(
        "wrong password",
        "post",
        "/api/auth/login",
        {"username": "admin", "password": WRONG_PASSWORD},
    )
    forced = call(
        "initial login",
        "post",
        "/api/auth/login",
        {"username": "admin", "password": INITIAL_PASSWORD},
    )
    assert forced.json()["must_change_password"] is True
    call(
        "change with wrong old",
        "post",
        "/api/auth/change-password",
        {"username": "admin", "old_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD},
    )
    changed = call(
        "change password",
        "post",
        "/api/auth/change-password",
        {"username": "admin", "old_password": INITIAL_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.content
    login = client.post(
        "/api/auth/login", {"username": "admin", "password": NEW_PASSWORD}, format="json"
    )
    assert login.status_code == 200, login.content
    token = login.json()["session_token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    from monitoring.services import collect_cluster

    report = collect_cluster()
    assert any(member["up"] for member in report.members)
    for path in ("/api/auth/status", "/api/status", "/api/members", "/api/current", "/api/debug"):
        call(path, "get", path)
    call("kv connect", "post", "/api/kv/v3/connect", {})
    put = call("kv put", "put", "/api/kv/v3/put", {"key": "/app/conf", "value": "v", "ttl": 60})
    assert put.status_code == 200, put.content
    call("kv get", "get", "/api/kv/v3/get", {"key": "/app/conf"})
    call("kv list", "get", "/api/kv/v3/list", {"prefix": "/app"})
    denied = call("kv denied", "get", "/api/kv/v3/get", {"key": "/elsewhere"})
    assert denied.status_code == 403
    call("kv delete", "post", "/api/kv/v3/delete", {"key": "/app/conf"})
    for path in ("/api/ops/alarms", "/api/ops/compact/revision", "/api/ops/audit-logs"):
        call(path, "get", path)
    call("audit csv", "get", "/api/ops/audit-logs", {"format": "csv"})
    call("hashkv", "post", "/api/ops/hashkv", {})
    call("compact", "post", "/api/ops/compact", {"retain_count": 1})
    call("logout", "post", "/api/auth/logout", {})
    dead = call("dead token", "get", "/api/status")
    assert dead.status_code == 401
    return seen, token


def _text(response) -> str:
    body = (
        b"".join(response.streaming_content) if response.streaming else response.content
    ).decode("utf-8", "replace")
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return f"{headers}\n{response.cookies.output()}\n{body}"


def _needles(secret: str) -> list[str]:
    """The secret as written, and base64-encoded (as in a Basic header or an export)."""
    return [secret, base64.b64encode(secret.encode()).decode()]


def test_a_whole_session_never_echoes_a_secret_in_answers_logs_or_the_audit(
    auth_cluster, admin_to_set_up, caplog
):
    caplog.set_level(logging.DEBUG)

    seen, token = _run_session(APIClient())

    secrets = {
        "initial password": INITIAL_PASSWORD,
        "new password": NEW_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "etcd app password": ETCD_APP_PASSWORD,
        "etcd root password": ETCD_ROOT_PASSWORD,
        "session token": token,
    }
    etcd_tokens = _etcd_tokens()
    assert etcd_tokens, "the session really used etcd auth"
    secrets.update({f"etcd token {i}": t for i, t in enumerate(etcd_tokens)})
    logs = "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''} {record.args!r}"
        for record in caplog.records
    )
    # The collector's /metrics fetches (at DEBUG) and the refused KV write were logged.
    assert "etcdgateway.scraper" in {r.name for r in caplog.records}
    assert any("/api/kv/v3/" in r.getMessage() for r in caplog.records)
    audit = "\n".join(
        f"{row.operation} {row.target} {row.params} {row.result}" for row in AuditLog.objects.all()
    )
    assert AuditLog.objects.exists()
    leaks = [
        f"{name} in {where}"
        for name, secret in secrets.items()
        for needle in _needles(secret)
        for where, text in [
            ("logs", logs),
            ("audit log", audit),
            *((label, _text(response)) for label, response in seen),
        ]
        if needle in text
    ]

    assert leaks == []


def test_a_wrong_etcd_password_is_reported_without_echoing_it(auth_cluster, api_client, settings):
    settings.ETCD_PASSWORD = WRONG_PASSWORD
    reset_gateways()

    response = api_client.post("/api/kv/v3/connect", {}, format="json")

    assert response.status_code in (401, 403, 503)
    assert "error" in response.json()
    assert WRONG_PASSWORD not in response.content.decode()
    assert ETCD_APP_PASSWORD not in response.content.decode()
