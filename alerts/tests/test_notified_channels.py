"""From a fault to the real SMTP server and the real Alertmanager: a killed member's
member_down alert is mailed and posted firing then resolved, exactly once each."""

import time

import pytest

from alerts.tests.test_faults import _follower, _started
from notifications.services import outbox_deliver
from notifications.tests.conftest import (  # noqa: F401 - fixtures used by name
    SMTP_PASSWORD,
    SMTP_USER,
    alertmanager,
    receiver,
    smtp_server,
)


def _channel(api, kind: str, config: dict) -> None:
    response = api.post(
        "/api/alerts/channels", {"name": kind, "kind": kind, "config": config}, format="json"
    )
    assert response.status_code == 201, response.content


def _wait(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
    return value


def _kill_and_restart(cluster, monitor, after_firing, after_resolved) -> str:
    """Kill a follower until member_down fires, deliver, check; restart until it resolves,
    deliver, check. Extra evaluations while firing must not send more."""
    monitor.set_rule("member_down", for_seconds=0)
    victim, victim_id = _follower(cluster, monitor.api)

    cluster.kill_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id, "firing"), what="firing")
    monitor.round()
    monitor.round()
    outbox_deliver()
    after_firing(victim_id)

    cluster.start_member(victim)
    monitor.until(lambda: monitor.alert("member_down", victim_id, "resolved"), what="resolved")
    outbox_deliver()
    monitor.round()
    outbox_deliver()
    after_resolved(victim_id)
    return victim_id


@pytest.mark.django_db
def test_a_killed_member_is_mailed_firing_then_resolved_once_each(
    etcd_cluster_factory,
    monitor,
    smtp_server,  # noqa: F811
):
    cluster = _started(etcd_cluster_factory, monitor)
    _channel(
        monitor.api,
        "email",
        {
            "host": "127.0.0.1",
            "port": smtp_server.port,
            "security": "none",
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
            "from": "etcdmonitor@example.org",
            "to": ["oncall@example.org"],
        },
    )

    def subjects() -> list[str]:
        return [
            m["message"]["Subject"]
            for m in smtp_server.sink.messages
            if "member_down" in m["message"]["Subject"]
        ]

    def firing(victim_id):
        [subject] = subjects()
        assert subject.startswith("[FIRING:critical] member_down on default")
        assert f"(member {victim_id})" in subject

    def resolved(victim_id):
        assert len(subjects()) == 2, subjects()
        assert subjects()[1].startswith("[RESOLVED")
        assert f"(member {victim_id})" in subjects()[1]
        assert all(m["to"] == ["oncall@example.org"] for m in smtp_server.sink.messages)

    _kill_and_restart(cluster, monitor, firing, resolved)
    assert len(smtp_server.sink.messages) == 2


@pytest.mark.django_db
def test_a_killed_member_reaches_alertmanager_firing_then_resolved_once_each(
    etcd_cluster_factory,
    monitor,
    alertmanager,  # noqa: F811
    receiver,  # noqa: F811
):
    cluster = _started(etcd_cluster_factory, monitor)
    _channel(monitor.api, "alertmanager", {"url": alertmanager.url})

    def told() -> list[tuple[str, str]]:
        """What Alertmanager sent its own webhook receiver: (status, member) per alert."""
        return [
            (alert["status"], alert["labels"]["member"])
            for body in receiver.bodies("/from-alertmanager")
            for alert in body["alerts"]
            if alert["labels"]["alertname"] == "member_down"
        ]

    def firing(victim_id):
        (alert,) = alertmanager.alerts()
        assert alert["labels"]["alertname"] == "member_down"
        assert alert["labels"]["member"] == victim_id
        assert alert["labels"]["severity"] == "critical"
        assert alert["status"]["state"] == "active"
        assert alertmanager.received() == {"firing": 1, "resolved": 0}
        _wait(told)
        assert told() == [("firing", victim_id)]

    def resolved(victim_id):
        assert alertmanager.alerts() == []
        assert alertmanager.received() == {"firing": 1, "resolved": 1}
        _wait(lambda: len(told()) == 2)
        time.sleep(2.5)  # two of its group intervals: nothing more arrives
        assert told() == [("firing", victim_id), ("resolved", victim_id)]

    _kill_and_restart(cluster, monitor, firing, resolved)
