"""Fixtures of the alerts tests: the monitoring jobs driven by hand, and rule settings made
fast through the API."""

import time

import pytest
from django.contrib.auth import get_user_model

from alerts import services
from monitoring import services as monitoring_services
from monitoring import timeseries


@pytest.fixture(autouse=True)
def _fresh_slot_cache():
    """Metric slots remembered from another test's (flushed) database must not be reused."""
    timeseries._slots.clear()
    yield
    timeseries._slots.clear()


class Monitor:
    """The collector, the health probe and the evaluation, run when a test says so."""

    def __init__(self, api_client):
        self.api = api_client
        self.transitions = []

    def collect(self):
        monitoring_services.collect_cluster()

    def probe(self):
        monitoring_services.health_probe()

    def evaluate(self):
        report = services.evaluate_cluster(cluster_id="default")
        self.transitions.extend(report.transitions)
        return report.transitions

    def round(self):
        """A health probe then an evaluation (what the two periodic jobs do)."""
        self.probe()
        return self.evaluate()

    def until(self, predicate, *, timeout: float = 20.0, what: str = "the condition"):
        """Probe and evaluate until `predicate()` holds; returns the seconds it took."""
        started = time.monotonic()
        while True:
            self.round()
            if predicate():
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{what} not seen within {timeout:.0f} s")
            time.sleep(0.3)

    def alerts(self, **query) -> list[dict]:
        response = self.api.get("/api/alerts", query)
        assert response.status_code == 200, response.content
        return response.json()["alerts"]

    def alert(self, rule: str, member_id=None, state=None) -> dict | None:
        for alert in self.alerts():
            if alert["rule"] != rule or (member_id is not None and alert["member_id"] != member_id):
                continue
            if state is None or alert["state"] == state:
                return alert
        return None

    def set_rule(self, rule: str, **changes) -> dict:
        response = self.api.patch(f"/api/alerts/rules/{rule}", changes, format="json")
        assert response.status_code == 200, response.content
        return response.json()["rule"]


@pytest.fixture
def monitor(api_client, db):
    return Monitor(api_client)


@pytest.fixture
def viewer_client(db, bearer_client):
    """An API client signed in as a plain (non-staff) user."""
    user = get_user_model().objects.create_user(username="viewer", password="pw-123456789")
    return bearer_client(user)


def member_ids(cluster_api_members) -> dict[str, str]:
    """{client URL: member id} from /api/members."""
    return {m["client_urls"][0]: m["id"] for m in cluster_api_members}
