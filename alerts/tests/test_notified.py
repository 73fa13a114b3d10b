"""From a fault to a receiver: a killed member's alert reaches a webhook channel as Alertmanager's
webhook payload, firing then resolved, once each; a silenced one sends nothing."""

import time

import pytest

from alerts.tests.test_faults import _follower, _started
from notifications.services import outbox_deliver
from notifications.tests.conftest import Receiver


@pytest.fixture
def hook():
    server = Receiver().start()
    yield server
    server.stop()


def _channel(api, url: str) -> None:
    response = api.post(
        "/api/alerts/channels",
        {"name": "oncall", "kind": "webhook", "config": {"url": url}},
        format="json",
    )
    assert response.status_code == 201, response.content


def _member_down_messages(hook) -> list[tuple[str, str]]:
    return [
        (alert["status"], alert["labels"]["member"])
        for body in hook.bodies("/hook")
        for alert in body["alerts"]
        if alert["labels"]["alertname"] == "member_down"
    ]


@pytest.mark.django_db
def test_a_killed_member_is_sent_firing_then_resolved_once_each(
    etcd_cluster_factory, monitor, hook
):
    cluster = _started(etcd_cluster_factory, monitor)
    _channel(monitor.api, f"{hook.url}/hook")
    monitor.set_rule("member_down", for_seconds=0)
    victim, victim_id = _follower(cluster, monitor.api)

    cluster.kill_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id, "firing"), what="firing")
    # Evaluations while it keeps firing are not new messages (repeat interval 4 h).
    monitor.round()
    monitor.round()
    outbox_deliver()
    assert _member_down_messages(hook) == [("firing", victim_id)]
    [body] = hook.bodies("/hook")
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["alerts"][0]["labels"]["cluster"] == "default"
    assert body["alerts"][0]["annotations"]["summary"]

    cluster.start_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id, "resolved"), what="resolved")
    outbox_deliver()
    monitor.round()
    outbox_deliver()
    assert _member_down_messages(hook) == [("firing", victim_id), ("resolved", victim_id)]


@pytest.mark.django_db
def test_a_silenced_alert_sends_nothing(etcd_cluster_factory, monitor, hook):
    cluster = _started(etcd_cluster_factory, monitor)
    _channel(monitor.api, f"{hook.url}/hook")
    monitor.set_rule("member_down", for_seconds=0)
    victim, victim_id = _follower(cluster, monitor.api)
    silence = monitor.api.post(
        "/api/alerts/silences",
        {"matchers": {"rule": "member_down"}, "ends_at": int(time.time()) + 3600},
        format="json",
    )
    assert silence.status_code == 201, silence.content

    cluster.kill_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id, "firing"), what="firing")
    cluster.start_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id, "resolved"), what="resolved")
    outbox_deliver()
    assert _member_down_messages(hook) == []
