"""Delivery through the outbox to real receivers on loopback: payloads, retries, restarts,
the repeat interval."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import services
from notifications.models import Channel, ChannelAlertState, OutboxMessage
from notifications.tests.conftest import SMTP_PASSWORD, SMTP_USER, add_channel, notice

pytestmark = pytest.mark.django_db(transaction=True)

State = OutboxMessage.State


def deliver_until_idle():
    return services.outbox_deliver()


def test_webhook_receives_alertmanagers_payload_version_4(staff_client, receiver, settings):
    settings.EXTERNAL_URL = "https://monitor.example.org/"
    add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook?token=s3cr3t"}, name="ops")

    assert services.notices_enqueue(notices=[notice()]) == 1
    report = deliver_until_idle()

    assert report.sent == 1
    assert [r["path"] for r in receiver.requests] == ["/hook?token=s3cr3t"]
    assert receiver.requests[0]["headers"]["content-type"] == "application/json"
    labels = {
        "alertname": "member_down",
        "severity": "warning",
        "cluster": "prod",
        "cluster_id": "default",
        "member": "1234",
    }
    annotations = {
        "summary": "member 1234 is down",
        "description": "member 1234 has not answered for 10 s; quorum margin 1",
        "runbook_url": "https://example.org/runbooks/member_down",
    }
    assert receiver.bodies() == [
        {
            "version": "4",
            "groupKey": '{}/{receiver="ops"}:{alertname="member_down", cluster="prod", '
            'member="1234"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "ops",
            "groupLabels": {"alertname": "member_down", "cluster": "prod", "member": "1234"},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "https://monitor.example.org",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": "2023-11-14T22:13:20.250Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "https://monitor.example.org/alerts?id=7",
                    "fingerprint": "fp-member-down-1234",
                }
            ],
        }
    ]
    row = OutboxMessage.objects.get()
    assert (row.state, row.attempts, row.last_error) == (State.SENT, 1, "")
    assert row.sent_at is not None

    services.notices_enqueue(notices=[notice(status="resolved", ends_at=1_700_000_600.0)])
    deliver_until_idle()
    resolved = receiver.bodies()[1]
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "2023-11-14T22:23:20.000Z"
    assert len(receiver.requests) == 2


def test_slack_receives_text_and_blocks(staff_client, receiver):
    add_channel(staff_client, "slack", {"url": f"{receiver.url}/services/T0/B0/XYZ"})
    services.notices_enqueue(notices=[notice(severity="critical")])
    deliver_until_idle()

    (body,) = receiver.bodies("/services/T0/B0/XYZ")
    headline = "[FIRING:critical] member_down on prod (member 1234): member 1234 is down"
    assert body["text"] == headline
    assert body["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": f"*{headline}*"},
    }
    details = body["blocks"][1]["text"]["text"]
    assert "quorum margin 1" in details
    assert "members_up=2, quorum_margin=1" in details
    assert "<https://example.org/runbooks/member_down|Runbook>" in details


def test_email_goes_through_the_channels_smtp_server_with_its_login(staff_client, smtp_server):
    config = {
        "host": "127.0.0.1",
        "port": smtp_server.port,
        "security": "none",
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "from": "etcdmonitor@example.org",
        "to": ["oncall@example.org", "team@example.org"],
    }
    add_channel(staff_client, "email", config)
    services.notices_enqueue(notices=[notice()])
    assert deliver_until_idle().sent == 1

    (mail,) = smtp_server.sink.messages
    assert mail["from"] == "etcdmonitor@example.org"
    assert mail["to"] == ["oncall@example.org", "team@example.org"]
    assert mail["login"] == SMTP_USER.encode()
    message = mail["message"]
    assert message["Subject"] == (
        "[FIRING:warning] member_down on prod (member 1234): member 1234 is down"
    )
    row = OutboxMessage.objects.get()
    assert message["Message-ID"] == f"<outbox-{row.pk}@etcdmonitor>"
    body = message.get_payload(decode=True).decode()
    assert "Runbook:   https://example.org/runbooks/member_down" in body
    assert "Values:    members_up=2, quorum_margin=1" in body


def test_email_with_a_wrong_password_fails_with_a_reason_and_no_secret(staff_client, smtp_server):
    config = {
        "host": "127.0.0.1",
        "port": smtp_server.port,
        "security": "none",
        "username": SMTP_USER,
        "password": "wrong-password-123",
        "from": "etcdmonitor@example.org",
        "to": ["oncall@example.org"],
    }
    add_channel(staff_client, "email", config)
    services.notices_enqueue(notices=[notice()])
    report = deliver_until_idle()

    assert (report.sent, report.failed) == (0, 1)
    row = OutboxMessage.objects.get()
    assert row.state == State.PENDING
    assert row.last_error == "SMTP authentication failed"
    assert smtp_server.sink.messages == []


def test_retries_back_off_while_the_receiver_is_down_then_deliver_once(
    staff_client, receiver, settings
):
    settings.NOTIFICATIONS_RETRY_BASE_SECONDS = 10
    add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    receiver.stop()  # down: connection refused
    services.notices_enqueue(notices=[notice()])
    start = timezone.now()

    waits = []
    for attempt in range(1, 4):
        moment = start + timedelta(seconds=sum(waits))
        report = services.outbox_deliver(now=moment)
        assert (report.sent, report.failed) == (0, 1)
        row = OutboxMessage.objects.get()
        assert (row.state, row.attempts, row.last_error) == (
            State.PENDING,
            attempt,
            "connection refused",
        )
        waits.append((row.next_attempt_at - moment).total_seconds())
        # Not due before its backoff ends.
        assert services.outbox_deliver(now=row.next_attempt_at - timedelta(seconds=1)).failed == 0
    assert waits == [10, 20, 40]

    receiver.start()  # up again on the same port
    report = services.outbox_deliver(now=start + timedelta(seconds=sum(waits)))
    assert report.sent == 1
    assert services.outbox_deliver(now=start + timedelta(hours=5)).sent == 0
    assert len(receiver.requests) == 1
    row = OutboxMessage.objects.get()
    assert (row.state, row.attempts) == (State.SENT, 4)


def test_a_receiver_error_status_is_retried_and_given_up_after_max_attempts(
    staff_client, receiver, settings
):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    receiver.status = 500
    add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    services.notices_enqueue(notices=[notice()])
    moment = timezone.now()
    for _ in range(3):
        services.outbox_deliver(now=moment)
        moment += timedelta(hours=2)
    row = OutboxMessage.objects.get()
    assert (row.state, row.attempts, row.last_error) == (
        State.FAILED,
        3,
        "HTTP 500 from the receiver",
    )
    services.outbox_deliver(now=moment + timedelta(days=1))
    assert len(receiver.requests) == 3


def test_a_row_claimed_by_a_worker_that_died_is_sent_exactly_once(staff_client, receiver, settings):
    add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    services.notices_enqueue(notices=[notice()])
    # A worker claims the row and dies before sending (its process is gone, so is its claim).
    row, _dead_token = services.outbox_claim()
    assert OutboxMessage.objects.get().state == State.SENDING

    # While the lease lasts, nobody else sends it.
    assert services.outbox_deliver().sent == 0
    assert receiver.requests == []

    # After the lease, exactly one of two concurrent workers sends it, once.
    later = timezone.now() + timedelta(seconds=settings.NOTIFICATIONS_LEASE_SECONDS + 1)
    reports = []
    workers = [
        threading.Thread(target=lambda: reports.append(services.outbox_deliver(now=later)))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(r.sent for r in reports) == [0, 1]
    assert len(receiver.requests) == 1
    row = OutboxMessage.objects.get()
    assert (row.state, row.attempts) == (State.SENT, 2)
    # The dead worker's claim cannot change the row any more.
    assert not services.outbox_complete(row=row, token=_dead_token, error="late")
    assert OutboxMessage.objects.get().state == State.SENT
    assert services.outbox_deliver(now=later + timedelta(hours=1)).sent == 0
    assert len(receiver.requests) == 1


def test_concurrent_workers_send_each_row_once(staff_client, receiver):
    add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    notices = [notice(fingerprint=f"fp-{i}", alert_id=i) for i in range(20)]
    assert services.notices_enqueue(notices=notices) == 20
    reports = []
    workers = [
        threading.Thread(target=lambda: reports.append(services.outbox_deliver())) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(reports) == 4, "a worker raised"
    assert sum(r.sent for r in reports) == 20
    fingerprints = [b["alerts"][0]["fingerprint"] for b in receiver.bodies()]
    assert sorted(fingerprints) == sorted(f"fp-{i}" for i in range(20))


def test_a_firing_alert_repeats_at_the_repeat_interval_and_resolves_once(staff_client, receiver):
    channel = add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    assert channel["config"]["repeat_interval"] == 4 * 3600
    start = timezone.now()

    def evaluate(offset_seconds: float, *notices_) -> int:
        moment = start + timedelta(seconds=offset_seconds)
        written = services.notices_enqueue(notices=list(notices_), now=moment)
        services.outbox_deliver(now=moment)
        return written

    # The engine reports the firing alert on every evaluation (every 15 s).
    assert evaluate(0, notice()) == 1
    assert sum(evaluate(15 * i, notice()) for i in range(1, 20)) == 0
    assert evaluate(4 * 3600 - 1, notice()) == 0
    assert evaluate(4 * 3600, notice()) == 1  # repeated
    # A severity change is told at once.
    assert evaluate(4 * 3600 + 15, notice(severity="critical")) == 1
    assert evaluate(4 * 3600 + 30, notice(severity="critical")) == 0
    resolved = notice(
        status="resolved", severity="critical", ends_at=start.timestamp() + 4 * 3600 + 40
    )
    assert evaluate(4 * 3600 + 45, resolved) == 1
    assert evaluate(4 * 3600 + 60, resolved) == 0  # once
    statuses = [(b["status"], b["alerts"][0]["labels"]["severity"]) for b in receiver.bodies()]
    assert statuses == [
        ("firing", "warning"),
        ("firing", "warning"),
        ("firing", "critical"),
        ("resolved", "critical"),
    ]
    state = ChannelAlertState.objects.get()
    assert (state.last_status, state.last_severity) == ("resolved", "critical")
    # Firing again later is new again.
    assert evaluate(5 * 3600, notice()) == 1


def test_a_resolved_alert_the_channel_never_heard_of_is_not_sent(staff_client, receiver):
    add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    assert services.notices_enqueue(notices=[notice(status="resolved", ends_at=1.0e9)]) == 0


def test_a_newer_notice_replaces_an_undelivered_one(staff_client, receiver):
    add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    receiver.stop()
    services.notices_enqueue(notices=[notice()])
    services.outbox_deliver()
    receiver.start()
    services.notices_enqueue(notices=[notice(status="resolved", ends_at=1.7e9)])
    later = timezone.now() + timedelta(hours=1)
    services.outbox_deliver(now=later)
    assert [b["status"] for b in receiver.bodies()] == ["resolved"]
    states = list(OutboxMessage.objects.order_by("id").values_list("state", flat=True))
    assert states == [State.SUPERSEDED, State.SENT]


def test_disabled_channels_get_nothing(staff_client, receiver):
    channel = add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"}, enabled=False)
    assert services.notices_enqueue(notices=[notice()]) == 0
    Channel.objects.filter(pk=channel["id"]).update(enabled=True)
    assert services.notices_enqueue(notices=[notice()]) == 1
    response = staff_client.patch(
        f"/api/alerts/channels/{channel['id']}", {"enabled": False}, format="json"
    )
    assert response.status_code == 200
    assert services.outbox_deliver().sent == 0
    assert OutboxMessage.objects.get().state == State.SUPERSEDED
    assert receiver.requests == []


def test_a_redirect_to_another_host_is_refused(staff_client, receiver):
    other = f"http://127.0.0.2:{receiver.port}/elsewhere"
    receiver.redirect_to = other
    add_channel(staff_client, "webhook", {"url": f"{receiver.url}/hook"})
    services.notices_enqueue(notices=[notice()])
    services.outbox_deliver()
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    assert OutboxMessage.objects.get().last_error == "HTTP 307: redirect to another host refused"
