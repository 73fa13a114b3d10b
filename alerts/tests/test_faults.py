"""The engine against real clusters: members killed, paused and restarted, quorum lost, a
NOSPACE alarm; what the API lists and which transitions an evaluation returns."""

import threading
import time

import pytest
from django.conf import settings

from alerts import services
from alerts.models import Alert, AlertEvent, ConsistencyCheck
from audit.models import AuditLog
from etcdgateway import EtcdError, cluster_gateway


def _ids(api_client) -> dict[str, str]:
    """{client URL: member id} as /api/members lists them."""
    members = api_client.get("/api/members").json()["members"]
    return {m["client_urls"][0]: m["id"] for m in members}


def _leader(api_client) -> str | None:
    members = api_client.get("/api/members").json()["members"]
    return next((m["id"] for m in members if m["is_leader"]), None)


def _follower(cluster, api_client):
    """(local member, its id) of a member that is not the leader."""
    ids = _ids(api_client)
    leader = _leader(api_client)
    local = next(m for m in cluster.members if ids[m.client_url] != leader)
    return local, ids[local.client_url]


def _started(factory, monitor, size=3, **kwargs):
    cluster = factory(size, **kwargs)
    monitor.collect()
    monitor.until(lambda: _leader(monitor.api) is not None, what="a leader")
    assert monitor.round() == []
    return cluster


@pytest.mark.django_db
def test_a_killed_member_is_pending_then_firing_and_resolves_after_restart(
    etcd_cluster_factory, monitor
):
    cluster = _started(etcd_cluster_factory, monitor)
    monitor.set_rule("member_down", for_seconds=2)
    victim, victim_id = _follower(cluster, monitor.api)

    cluster.kill_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id), what="member_down pending")
    pending = monitor.alert("member_down", victim_id)
    assert pending["state"] == "pending" and not monitor.transitions
    # 3 members, one down: quorum margin 0 -> critical at once.
    assert pending["severity"] == "critical"
    assert pending["values"]["quorum_margin"] == 0 and pending["values"]["error"]

    monitor.until(
        lambda: monitor.alert("member_down", victim_id, "firing"), what="member_down firing"
    )
    firing = monitor.alert("member_down", victim_id)
    assert firing["id"] == pending["id"]
    assert firing["ends_at"] is None and firing["silenced"] is False
    [fired] = monitor.transitions
    assert (fired.rule, fired.status, fired.member_id) == ("member_down", "firing", victim_id)
    assert fired.runbook_url.startswith("https://") and fired.starts_at is not None
    assert fired.alert_id == firing["id"] and fired.fingerprint

    cluster.start_member(victim)
    monitor.until(
        lambda: monitor.alert("member_down", victim_id, "resolved"), what="member_down resolved"
    )
    resolved = monitor.alert("member_down", victim_id)
    assert resolved["id"] == firing["id"] and resolved["ends_at"] >= resolved["starts_at"]
    assert [t.status for t in monitor.transitions] == ["firing", "resolved"]
    assert Alert.objects.count() == 1
    kinds = list(AlertEvent.objects.values_list("kind", flat=True))
    assert kinds == ["pending", "firing", "resolved"]


@pytest.mark.django_db
def test_severity_rises_when_the_quorum_margin_reaches_zero_and_stays_one_alert(
    etcd_cluster_factory, monitor
):
    cluster = _started(etcd_cluster_factory, monitor, size=5)
    monitor.set_rule("member_down", for_seconds=0)
    ids = _ids(monitor.api)
    leader = _leader(monitor.api)
    first, second = [m for m in cluster.members if ids[m.client_url] != leader][:2]
    first_id, second_id = ids[first.client_url], ids[second.client_url]

    cluster.kill_member(first)
    monitor.until(
        lambda: monitor.alert("member_down", first_id, "firing"), what="first member firing"
    )
    warning = monitor.alert("member_down", first_id)
    assert warning["severity"] == "warning" and warning["values"]["quorum_margin"] == 1

    cluster.kill_member(second)
    monitor.until(
        lambda: (monitor.alert("member_down", first_id) or {}).get("severity") == "critical",
        what="severity rise",
    )
    risen = monitor.alert("member_down", first_id)
    assert risen["id"] == warning["id"] and risen["state"] == "firing"
    assert risen["starts_at"] == warning["starts_at"]
    assert Alert.objects.filter(rule="member_down", member_id=first_id).count() == 1
    about_first = [t for t in monitor.transitions if t.member_id == first_id]
    assert [(t.status, t.severity, t.update) for t in about_first] == [
        ("firing", "warning", False),
        ("firing", "critical", True),
    ]
    assert AlertEvent.objects.filter(alert_id=risen["id"], kind="escalated").count() == 1

    # Once the second member is back the first one's alert stays critical until it resolves.
    cluster.start_member(second)
    monitor.until(
        lambda: monitor.alert("member_down", second_id, "resolved"), what="second resolved"
    )
    assert monitor.alert("member_down", first_id)["severity"] == "critical"


