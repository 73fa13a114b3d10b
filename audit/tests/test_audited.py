"""The audited-action helper and `Actor`, against the real database: what a block records on
success and on failure, that secrets never reach a row, and that a failed audit write never
breaks the action it audits."""

import json
import time

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from audit.models import AuditLog
from audit.services import Actor, audit_record, audited, is_secret_name, params_masked
from etcdgateway import EtcdUnavailable

pytestmark = pytest.mark.django_db

ALICE = Actor(username="alice", client_ip="192.0.2.7")


def only_entry() -> AuditLog:
    (entry,) = AuditLog.objects.all()
    return entry


def test_a_successful_block_is_recorded_ok_with_its_duration():
    with audited("put", actor=ALICE, target="/app/x", params={"ttl": 5, "dir": False}) as action:
        time.sleep(0.03)

    entry = only_entry()
    assert (entry.operation, entry.username, entry.target) == ("put", "alice", "/app/x")
    assert (entry.result, entry.success, entry.client_ip) == ("ok", True, "192.0.2.7")
    assert entry.params == json.dumps({"ttl": 5, "dir": False})
    assert 30 <= entry.duration_ms == action.duration_ms < 5000


def test_the_block_may_set_the_result_params_target_and_success():
    with audited("hashkv", actor=ALICE, target="cluster", params="revision=1") as action:
        action.result = "INCONSISTENT, []"
        action.success = False
        action.params = "revision=2"

    entry = only_entry()
    assert (entry.result, entry.success, entry.params) == ("INCONSISTENT, []", False, "revision=2")


def test_a_failure_is_recorded_with_its_message_and_re_raised():
    action = audited("defragment", actor=ALICE, target="member-1", params="42")
    with pytest.raises(EtcdUnavailable) as raised, action:
        time.sleep(0.01)
        raise EtcdUnavailable("all endpoints down")

    entry = only_entry()
    assert entry.result == raised.value.message == "etcd unavailable: all endpoints down"
    assert entry.success is False and entry.duration_ms >= 10
    assert (entry.target, entry.params) == ("member-1", "42")


def test_a_result_the_block_set_wins_over_the_failure_message():
    with pytest.raises(ValueError, match="login failed"), audited("login", actor=ALICE) as action:
        action.result = "session creation failed"
        raise ValueError("login failed")

    assert (only_entry().result, only_entry().success) == ("session creation failed", False)


def test_exceptions_outside_failures_are_re_raised_unrecorded():
    with pytest.raises(KeyError), audited("put", actor=ALICE, failures=(EtcdUnavailable,)):
        raise KeyError("bug")

    assert not AuditLog.objects.exists()


def test_a_discarded_outcome_writes_nothing_but_is_timed():
    with audited("login", actor=ALICE) as action:
        time.sleep(0.01)
        action.discard()

    assert not AuditLog.objects.exists()
    assert action.duration_ms >= 10


def test_started_times_from_an_earlier_moment():
    with audited("login", actor=ALICE, started=time.monotonic() - 2):
        pass

    assert only_entry().duration_ms >= 2000


def test_secret_params_are_masked_before_writing():
    params = {
        "password": "hunter2",
        "new_password": "hunter3",
        "token": "t0k3n",
        "client_key": "-----BEGIN PRIVATE KEY-----",
        "passphrase": "open sesame",
        "apiKey": "k",
        "tls": {"secret": "s3cr3t", "ca_cert": "PEM"},
        "key": "/etcd/key/name",
        "ttl": 5,
        "password_unset": "",
    }

    with audited("kv_tab_create", actor=ALICE, params=params):
        pass

    stored = json.loads(only_entry().params)
    assert stored == {
        "password": "***",
        "new_password": "***",
        "token": "***",
        "client_key": "***",
        "passphrase": "***",
        "apiKey": "***",
        "tls": {"secret": "***", "ca_cert": "PEM"},
        "key": "/etcd/key/name",
        "ttl": 5,
        "password_unset": "",
    }
    text = only_entry().params
    assert not any(s in text for s in ("hunter", "t0k3n", "PRIVATE", "sesame", "s3cr3t"))


def test_secrets_in_text_params_are_masked_and_masked_markers_kept():
    audit_record(operation="a", params="username=bob password=hunter2 token=abc, scope=user")
    audit_record(operation="b", params='{"retain_count": 5, "secret": "s3cr3t"}')
    kept = "scheme=https username=bob password=*** password=(cleared) password= key=/a"
    audit_record(operation="c", params=kept)

    rows = dict(AuditLog.objects.values_list("operation", "params"))
    assert rows["a"] == "username=bob password=*** token=***, scope=user"
    assert rows["b"] == '{"retain_count": 5, "secret": "***"}'
    assert rows["c"] == kept


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("old_password", True),
        ("passphrase", True),
        ("auth_token", True),
        ("client_secret", True),
        ("private_key", True),
        ("key_pem", True),
        ("KV_TABS_KEY", True),
        ("key", False),
        ("username", False),
        ("value_size", False),
        ("tab_id", False),
        ("failed_attempts", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_masking_keeps_plain_params_exactly():
    assert params_masked({"ttl": None, "value_size": 3, "tab_id": "default"}) == json.dumps(
        {"ttl": None, "value_size": 3, "tab_id": "default"}
    )
    assert params_masked("member_id=1, alarm_type=NOSPACE") == "member_id=1, alarm_type=NOSPACE"


def test_a_failed_audit_write_never_breaks_the_action(caplog):
    unwritable = Actor(username="alice", client_ip="not-an-address")  # PostgreSQL refuses it

    with audited("put", actor=unwritable, target="/k") as action:
        done = "the action's work"
    failing = audited("delete", actor=unwritable, target="/k")
    with pytest.raises(EtcdUnavailable), failing:  # the action's own error, not the database's
        raise EtcdUnavailable("down")

    assert done and action.duration_ms >= 0
    assert not AuditLog.objects.exists()  # the test's transaction still works
    assert "could not write audit entry for put" in caplog.text
    assert "could not write audit entry for delete" in caplog.text


def test_actor_from_request_names_the_user_and_the_trusted_client_ip(admin_user, settings):
    settings.TRUSTED_PROXIES = []
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="10.0.0.1")
    request.user = admin_user

    actor = Actor.from_request(request, cluster_id="tab-1")

    assert actor == Actor(
        username="admin", client_ip="192.0.2.9", user=admin_user, cluster_id="tab-1"
    )
    assert Actor(username="x").cluster_id == "default"


def test_actor_from_an_anonymous_request_is_anonymous():
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.9")
    request.user = AnonymousUser()

    assert Actor.from_request(request).username == "anonymous"
