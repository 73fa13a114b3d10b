"""The Alertmanager channel against Debian's prometheus-alertmanager, started per test."""

import time
from datetime import datetime

import pytest

from notifications import services
from notifications.tests.conftest import add_channel, notice

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_alertmanager_shows_our_alert_then_resolves_it(staff_client, alertmanager, receiver):
    channel = add_channel(staff_client, "alertmanager", {"url": alertmanager.url})
    assert channel["config"] == {"url": alertmanager.url, "repeat_interval": 60}
    firing = notice(starts_at=time.time() - 30)

    services.notices_enqueue(notices=[firing])
    assert services.outbox_deliver().sent == 1

    (alert,) = alertmanager.alerts()
    assert alert["labels"] == {
        "alertname": "member_down",
        "severity": "warning",
        "cluster": "prod",
        "cluster_id": "default",
        "member": "1234",
    }
    assert alert["annotations"] == {
        "summary": "member 1234 is down",
        "description": "member 1234 has not answered for 10 s; quorum margin 1",
        "runbook_url": "https://example.org/runbooks/member_down",
    }
    assert alert["status"]["state"] == "active"
    # Alertmanager tells its own receivers: one firing notification.
    (told,) = wait_for(lambda: receiver.bodies("/from-alertmanager"))
    assert told["status"] == "firing"
    assert told["alerts"][0]["labels"]["alertname"] == "member_down"

    resolved = notice(status="resolved", starts_at=firing.starts_at, ends_at=time.time())
    services.notices_enqueue(notices=[resolved])
    assert services.outbox_deliver().sent == 1

    # A resolved alert leaves the active list, and Alertmanager sends one resolved message.
    assert alertmanager.alerts() == []
    wait_for(lambda: len(receiver.bodies("/from-alertmanager")) == 2)
    statuses = [body["status"] for body in receiver.bodies("/from-alertmanager")]
    assert statuses == ["firing", "resolved"]
    time.sleep(2.5)  # two group intervals: nothing more arrives
    assert len(receiver.bodies("/from-alertmanager")) == 2


def test_a_firing_alert_is_posted_with_an_end_ahead_of_the_next_resend(staff_client, alertmanager):
    add_channel(staff_client, "alertmanager", {"url": alertmanager.url, "repeat_interval": 30})
    services.notices_enqueue(notices=[notice(starts_at=time.time())])
    before = time.time()
    services.outbox_deliver()
    (alert,) = alertmanager.alerts()
    ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
    # Four re-send intervals ahead: an etcdmonitor that stops lets Alertmanager resolve it.
    assert before + 4 * 30 - 5 <= ends <= time.time() + 4 * 30 + 5


def test_the_test_action_reaches_alertmanager(staff_client, alertmanager, receiver):
    channel = add_channel(staff_client, "alertmanager", {"url": alertmanager.url})
    response = staff_client.post(f"/api/alerts/channels/{channel['id']}/test")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "sent": ["firing", "resolved"]}
    # Alertmanager took both, and the alert is no longer active.
    assert alertmanager.received() == {"firing": 1, "resolved": 1}
    assert alertmanager.alerts() == []
