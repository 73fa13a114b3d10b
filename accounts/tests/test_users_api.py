"""/api/users: the admin's user management, with every write and every denial audited and no
password or hash in any answer."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AccountProfile, UserSession
from accounts.services import session_create
from accounts.tests.conftest import PASSWORD, change_password, locked_until, login
from audit.models import AuditLog

pytestmark = pytest.mark.django_db

NEW = "quiet-harbor-42"
SHAPE = {"id", "username", "is_active", "roles", "kv_scopes", "must_change_password", "locked"}


@pytest.fixture(autouse=True)
def _eight_characters(settings):
    settings.MIN_PASSWORD_LENGTH = 8


def assert_no_secret(response, *passwords):
    text = response.content.decode()
    assert "argon2" not in text and "pbkdf2" not in text and '"password"' not in text
    for password in passwords:
        assert password not in text


def create(client, **body):
    return client.post("/api/users", body, format="json")


def test_admin_creates_a_user_who_must_change_the_password(api_client, client):
    response = create(
        api_client, username="bob", password=NEW, roles={"c-1": "operator", "*": "viewer"}
    )

    assert response.status_code == 201
    user = response.json()["user"]
    assert set(user) == SHAPE
    assert user | {"id": 0} == {
        "id": 0,
        "username": "bob",
        "is_active": True,
        "roles": {"c-1": "operator", "*": "viewer"},
        "kv_scopes": {},
        "must_change_password": True,
        "locked": False,
    }
    assert_no_secret(response, NEW)
    stored = get_user_model().objects.get(username="bob")
    assert stored.check_password(NEW) and not stored.is_staff
    entry = AuditLog.objects.get(operation="user_create")
    assert (entry.username, entry.target, entry.success) == ("admin", "bob", True)
    assert NEW not in entry.params + entry.result
    answer = login(client, "bob", NEW).json()
    assert answer["must_change_password"] is True and "session_token" not in answer


def test_created_user_changes_the_password_then_signs_in(api_client, client):
    create(api_client, username="bob", password=NEW)

    assert change_password(client, "bob", NEW, "steady-lantern-9").status_code == 200
    body = login(client, "bob", "steady-lantern-9").json()

    assert body["authenticated"] is True and body["session_token"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"username": "bob", "password": "password"}, "This password is too common."),
        (
            {"username": "robert", "password": "robert#7x"},
            "The password is too similar to the username.",
        ),
        ({"username": "bob", "password": "short"}, "too short"),
        ({"username": "bob", "password": NEW, "roles": {"*": "root"}}, "must be one of"),
        ({"username": "bob", "password": NEW, "roles": {"a b": "viewer"}}, "not a cluster id"),
        ({"username": "bad name!", "password": NEW}, "username"),
        ({"username": "", "password": NEW}, "username"),
        ({"username": "bob"}, "password"),
        ({"username": "bob", "password": 12345678}, "password"),
    ],
)
def test_create_refusals_are_400_audited_and_store_nothing(api_client, body, error):
    response = create(api_client, **body)

    assert response.status_code == 400
    assert error in response.json()["error"]
    assert set(response.json()) == {"error"}
    assert not get_user_model().objects.filter(username=body["username"]).exists()
    assert_no_secret(response, NEW)


def test_policy_refusal_of_a_create_is_audited_without_the_password(api_client):
    create(api_client, username="bob", password="password")

    entry = AuditLog.objects.get(operation="user_create")
    assert entry.success is False and "too common" in entry.result
    assert "password" not in entry.params.replace('"username"', "")


def test_a_taken_username_is_409(api_client, make_user):
    make_user("bob")

    response = create(api_client, username="bob", password=NEW)

    assert response.status_code == 409
    assert response.json() == {"error": "a user with that username already exists"}


def test_list_and_get_show_every_user_in_the_shape(api_client, make_user):
    bob = make_user("bob", locked_until=timezone.now() + timedelta(minutes=5), failed=5)
    make_user("carol", must_change=True)

    listed = api_client.get("/api/users")
    one = api_client.get(f"/api/users/{bob.pk}")

    assert listed.status_code == 200
    users = {u["username"]: u for u in listed.json()["users"]}
    assert list(users) == ["admin", "bob", "carol"]
    assert all(set(u) == SHAPE for u in users.values())
    assert users["admin"]["roles"] == {"*": "admin"}
    assert (users["bob"]["locked"], users["carol"]["must_change_password"]) == (True, True)
    assert one.json() == {"user": users["bob"]}
    assert_no_secret(listed, PASSWORD)
    assert_no_secret(one, PASSWORD)


def test_list_takes_the_same_queries_for_three_users_or_thirty(api_client, make_user):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert api_client.get("/api/users").status_code == 200
        return len(captured)

    make_user("u0")
    few = queries()
    for i in range(1, 30):
        make_user(f"u{i}")

    assert queries() == few


def test_unknown_or_malformed_id_is_404(api_client):
    assert api_client.get("/api/users/999999").json() == {"error": "user not found"}
    assert api_client.patch("/api/users/abc", {"unlock": True}, format="json").status_code == 404
    assert api_client.delete("/api/users/999999").status_code == 404


def test_reset_forces_a_change_clears_the_lock_and_ends_sessions(api_client, client, make_user):
    bob = make_user("bob", failed=5, locked_until=timezone.now() + timedelta(minutes=5))
    session_create(user=bob)

    response = api_client.patch(f"/api/users/{bob.pk}", {"password": NEW}, format="json")

    assert response.status_code == 200
    assert response.json()["user"]["must_change_password"] is True
    assert response.json()["user"]["locked"] is False
    assert_no_secret(response, NEW)
    assert not UserSession.objects.filter(user=bob).exists()
    assert locked_until(bob) is None
    assert login(client, "bob", NEW).json()["must_change_password"] is True
    entry = AuditLog.objects.get(operation="user_update")
    assert entry.success and NEW not in entry.params + entry.result
    assert "password reset, 1 session(s) revoked" in entry.result


def test_reset_obeys_the_policy(api_client, make_user):
    bob = make_user("robert")

    response = api_client.patch(f"/api/users/{bob.pk}", {"password": "robert#7x"}, format="json")

    assert response.status_code == 400
    assert "too similar" in response.json()["error"]
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)
    assert AuditLog.objects.get(operation="user_update").success is False


def test_unlock_clears_the_lock_and_keeps_the_password(api_client, client, make_user):
    bob = make_user("bob", failed=5, locked_until=timezone.now() + timedelta(minutes=5))
    assert login(client, "bob", PASSWORD).status_code == 401  # locked

    response = api_client.patch(f"/api/users/{bob.pk}", {"unlock": True}, format="json")

    assert response.json()["user"]["locked"] is False
    assert login(client, "bob", PASSWORD).json()["authenticated"] is True
    assert "unlocked (1 address(es))" in AuditLog.objects.get(operation="user_update").result


def test_lockout_after_failures_shows_in_the_user(api_client, client, make_user, settings):
    settings.LOCKOUT_THRESHOLD = 3
    bob = make_user("bob")
    for _ in range(3):
        login(client, "bob", "wrong-password")

    assert api_client.get(f"/api/users/{bob.pk}").json()["user"]["locked"] is True


def test_deactivate_ends_sessions_and_sign_in(api_client, client, make_user):
    bob = make_user("bob")
    token, _ = session_create(user=bob)

    response = api_client.patch(f"/api/users/{bob.pk}", {"is_active": False}, format="json")

    assert response.json()["user"]["is_active"] is False
    assert not UserSession.objects.filter(user=bob).exists()
    assert client.get("/api/status", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert login(client, "bob", PASSWORD).status_code == 401


def test_roles_are_replaced_as_a_whole(api_client, make_user):
    bob = make_user("bob")
    api_client.patch(f"/api/users/{bob.pk}", {"roles": {"c-1": "admin"}}, format="json")

    response = api_client.patch(f"/api/users/{bob.pk}", {"roles": {"*": "operator"}}, format="json")

    assert response.json()["user"]["roles"] == {"*": "operator"}
    assert AccountProfile.objects.get(user=bob).roles == {"*": "operator"}
    assert AuditLog.objects.filter(operation="user_update", success=True).count() == 2


def test_an_empty_patch_is_400(api_client, make_user):
    bob = make_user("bob")

    response = api_client.patch(f"/api/users/{bob.pk}", {}, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": "give roles, kv_scopes, is_active, password or unlock"}


def test_delete_removes_the_user_and_is_audited(api_client, make_user):
    bob = make_user("bob")
    session_create(user=bob)

    response = api_client.delete(f"/api/users/{bob.pk}")

    assert response.status_code == 204
    assert not get_user_model().objects.filter(username="bob").exists()
    assert not UserSession.objects.filter(user_id=bob.pk).exists()
    entry = AuditLog.objects.get(operation="user_delete")
    assert (entry.target, entry.success) == ("bob", True)


def test_an_admin_cannot_deactivate_or_delete_themselves(api_client, admin_user):
    off = api_client.patch(f"/api/users/{admin_user.pk}", {"is_active": False}, format="json")
    gone = api_client.delete(f"/api/users/{admin_user.pk}")

    assert (off.status_code, gone.status_code) == (409, 409)
    assert off.json() == {"error": "you cannot deactivate your own account"}
    admin_user.refresh_from_db()
    assert admin_user.is_active
    assert (
        AuditLog.objects.filter(operation__in=["user_update", "user_delete"], success=False).count()
        == 2
    )


def test_a_star_admin_manages_users_but_not_a_superuser(bearer_client, make_user, admin_user):
    lead = make_user("lead")
    AccountProfile.objects.filter(user=lead).update(roles={"*": "admin"})
    client = bearer_client(lead)

    created = create(client, username="dave", password=NEW)
    touched = client.patch(f"/api/users/{admin_user.pk}", {"password": NEW}, format="json")

    assert created.status_code == 201
    assert touched.status_code == 403
    assert touched.json() == {"error": "permission denied: only a superuser may change a superuser"}
    admin_user.refresh_from_db()
    assert not admin_user.check_password(NEW)
    assert AuditLog.objects.get(operation="user_update").success is False


ROUTES = [
    ("get", "/api/users", None, "user_list"),
    ("post", "/api/users", {"username": "eve", "password": NEW}, "user_create"),
    ("get", "/api/users/{id}", None, "user_get"),
    ("patch", "/api/users/{id}", {"roles": {"*": "admin"}}, "user_update"),
    ("delete", "/api/users/{id}", None, "user_delete"),
]


@pytest.mark.parametrize(("method", "path", "body", "operation"), ROUTES)
def test_a_non_admin_is_refused_403_and_audited(
    bearer_client, make_user, method, path, body, operation
):
    bob = make_user("bob")
    AccountProfile.objects.filter(user=bob).update(roles={"c-1": "admin", "*": "operator"})
    client = bearer_client(bob)

    response = getattr(client, method)(path.format(id=bob.pk), body, format="json")

    assert response.status_code == 403
    assert response.json() == {"error": "permission denied: managing users needs the admin role"}
    entry = AuditLog.objects.get(operation=operation)
    assert (entry.username, entry.success) == ("bob", False)
    assert "permission denied" in entry.result
    assert AccountProfile.objects.get(user=bob).roles == {"c-1": "admin", "*": "operator"}
    assert not get_user_model().objects.filter(username="eve").exists()


def test_a_non_admin_cannot_tell_which_ids_exist(bearer_client, make_user):
    client = bearer_client(make_user("bob"))

    assert client.get("/api/users/999999").status_code == 403


def test_no_answer_of_the_users_api_ever_holds_a_password(api_client, make_user):
    bob = make_user("bob")
    answers = [
        create(api_client, username="carl", password=NEW),
        api_client.get("/api/users"),
        api_client.patch(f"/api/users/{bob.pk}", {"password": "steady-lantern-9"}, format="json"),
        api_client.get(f"/api/users/{bob.pk}"),
    ]

    for answer in answers:
        assert_no_secret(answer, NEW, "steady-lantern-9", PASSWORD)
        assert "password_hash" not in json.dumps(answer.json())


def test_kv_scopes_are_created_replaced_and_shown(api_client):
    scopes = {"c-1": {"read": ["/app/"], "write": ["/app/config/"]}}
    created = create(api_client, username="bob", password=NEW, kv_scopes=scopes)
    bob = created.json()["user"]

    cleared = api_client.patch(f"/api/users/{bob['id']}", {"kv_scopes": {}}, format="json")

    assert created.status_code == 201 and bob["kv_scopes"] == scopes
    assert cleared.json()["user"]["kv_scopes"] == {}
    assert AccountProfile.objects.get(user_id=bob["id"]).kv_scopes == {}
    entry = AuditLog.objects.filter(operation="user_update").last()
    assert entry.success and '"kv_scopes": {}' in entry.params


@pytest.mark.parametrize(
    ("scopes", "error"),
    [
        ({"c-1": {"read": ["/app/"], "write": ["/etc/"]}}, "not within one of its read prefixes"),
        ({"c-1": {"read": "/app/"}}, "must be a list"),
        ({"c-1": {"read": [""]}}, "non-empty string"),
        ({"a b": {"read": ["/a/"]}}, "not a cluster id"),
    ],
)
def test_a_bad_kv_scope_is_400_audited_and_stores_nothing(api_client, make_user, scopes, error):
    bob = make_user("bob")

    response = api_client.patch(f"/api/users/{bob.pk}", {"kv_scopes": scopes}, format="json")

    assert response.status_code == 400 and error in response.json()["error"]
    assert AccountProfile.objects.filter(user=bob).exclude(kv_scopes={}).count() == 0
    assert AuditLog.objects.get(operation="user_update").success is False
