"""GET/PUT /api/user/panel-config and the one panel registry (monitoring/panels.py)."""

import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from monitoring.models import PanelConfig
from monitoring.panels import CARDS, MAX_VISIBLE_CARDS, PANELS, SECTIONS, default_panel_config

pytestmark = pytest.mark.django_db

URL = "/api/user/panel-config"


def test_registry_has_the_27_panels_and_11_cards_of_the_reference():
    assert len(PANELS) == 27 and len({p.id for p in PANELS}) == 27
    assert len(CARDS) == 11
    assert {p.section for p in PANELS} == {key for key, _ in SECTIONS}
    hidden = {p.id for p in PANELS if not p.default_visible}
    assert hidden == {
        "chartServerHealth",
        "chartSnapshotDefrag",
        "chartBackendBreakdown",
        "chartWatcherEvents",
        "chartLeaseActivity",
        "chartActivePeersGRPC",
    }
    assert [p.default_order for p in PANELS] == list(range(27))
    assert sum(c.default_visible for c in CARDS) == MAX_VISIBLE_CARDS == 7


def test_get_without_saved_config_returns_defaults(api_client):
    response = api_client.get(URL)

    assert response.status_code == 200
    assert response.json() == default_panel_config()


def test_put_then_get_round_trips_per_user(api_client, auth_header):
    panels = [{"id": "chartCPU", "visible": False, "order": 0}]
    cards = [{"id": "cardRevision", "visible": True, "order": 0}]

    saved = api_client.put(URL, {"panels": panels, "cards": cards}, format="json")

    assert saved.status_code == 200 and saved.json() == {"message": "ok"}
    body = api_client.get(URL).json()
    assert body["panels"][0] == {"id": "chartCPU", "visible": False, "order": 0}
    assert len(body["panels"]) == 27 and len(body["cards"]) == 11
    assert body["cards"][0] == {"id": "cardRevision", "visible": True, "order": 0}
    bob = get_user_model().objects.create_user(username="bob", password="correct-horse-1")
    other = APIClient().get(URL, **auth_header(bob)).json()
    assert other == default_panel_config()


def test_unknown_and_duplicate_ids_are_dropped_and_missing_appended(api_client):
    panels = [
        {"id": "chartGC", "visible": True, "order": 0},
        {"id": "nope", "visible": True, "order": 1},
        {"id": "chartGC", "visible": False, "order": 2},
    ]

    api_client.put(URL, {"panels": panels}, format="json")

    stored = PanelConfig.objects.get().panels
    assert [p["id"] for p in stored].count("chartGC") == 1 and "nope" not in str(stored)
    body = api_client.get(URL).json()
    assert body["panels"][0] == {"id": "chartGC", "visible": True, "order": 0}
    assert [p["order"] for p in body["panels"]] == list(range(27))
    leases = next(p for p in body["panels"] if p["id"] == "chartLeaseActivity")
    assert leases["visible"] is False  # appended with its registry default


def test_eight_visible_cards_are_refused_and_nothing_is_stored(api_client):
    cards = [{"id": c.id, "visible": True, "order": i} for i, c in enumerate(CARDS[:8])]

    response = api_client.put(URL, {"panels": [], "cards": cards}, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": "too many visible cards", "max": 7}
    assert not PanelConfig.objects.exists()


def test_seven_visible_cards_are_accepted(api_client):
    cards = [{"id": c.id, "visible": i < 7, "order": i} for i, c in enumerate(CARDS)]

    assert api_client.put(URL, {"cards": cards}, format="json").status_code == 200
    assert sum(c["visible"] for c in api_client.get(URL).json()["cards"]) == 7


def test_merge_never_exceeds_seven_visible_cards(api_client):
    # Seven non-default cards visible; the default-visible ones are then appended hidden.
    chosen = [c.id for c in CARDS[4:]]
    cards = [{"id": card_id, "visible": True, "order": i} for i, card_id in enumerate(chosen)]

    api_client.put(URL, {"cards": cards}, format="json")

    body = api_client.get(URL).json()
    assert sum(c["visible"] for c in body["cards"]) == 7
    assert {c["id"] for c in body["cards"] if c["visible"]} == set(chosen)


def test_legacy_config_without_cards_gets_default_cards(api_client, admin_user):
    PanelConfig.objects.create(user=admin_user, panels=[{"id": "chartCPU", "visible": True}])

    body = api_client.get(URL).json()

    assert body["cards"] == default_panel_config()["cards"]
    assert body["panels"][0]["id"] == "chartCPU"


def test_body_over_64_kib_is_invalid_json(api_client):
    padding = [{"id": f"x{i:06d}", "visible": True, "order": i} for i in range(2000)]
    body = json.dumps({"panels": padding})
    assert len(body) > 64 * 1024

    response = api_client.put(URL, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"error": "invalid JSON"}


@pytest.mark.parametrize(
    "body", ["{broken", "[]", '{"panels": "all"}', '{"panels": [{"id": "chartCPU"}]}']
)
def test_malformed_body_is_invalid_json(api_client, body):
    response = api_client.put(URL, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"error": "invalid JSON"}
