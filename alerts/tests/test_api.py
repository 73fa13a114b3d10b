"""The alerts API: authentication, staff-only writes (refusals audited), input validation
with the contract's error body, and the list's shape and filters."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import AccountProfile
from alerts.models import Alert, AlertRule, Silence
from audit.models import AuditLog

pytestmark = pytest.mark.django_db


def _alert(**fields) -> Alert:
    now = datetime.now(UTC)
    defaults = {
        "rule": "member_down",
        "cluster_id": "default",
        "member_id": "11",
        "fingerprint": "f",
        "severity": "warning",
        "state": "firing",
        "values": {"quorum_margin": 1},
        "summary": "etcd member m1 is down",
        "pending_at": now - timedelta(minutes=2),
        "starts_at": now - timedelta(minutes=1),
        "updated_at": now,
    }
    return Alert.objects.create(**{**defaults, **fields})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/alerts"),
        ("get", "/api/alerts/rules"),
        ("patch", "/api/alerts/rules/member_down"),
        ("get", "/api/alerts/silences"),
        ("post", "/api/alerts/silences"),
        ("delete", "/api/alerts/silences/1"),
        ("post", "/api/alerts/1/ack"),
        ("get", "/api/alerts/1"),
    ],
)
def test_every_route_needs_a_signed_in_user(method, path):
    response = getattr(APIClient(), method)(path)

    assert response.status_code == 401
    assert response.json() == {"error": "not authenticated"}


def test_the_list_has_the_issues_shape_and_filters(api_client):
    firing = _alert()
    _alert(rule="no_leader", member_id=None, severity="critical", state="pending", starts_at=None)
    _alert(
        rule="leader_changes",
        member_id=None,
        state="resolved",
        ends_at=datetime.now(UTC) - timedelta(hours=1),
    )
    _alert(
        rule="version_skew",
        member_id=None,
        state="resolved",
        ends_at=datetime.now(UTC) - timedelta(hours=25),
    )

    everything = api_client.get("/api/alerts").json()["alerts"]
    critical = api_client.get("/api/alerts", {"severity": "critical"}).json()["alerts"]
    resolved = api_client.get("/api/alerts", {"state": "resolved"}).json()["alerts"]
    elsewhere = api_client.get("/api/alerts", {"cluster_id": "other"}).json()["alerts"]

    assert {a["rule"] for a in everything} == {"member_down", "no_leader", "leader_changes"}
    shown = next(a for a in everything if a["id"] == firing.pk)
    assert shown == {
        "id": firing.pk,
        "rule": "member_down",
        "severity": "warning",
        "state": "firing",
        "silenced": False,
        "acknowledged": False,
        "cluster_id": "default",
        "member_id": "11",
        "summary": "etcd member m1 is down",
        "values": {"quorum_margin": 1},
        "starts_at": int(firing.starts_at.timestamp()),
        "ends_at": None,
    }
    assert [a["rule"] for a in critical] == ["no_leader"]
    assert critical[0]["member_id"] is None and critical[0]["starts_at"] is not None
    assert [a["rule"] for a in resolved] == ["leader_changes"]
    assert elsewhere == []


@pytest.mark.parametrize("query", [{"state": "inactive"}, {"severity": "fatal"}])
def test_an_unknown_filter_value_is_400(api_client, query):
    response = api_client.get("/api/alerts", query)

    assert response.status_code == 400
    assert response.json()["error"].startswith(next(iter(query)))


def test_a_viewer_reads_but_every_write_is_refused_and_audited(viewer_client):
    alert = _alert()
    silence = Silence.objects.create(
        rule="member_down",
        starts_at=datetime.now(UTC),
        ends_at=datetime.now(UTC) + timedelta(hours=1),
        created_at=datetime.now(UTC),
    )
    writes = [
        viewer_client.patch("/api/alerts/rules/member_down", {"enabled": False}, format="json"),
        viewer_client.post(
            "/api/alerts/silences",
            {"matchers": {"rule": "member_down"}, "ends_at": int(time.time()) + 60},
            format="json",
        ),
        viewer_client.delete(f"/api/alerts/silences/{silence.pk}"),
        viewer_client.post(f"/api/alerts/{alert.pk}/ack"),
    ]

    assert viewer_client.get("/api/alerts").status_code == 200
    assert viewer_client.get("/api/alerts/rules").status_code == 200
    assert [r.status_code for r in writes] == [403] * 4
    assert [r.json()["error"] for r in writes] == [
        "permission denied: changing alert rules needs the admin role",
        "permission denied: alert_silence_create needs the operator role",
        "permission denied: alert_silence_expire needs the operator role",
        f"permission denied: alert_ack needs the operator role on cluster {alert.cluster_id}",
    ]
    denied = AuditLog.objects.filter(success=False, username="viewer")
    assert sorted(denied.values_list("operation", flat=True)) == [
        "alert_ack",
        "alert_rule_update",
        "alert_silence_create",
        "alert_silence_expire",
    ]
    assert AlertRule.objects.get(id="member_down").enabled is True
    assert Alert.objects.get().acknowledged_at is None


def test_an_operator_of_one_cluster_acks_its_alerts_only_and_never_edits_rules(db, bearer_client):
    user = get_user_model().objects.create_user(username="op", password="pw-123456789")
    AccountProfile.objects.create(user=user, roles={"*": "viewer", "prod": "operator"})
    client = bearer_client(user)
    ours = _alert(cluster_id="prod", fingerprint="p")
    theirs = _alert(cluster_id="default", fingerprint="d")

    acked = client.post(f"/api/alerts/{ours.pk}/ack")
    refused = client.post(f"/api/alerts/{theirs.pk}/ack")
    rule = client.patch("/api/alerts/rules/member_down", {"enabled": False}, format="json")

    assert acked.status_code == 200 and acked.json()["alert"]["acknowledged_by"] == "op"
    assert refused.status_code == 403
    assert refused.json()["error"].endswith("needs the operator role on cluster default")
    assert rule.status_code == 403
    assert Alert.objects.get(pk=theirs.pk).acknowledged_at is None
    assert not AlertRule.objects.filter(id="member_down", enabled=False).exists()


def test_a_rule_patch_merges_thresholds_and_overrides(api_client):
    response = api_client.patch(
        "/api/alerts/rules/wal_fsync_slow",
        {
            "for_seconds": 120,
            "thresholds": {"warning_p99_seconds": 0.3},
            "cluster_overrides": {"default": {"thresholds": {"critical_p99_seconds": 2}}},
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    rule = response.json()["rule"]
    assert rule["for_seconds"] == 120 and rule["updated_by"] == "admin"
    assert rule["thresholds"] == {"warning_p99_seconds": 0.3, "critical_p99_seconds": 1.0}
    assert rule["cluster_overrides"] == {"default": {"thresholds": {"critical_p99_seconds": 2}}}
    listed = {r["id"]: r for r in api_client.get("/api/alerts/rules").json()["rules"]}
    assert listed["wal_fsync_slow"] == rule
    assert AuditLog.objects.filter(operation="alert_rule_update", success=True).count() == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"for_seconds": -1}, "for_seconds must be an integer from 0 to 604800"),
        ({"for_seconds": "5"}, "for_seconds must be an integer from 0 to 604800"),
        ({"enabled": "yes"}, "enabled must be a boolean"),
        ({"thresholds": {"nope": 1}}, "thresholds: unknown threshold nope"),
        ({"thresholds": {"p99_seconds": -2}}, "thresholds.p99_seconds must be a number >= 0"),
        ({"severity": "info"}, "severity is not a rule setting"),
        ({}, "nothing to change"),
        ({"cluster_overrides": {"default": {"for": 1}}}, "cluster_overrides.default.for is"),
        ({"cluster_overrides": []}, "cluster_overrides must be an object"),
    ],
)
def test_a_bad_rule_patch_is_400_and_changes_nothing(api_client, body, error):
    response = api_client.patch("/api/alerts/rules/peer_rtt_slow", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert AlertRule.objects.get(id="peer_rtt_slow").updated_at is None


def test_an_unknown_rule_is_404(api_client):
    response = api_client.patch("/api/alerts/rules/nope", {"enabled": False}, format="json")

    assert response.status_code == 404
    assert response.json() == {"error": "alert rule not found"}


def test_a_silence_is_created_listed_and_expired(api_client):
    now = int(time.time())
    created = api_client.post(
        "/api/alerts/silences",
        {
            "matchers": {"cluster_id": "default", "severity": "warning"},
            "starts_at": now - 10,
            "ends_at": now + 600,
            "comment": "upgrade",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    silence = created.json()["silence"]
    assert silence["matchers"] == {"cluster_id": "default", "severity": "warning"}
    assert (silence["state"], silence["created_by"], silence["comment"]) == (
        "active",
        "admin",
        "upgrade",
    )
    _alert()
    assert api_client.get("/api/alerts").json()["alerts"][0]["silenced"] is True

    listed = api_client.get("/api/alerts/silences").json()["silences"]
    expired = api_client.delete(f"/api/alerts/silences/{silence['id']}")
    again = api_client.delete(f"/api/alerts/silences/{silence['id']}")

    assert [s["id"] for s in listed] == [silence["id"]]
    assert expired.status_code == 200 and expired.json()["silence"]["state"] == "expired"
    assert again.status_code == 409 and again.json() == {"error": "silence already expired"}
    assert api_client.get("/api/alerts").json()["alerts"][0]["silenced"] is False
    assert api_client.delete("/api/alerts/silences/999999").status_code == 404


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"matchers": {}, "ends_at": 4_000_000_000}, "a silence needs at least one matcher"),
        ({"matchers": {"rule": "nope"}, "ends_at": 4_000_000_000}, "matchers.rule is not"),
        ({"matchers": {"severity": "x"}, "ends_at": 4_000_000_000}, "matchers.severity must"),
        ({"matchers": {"pod": "x"}, "ends_at": 4_000_000_000}, "matchers: pod is not a matcher"),
        ({"matchers": {"rule": 5}, "ends_at": 4_000_000_000}, "matchers: rule: must be a str"),
        ({"matchers": {"rule": "no_leader"}, "ends_at": 10}, "ends_at must be in the future"),
        ({"matchers": {"rule": "no_leader"}, "ends_at": "soon"}, "ends_at: must be Unix"),
        ({"matchers": {"rule": "no_leader"}}, "ends_at: This field is required"),
        ([], "body must be an object"),
    ],
)
def test_a_bad_silence_is_400_and_stores_nothing(api_client, body, error):
    response = api_client.post("/api/alerts/silences", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"].startswith(error)
    assert not Silence.objects.exists()


def test_ack_of_an_unknown_or_resolved_alert_is_refused(api_client):
    resolved = _alert(state="resolved", ends_at=datetime.now(UTC))

    missing = api_client.post("/api/alerts/999999/ack")
    refused = api_client.post(f"/api/alerts/{resolved.pk}/ack")

    assert missing.status_code == 404 and missing.json() == {"error": "alert not found"}
    assert refused.status_code == 409 and refused.json() == {"error": "alert already resolved"}


def test_an_alerts_detail_has_description_runbook_and_history(api_client):
    alert = _alert(description="did not answer")

    detail = api_client.get(f"/api/alerts/{alert.pk}").json()["alert"]

    assert detail["description"] == "did not answer"
    assert detail["runbook_url"].endswith("/etcdmembersdown/")
    assert api_client.get("/api/alerts/999999").status_code == 404
