"""Our own /metrics: who may read it, and that it counts what the database holds."""

from datetime import UTC, datetime

import pytest

from alerts.models import Alert, ClusterEvaluation
from monitoring.models import Member, MonitoredCluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(db):
    now = datetime.now(UTC)
    cluster = MonitoredCluster.objects.create(name="default", last_cycle_at=now)
    Member.objects.create(
        cluster=cluster, member_id="7", name="m1", sample_count=42, collector_up=True, health="up"
    )
    Member.objects.create(
        cluster=cluster,
        member_id="8",
        name="m2",
        sample_count=40,
        collector_up=False,
        last_scrape_error="refused",
        health="down",
    )
    ClusterEvaluation.objects.create(cluster_id="default", evaluated_at=now, evaluations=9)
    for member_id, state in (("8", "firing"), ("7", "pending")):
        Alert.objects.create(
            rule="member_down", cluster_id="default", member_id=member_id, fingerprint="f",
            severity="warning", state=state, summary="s", pending_at=now, updated_at=now,
        )  # fmt: skip


def test_loopback_reads_the_watchers_own_metrics(client, stored):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = response.content.decode().splitlines()
    assert 'etcdmonitor_collector_samples_total{cluster="default",member="7",name="m1"} 42' in lines
    assert 'etcdmonitor_collector_scrape_up{cluster="default",member="8",name="m2"} 0' in lines
    assert 'etcdmonitor_alert_evaluations_total{cluster="default"} 9' in lines
    assert 'etcdmonitor_alerts{state="firing",severity="warning"} 1' in lines
    assert 'etcdmonitor_alerts{state="pending",severity="warning"} 1' in lines
    assert 'etcdmonitor_alerts{state="firing",severity="critical"} 0' in lines


def test_other_addresses_are_refused_without_a_token(client, stored):
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1")

    assert response.status_code == 403
    assert response.json() == {"error": "metrics restricted to localhost"}


def test_with_a_token_only_the_token_reads_them(client, stored, settings):
    settings.METRICS_TOKEN = "scrape-secret"

    wrong = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer nope")
    right = client.get(
        "/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer scrape-secret"
    )

    assert wrong.status_code == 401 and wrong.json() == {"error": "not authenticated"}
    assert right.status_code == 200 and b"etcdmonitor_alerts" in right.content
