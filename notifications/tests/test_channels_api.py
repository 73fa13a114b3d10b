"""The channel API: who may do what, masked and encrypted secrets, error bodies, audit, the
test action."""

import pytest
from django.db import connection

from audit.models import AuditLog
from notifications import services
from notifications.channels import url_masked
from notifications.models import Channel
from notifications.tests.conftest import SMTP_PASSWORD, SMTP_USER, add_channel, notice

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "xoxb-very-secret-token-7788"


def email_config(port: int, **fields) -> dict:
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "from": "etcdmonitor@example.org",
        "to": ["oncall@example.org"],
        **fields,
    }


def stored_bytes(channel_id: int) -> bytes:
    """The channel's row as the database holds it, every column as text."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, kind, config::text, secret_cipher FROM notifications_channel "
            "WHERE id = %s",
            [channel_id],
        )
        name, kind, config, cipher = cursor.fetchone()
    return b"|".join([name.encode(), kind.encode(), config.encode(), bytes(cipher)])


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/abc", "https://hooks.slack.com/***"),
        ("https://user:pw@example.org:8443/x?token=1#f", "https://***@example.org:8443/***?***"),
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
        ("http://127.0.0.1:9093/", "http://127.0.0.1:9093/"),
        ("http://[::1]:9093/?k=v", "http://[::1]:9093/?***"),
    ],
)
def test_urls_are_shown_without_userinfo_path_or_query(url, shown):
    assert url_masked(url) == shown


def test_channels_are_listed_with_secrets_masked_and_stored_encrypted(staff_client, user_client):
    url = f"https://bot:{TOKEN}@hooks.example.org/services/{TOKEN}?token={TOKEN}"
    created = add_channel(staff_client, "slack", {"url": url}, name="chat")
    assert created == {
        "id": created["id"],
        "name": "chat",
        "kind": "slack",
        "config": {"url": "https://***@hooks.example.org/***?***", "repeat_interval": 14400},
        "enabled": True,
    }
    mail = add_channel(staff_client, "email", email_config(2525), name="mail")
    assert mail["config"]["password"] == "***"
    assert mail["config"]["username"] == SMTP_USER

    for client in (staff_client, user_client):  # every signed-in user may read
        response = client.get("/api/alerts/channels")
        assert response.status_code == 200
        assert response.json()["channels"] == [created, mail]
        assert TOKEN not in response.content.decode()
        assert SMTP_PASSWORD not in response.content.decode()

    for channel in (created, mail):
        raw = stored_bytes(channel["id"])
        assert TOKEN.encode() not in raw
        assert SMTP_PASSWORD.encode() not in raw
    audit_text = " ".join(AuditLog.objects.values_list("params", flat=True))
    assert TOKEN not in audit_text
    assert SMTP_PASSWORD not in audit_text
    assert list(
        AuditLog.objects.filter(operation="alert_channel_create").values_list("success", flat=True)
    ) == [True, True]


def test_a_patch_with_the_masked_url_keeps_the_real_one(staff_client, receiver):
    channel = add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook/{TOKEN}"})
    response = staff_client.patch(
        f"/api/alerts/channels/{channel['id']}",
        {"name": "renamed", "config": channel["config"] | {"repeat_interval": 600}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["channel"]["config"] == {
        "url": f"{receiver.url}/***",
        "repeat_interval": 600,
    }
    services.notices_enqueue(notices=[notice()])
    services.outbox_deliver()
    assert [r["path"] for r in receiver.requests] == [f"/hook/{TOKEN}"]
    assert receiver.bodies()[0]["receiver"] == "renamed"


def test_the_smtp_password_stays_unless_the_server_or_account_changes(staff_client, smtp_server):
    channel = add_channel(staff_client, "email", email_config(smtp_server.port))
    path = f"/api/alerts/channels/{channel['id']}"

    kept = staff_client.patch(
        path, {"config": {"to": ["b@example.org"], "password": "***"}}, format="json"
    )
    assert kept.json()["channel"]["config"]["password"] == "***"
    assert staff_client.post(f"{path}/test").json() == {"ok": True, "sent": ["firing", "resolved"]}
    assert [m["to"] for m in smtp_server.sink.messages] == [["b@example.org"]] * 2

    moved = staff_client.patch(path, {"config": {"host": "localhost"}}, format="json")
    assert moved.json()["channel"]["config"]["password"] == ""
    assert Channel.objects.get(pk=channel["id"]).has_password is False

    cleared = staff_client.patch(
        path, {"config": {"host": "127.0.0.1", "password": SMTP_PASSWORD}}, format="json"
    )
    assert cleared.json()["channel"]["config"]["password"] == "***"
    cleared = staff_client.patch(path, {"config": {"password": ""}}, format="json")
    assert cleared.json()["channel"]["config"]["password"] == ""


def test_the_test_action_sends_a_firing_and_a_resolved_message(staff_client, receiver):
    channel = add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    response = staff_client.post(f"/api/alerts/channels/{channel['id']}/test")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "sent": ["firing", "resolved"]}
    bodies = receiver.bodies()
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    for body in bodies:
        assert body["version"] == "4"
        assert body["alerts"][0]["labels"]["alertname"] == "etcdmonitor_test"
    assert bodies[1]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    entry = AuditLog.objects.get(operation="alert_channel_test")
    assert (entry.success, entry.result) == (True, "ok")


def test_the_test_action_reports_why_it_failed(staff_client, receiver):
    channel = add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook?token={TOKEN}"})
    receiver.stop()
    response = staff_client.post(f"/api/alerts/channels/{channel['id']}/test")
    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "error": "firing message: connection refused",
        "sent": [],
    }
    entry = AuditLog.objects.get(operation="alert_channel_test")
    assert (entry.success, entry.result) == (False, "firing: connection refused")
    assert TOKEN not in entry.params + entry.result + entry.target


def test_delete_removes_the_channel_and_its_outbox(staff_client, receiver):
    channel = add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    services.notices_enqueue(notices=[notice()])
    response = staff_client.delete(f"/api/alerts/channels/{channel['id']}")
    assert response.status_code == 204
    assert not Channel.objects.exists()
    assert services.outbox_deliver().sent == 0
    again = staff_client.delete(f"/api/alerts/channels/{channel['id']}")
    assert (again.status_code, again.json()) == (404, {"error": "channel not found"})


def test_writes_are_for_admins_and_a_refusal_is_audited(staff_client, user_client, receiver):
    channel = add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    path = f"/api/alerts/channels/{channel['id']}"
    attempts = [
        ("post", "/api/alerts/channels", {"name": "x", "kind": "webhook", "config": {}}),
        ("patch", path, {"enabled": False}),
        ("delete", path, None),
        ("post", f"{path}/test", None),
    ]
    for method, url, body in attempts:
        response = getattr(user_client, method)(url, body, format="json")
        assert response.status_code == 403, url
        assert response.json() == {
            "error": "permission denied: changing notification channels needs the admin role"
        }
    denied = AuditLog.objects.filter(username="viewer", success=False)
    assert sorted(denied.values_list("operation", flat=True)) == [
        "alert_channel_create",
        "alert_channel_delete",
        "alert_channel_test",
        "alert_channel_update",
    ]
    assert Channel.objects.get().enabled is True
    assert receiver.requests == []


def test_unauthenticated_requests_are_refused(db, client):
    for method, url in [
        ("get", "/api/alerts/channels"),
        ("post", "/api/alerts/channels"),
        ("patch", "/api/alerts/channels/1"),
        ("delete", "/api/alerts/channels/1"),
        ("post", "/api/alerts/channels/1/test"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 401, url
        assert response.json() == {"error": "not authenticated"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "request body must be a JSON object"),
        ({"name": "a", "kind": "pager", "config": {}}, 'kind: "pager" is not a valid choice.'),
        ({"name": "a", "kind": "webhook", "config": "x"}, "config: must be an object"),
        ({"name": "a", "kind": "webhook", "config": {}}, "config.url: is required"),
        (
            {"name": "a", "kind": "webhook", "config": {"url": "ftp://h/x"}},
            "config.url: must be an http:// or https:// URL with a host",
        ),
        (
            {"name": "a", "kind": "webhook", "config": {"url": "http://169.254.169.254/"}},
            "config.url: link-local addresses are never allowed",
        ),
        (
            {"name": "a", "kind": "slack", "config": {"url": "http://h/", "token": "t"}},
            "config.token: unknown field for slack",
        ),
        (
            {"name": "a", "kind": "webhook", "config": {"url": "http://h/", "repeat_interval": 1}},
            "config.repeat_interval: must be 10..604800 seconds",
        ),
        (
            {"name": "a", "kind": "email", "config": {"host": "h", "from": "a@b", "to": []}},
            "config.to: must be a non-empty list of email addresses",
        ),
        (
            {"name": "a", "kind": "email", "config": {"host": "h", "from": "a@b", "to": ["x"]}},
            "config.to: 'x' is not an email address",
        ),
        (
            {
                "name": "a",
                "kind": "email",
                "config": {"host": "h", "from": "a@b", "to": ["c@d"], "security": "tls"},
            },
            "config.security: must be one of none, starttls, ssl",
        ),
        ({"name": " ", "kind": "webhook", "config": {"url": "http://h/"}}, "name: is required"),
    ],
)
def test_bad_input_is_a_400_with_the_contract_body(staff_client, body, error):
    response = staff_client.post("/api/alerts/channels", body, format="json")
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert not Channel.objects.exists()


def test_names_are_unique_and_kinds_fixed(staff_client):
    channel = add_channel(staff_client, "webhook", {"url": "http://127.0.0.1:9/"}, name="same")
    again = staff_client.post(
        "/api/alerts/channels",
        {"name": "same", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/"}},
        format="json",
    )
    assert (again.status_code, again.json()) == (
        409,
        {"error": "a channel named 'same' already exists"},
    )
    changed = staff_client.patch(
        f"/api/alerts/channels/{channel['id']}", {"kind": "slack"}, format="json"
    )
    assert changed.status_code == 400
    assert changed.json() == {"error": "kind: cannot change; delete the channel and add a new one"}
    missing = staff_client.patch("/api/alerts/channels/abc", {"enabled": False}, format="json")
    assert (missing.status_code, missing.json()) == (404, {"error": "channel not found"})


def test_other_alerts_paths_are_not_the_channels(staff_client):
    """The channel routes catch their own paths only: the alerts app answers its routes."""
    assert "channels" not in staff_client.get("/api/alerts").json()
    assert "channels" not in staff_client.get("/api/alerts/rules").json()
    assert staff_client.get("/api/alerts/channelsx").status_code == 404
