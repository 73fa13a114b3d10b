"""How long from killing a member to its member_down alert firing, with default settings:
the probe, the collection and the evaluation run on their configured intervals, as the
in-process scheduler runs them. A measurement (printed), bounded by a generous wait."""

import time

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from alerts import services

JOBS = ("collect-metrics", "probe-health")


@pytest.mark.system
@pytest.mark.django_db
def test_a_killed_member_fires_member_down_with_default_settings(etcd_cluster_factory, api_client):
    cluster = etcd_cluster_factory()
    due = dict.fromkeys((*JOBS, "evaluate-alerts"), time.monotonic())
    fired = []

    def tick():
        for name in due:
            if time.monotonic() >= due[name]:
                job = settings.PERIODIC_JOBS[name]
                if name == "evaluate-alerts":
                    fired.extend(services.evaluate_cluster(cluster_id="default").transitions)
                else:
                    import_string(job["task"])()
                due[name] += float(job["interval"])

    def wait(predicate, timeout):
        started = time.monotonic()
        while True:
            tick()
            if predicate():
                return time.monotonic() - started
            assert time.monotonic() - started < timeout, "not seen in time"
            time.sleep(0.1)

    members = lambda: api_client.get("/api/members").json()["members"]  # noqa: E731
    wait(lambda: any(m["is_leader"] for m in members()), 30)
    leader = next(m["id"] for m in members() if m["is_leader"])
    victim_id = next(m["id"] for m in members() if m["id"] != leader)
    url = next(m["client_urls"][0] for m in members() if m["id"] == victim_id)
    victim = next(m for m in cluster.members if m.client_url == url)

    cluster.kill_member(victim)
    seconds = wait(lambda: any(t.member_id == victim_id for t in fired), 120)

    print(f"\nkill -> member_down firing with default settings: {seconds:.1f} s")
    assert [(t.rule, t.status) for t in fired] == [("member_down", "firing")]


@pytest.mark.system
@pytest.mark.django_db
def test_a_killed_member_reaches_a_webhook_with_default_settings(etcd_cluster_factory, api_client):
    """Kill -> the receiver holds member_down firing: the probe (5 s), the evaluation (15 s,
    member_down `for` 30 s) and the outbox delivery (5 s) run as the scheduler runs them, at
    their configured intervals, through the tasks themselves. Printed, not asserted (goal
    90 s; the etcd mixin's member-down alert needs 20 min)."""
    from notifications.tests.conftest import Receiver

    assert settings.PERIODIC_JOBS["probe-health"]["interval"] == 5
    assert settings.PERIODIC_JOBS["evaluate-alerts"]["interval"] == 15
    assert settings.PERIODIC_JOBS["deliver-notifications"]["interval"] == 5
    hook = Receiver().start()
    try:
        cluster = etcd_cluster_factory()
        response = api_client.post(
            "/api/alerts/channels",
            {"name": "oncall", "kind": "webhook", "config": {"url": f"{hook.url}/hook"}},
            format="json",
        )
        assert response.status_code == 201, response.content
        rule = api_client.get("/api/alerts/rules").json()["rules"]
        assert next(r for r in rule if r["id"] == "member_down")["for_seconds"] == 30
        jobs = (*JOBS, "evaluate-alerts", "deliver-notifications")
        due = dict.fromkeys(jobs, time.monotonic())

        def tick():
            for name in jobs:
                if time.monotonic() >= due[name]:
                    job = settings.PERIODIC_JOBS[name]
                    import_string(job["task"])()
                    due[name] += float(job["interval"])

        def wait(predicate, timeout):
            started = time.monotonic()
            while True:
                tick()
                if predicate():
                    return time.monotonic() - started
                assert time.monotonic() - started < timeout, "not seen in time"
                time.sleep(0.1)

        def received():
            return [
                (alert["status"], alert["labels"]["alertname"], alert["labels"]["member"])
                for body in hook.bodies("/hook")
                for alert in body["alerts"]
            ]

        members = lambda: api_client.get("/api/members").json()["members"]  # noqa: E731
        wait(lambda: any(m["is_leader"] for m in members()), 30)
        leader = next(m["id"] for m in members() if m["is_leader"])
        victim_id = next(m["id"] for m in members() if m["id"] != leader)
        url = next(m["client_urls"][0] for m in members() if m["id"] == victim_id)
        victim = next(m for m in cluster.members if m.client_url == url)

        cluster.kill_member(victim)
        seconds = wait(received, 180)

        print(f"\nkill -> webhook receives member_down with default settings: {seconds:.1f} s")
        assert received() == [("firing", "member_down", victim_id)]
    finally:
        hook.stop()