@pytest.mark.django_db
def test_a_paused_member_is_down_and_resolves_when_resumed(etcd_cluster_factory, monitor):
    cluster = _started(etcd_cluster_factory, monitor)
    monitor.set_rule("member_down", for_seconds=0)
    victim, victim_id = _follower(cluster, monitor.api)

    cluster.pause_member(victim)
    try:
        monitor.until(
            lambda: monitor.alert("member_down", victim_id, "firing"), what="paused member down"
        )
        assert "insufficient_members" not in {a["rule"] for a in monitor.alerts()}
    finally:
        cluster.resume_member(victim)
    monitor.until(
        lambda: monitor.alert("member_down", victim_id, "resolved"), what="resumed member up"
    )


@pytest.mark.django_db
def test_quorum_lost_fires_insufficient_members_and_no_leader(etcd_cluster_factory, monitor):
    cluster = _started(etcd_cluster_factory, monitor)
    monitor.set_rule("insufficient_members", for_seconds=0)
    monitor.set_rule("no_leader", for_seconds=0)
    survivor_id = _leader(monitor.api)
    ids = _ids(monitor.api)

    for member in cluster.members:
        if ids[member.client_url] != survivor_id:
            cluster.kill_member(member)
    monitor.until(
        lambda: (
            monitor.alert("insufficient_members", state="firing")
            and monitor.alert("no_leader", state="firing")
        ),
        what="quorum loss alerts",
    )
    lost = monitor.alert("insufficient_members")
    assert lost["severity"] == "critical" and lost["member_id"] is None
    assert lost["values"]["members_up"] == 1 and lost["values"]["quorum_margin"] == -1

    for member in cluster.members:
        if not member.running:
            cluster.start_member(member)
    monitor.until(
        lambda: (
            monitor.alert("insufficient_members", state="resolved")
            and monitor.alert("no_leader", state="resolved")
        ),
        timeout=30,
        what="quorum back",
    )


@pytest.mark.django_db
def test_a_nospace_alarm_fires_alarm_active_at_once(etcd_cluster_factory, monitor):
    cluster = _started(
        etcd_cluster_factory, monitor, size=1, extra_args=["--quota-backend-bytes=1048576"]
    )
    gateway = cluster_gateway()
    value = b"x" * 64 * 1024
    with pytest.raises(EtcdError):
        for index in range(200):
            gateway.put(f"/fill/{index}".encode(), value, ttl=None)
    member_id = next(iter(_ids(monitor.api).values()))

    monitor.round()
    alert = monitor.alert("alarm_active", member_id)

    assert alert is not None and alert["state"] == "firing"
    assert alert["severity"] == "critical" and alert["values"]["alarms"] == ["NOSPACE"]
    assert [(t.rule, t.status) for t in monitor.transitions] == [("alarm_active", "firing")]
    del cluster


@pytest.mark.django_db
def test_a_silence_marks_the_alert_silenced_and_its_transitions(etcd_cluster_factory, monitor):
    cluster = _started(etcd_cluster_factory, monitor)
    monitor.set_rule("member_down", for_seconds=0)
    victim, victim_id = _follower(cluster, monitor.api)
    now = int(time.time())
    response = monitor.api.post(
        "/api/alerts/silences",
        {
            "matchers": {"rule": "member_down", "member_id": victim_id},
            "ends_at": now + 3600,
            "comment": "maintenance",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    silence = response.json()["silence"]

    cluster.kill_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id, "firing"), what="firing")

    assert monitor.alert("member_down", victim_id)["silenced"] is True
    assert [t.silenced for t in monitor.transitions] == [True]
    expired = monitor.api.delete(f"/api/alerts/silences/{silence['id']}")
    assert expired.status_code == 200 and expired.json()["silence"]["state"] == "expired"
    assert monitor.alert("member_down", victim_id)["silenced"] is False
    assert AuditLog.objects.filter(operation="alert_silence_create", success=True).exists()
    assert AuditLog.objects.filter(operation="alert_silence_expire", success=True).exists()


@pytest.mark.django_db
def test_an_alert_is_acknowledged_once_and_audited(etcd_cluster_factory, monitor):
    cluster = _started(etcd_cluster_factory, monitor)
    monitor.set_rule("member_down", for_seconds=0)
    victim, victim_id = _follower(cluster, monitor.api)
    cluster.kill_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id, "firing"), what="firing")
    alert_id = monitor.alert("member_down", victim_id)["id"]

    first = monitor.api.post(f"/api/alerts/{alert_id}/ack")
    again = monitor.api.post(f"/api/alerts/{alert_id}/ack")

    assert first.status_code == again.status_code == 200
    detail = first.json()["alert"]
    assert detail["acknowledged"] is True and detail["acknowledged_by"] == "admin"
    assert again.json()["alert"]["acknowledged_at"] == detail["acknowledged_at"]
    assert monitor.alert("member_down", victim_id)["acknowledged"] is True
    assert AuditLog.objects.filter(operation="alert_ack").count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_evaluations_produce_each_transition_once(etcd_cluster_factory, api_client):
    from alerts.tests.conftest import Monitor

    monitor = Monitor(api_client)
    cluster = _started(etcd_cluster_factory, monitor)
    monitor.set_rule("member_down", for_seconds=0)
    victim, victim_id = _follower(cluster, monitor.api)
    cluster.kill_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id), what="a down member")
    Alert.objects.all().delete()  # the next evaluations open it again, concurrently
    monitor.probe()

    barrier = threading.Barrier(4)
    reports = []

    def evaluate():
        from django.db import connection

        try:
            barrier.wait()
            reports.append(services.evaluate_cluster(cluster_id="default"))
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    fired = [t for r in reports for t in r.transitions if t.rule == "member_down"]
    assert [(t.status, t.member_id) for t in fired] == [("firing", victim_id)]
    assert Alert.objects.filter(rule="member_down").count() == 1


@pytest.mark.django_db
def test_no_hashkv_mismatch_while_a_member_is_down_or_paused(
    etcd_cluster_factory, monitor, monkeypatch
):
    monkeypatch.setattr(services, "HASHKV_TIMEOUT", 2.0)
    cluster = _started(etcd_cluster_factory, monitor)
    gateway = cluster_gateway()
    for index in range(20):
        gateway.put(f"/hash/{index}".encode(), b"v", ttl=None)
    assert services.consistency_check().outcome == "consistent"
    monitor.evaluate()
    victim, _ = _follower(cluster, monitor.api)

    # Writes go through a member that answers: the gateway may still prefer the paused one.
    healthy = next(m for m in cluster.members if m is not victim)
    writer = gateway.client_for(healthy.client_url, timeout=5)
    cluster.pause_member(victim)
    try:
        writer.put(b"/hash/during-pause", b"v", ttl=None)
        paused = services.consistency_check()
    finally:
        cluster.resume_member(victim)
    cluster.kill_member(victim)
    writer.put(b"/hash/during-kill", b"v", ttl=None)
    killed = services.consistency_check()
    monitor.round()

    assert paused.outcome == killed.outcome == "inconclusive"
    assert "not every member answered" in killed.detail
    assert monitor.alert("hashkv_mismatch") is None
    assert ConsistencyCheck.objects.filter(outcome="mismatch").count() == 0
    assert settings.PERIODIC_JOBS["check-consistency"]["interval"] == 600


def test_evaluation_and_the_consistency_check_are_periodic_jobs_of_both_schedulers():
    jobs = settings.PERIODIC_JOBS

    assert jobs["evaluate-alerts"] == {"task": "alerts.tasks.evaluate_alerts", "interval": 15}
    assert jobs["check-consistency"]["task"] == "alerts.tasks.check_consistency"
    assert jobs["purge-alerts"]["interval"] == 3600
    for name in ("evaluate-alerts", "check-consistency", "purge-alerts"):
        beat = settings.CELERY_BEAT_SCHEDULE[name]
        assert beat["task"] == jobs[name]["task"]
        assert beat["options"]["expires"] < jobs[name]["interval"]


@pytest.mark.django_db
def test_repeated_move_leader_fires_leader_changes(etcd_cluster_factory, monitor):
    from audit.services import Actor
    from ops.services import leader_move

    cluster = _started(etcd_cluster_factory, monitor)
    monitor.set_rule("leader_changes", thresholds={"changes": 4})
    actor = Actor(username="test")
    ids = list(_ids(monitor.api).values())
    monitor.collect()
    for _ in range(4):
        time.sleep(1.1)  # one sample per second and member at most
        leader = cluster_gateway().status().leader_id
        target = next(i for i in ids if int(i) != leader)
        leader_move(target_member_id=int(target), actor=actor)
        monitor.collect()
    monitor.round()

    alert = monitor.alert("leader_changes", state="firing")
    assert alert is not None and alert["member_id"] is None
    assert alert["values"]["changes"] >= 4
    assert cluster is not None
