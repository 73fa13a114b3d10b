"""The dashboard data API: /api/members, /api/current, /api/range, /api/status, /api/debug."""

import json
import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from monitoring import services, timeseries
from monitoring.api.range import go_duration_seconds, range_seconds
from monitoring.models import Member, MonitoredCluster, Sample

pytestmark = pytest.mark.usefixtures("fresh_slot_cache")

PATHS = ["/api/members", "/api/current", "/api/range?metrics=x&range=1h", "/api/status"]


@pytest.fixture
def collected(etcd_cluster, db):
    """Two real collection cycles of the session cluster."""
    services.collect_cluster()
    time.sleep(1.1)
    services.collect_cluster()
    return Member.objects.get(is_default=True)


@pytest.mark.parametrize("path", [*PATHS, "/api/debug"])
def test_every_endpoint_needs_authentication(db, path):
    response = APIClient().get(path)

    assert response.status_code == 401
    assert "error" in response.json()


@pytest.mark.parametrize("path", ["/api/members", "/api/current", "/api/range?metrics=x"])
def test_data_endpoints_answer_503_before_the_cluster_was_ever_reached(api, path):
    response = api.get(path)

    assert response.status_code == 503
    assert response.json()["error"].startswith("etcd unavailable")


def test_members_lists_decimal_ids_leader_and_default(api, collected):
    body = api.get("/api/members").json()

    assert len(body["members"]) == 3
    assert body["default_member_id"] == collected.member_id
    assert [m["is_leader"] for m in body["members"]].count(True) == 1
    first = body["members"][0]
    # The reference's fields, plus the health fields added by issue 17.
    assert set(first) == {
        "id",
        "name",
        "client_urls",
        "peer_urls",
        "endpoint",
        "is_default",
        "is_leader",
        "health",
        "last_seen",
        "error",
        "etcd_version",
        "is_learner",
    }
    assert first["id"].isdigit() and first["endpoint"] == first["client_urls"][0]


def test_current_serves_the_stored_snapshot_of_the_chosen_member(api, collected):
    other = Member.objects.exclude(pk=collected.pk).first()

    default = api.get("/api/current").json()
    chosen = api.get(f"/api/current?member_id={other.member_id}").json()

    assert default["member_id"] == collected.member_id
    assert default["metrics"]["collector_up"] == 1
    assert isinstance(default["metrics"]["raft_index"], int)
    assert chosen["member_id"] == other.member_id
    assert chosen["metrics"]["etcd_server_is_leader"] == (1 if other.is_leader else 0)
    assert default["grpc_methods"][0]["method"]


def test_current_is_reused_for_current_cache_seconds_and_renewed_by_a_cycle(
    api, collected, settings
):
    settings.CURRENT_CACHE_SECONDS = 60
    first = api.get("/api/current").json()
    Member.objects.filter(pk=collected.pk).update(latest={"collector_up": 0, "marker": 7})

    reused = api.get("/api/current").json()  # within the TTL, from this process's cache
    settings.CURRENT_CACHE_SECONDS = 0.000_001
    fresh = api.get("/api/current").json()
    settings.CURRENT_CACHE_SECONDS = 60
    services.collect_cluster()  # a cycle in this process drops the cached answers
    after_cycle = api.get("/api/current").json()

    assert reused["metrics"] == first["metrics"]
    assert fresh["metrics"] == {"collector_up": 0, "marker": 7}
    assert after_cycle["metrics"]["collector_up"] == 1


def test_current_of_an_unknown_member_is_404(api, collected):
    response = api.get("/api/current?member_id=12345")

    assert response.status_code == 404
    assert response.json() == {"error": "member not found"}


def test_range_returns_raw_points_for_short_windows(api, collected):
    body = api.get("/api/range?metrics=collector_up, go_goroutines,,nosuch&range=10m").json()

    assert body["member_id"] == collected.member_id
    assert set(body["metrics"]) == {"collector_up", "go_goroutines"}
    points = body["metrics"]["collector_up"]
    assert len(points) == 2 and points[0]["ts"] < points[1]["ts"]
    assert points[-1] == {"ts": Sample.objects.filter(member=collected).latest("ts").ts, "value": 1}
    assert body["end"] - body["start"] == 600 + 30


def test_range_window_uses_the_collector_interval_as_buffer(api, collected, settings):
    settings.COLLECTOR_INTERVAL = 10
    before = int(time.time())

    body = api.get("/api/range?metrics=collector_up&range=1.5h").json()

    assert before + 10 <= body["end"] <= int(time.time()) + 10
    assert body["end"] - body["start"] == 5400 + 10


def test_range_with_start_and_end_is_verbatim_and_may_be_empty(api, collected):
    now = int(time.time())

    body = api.get(f"/api/range?metrics=collector_up&start={now}&end={now - 100}").json()

    assert (body["start"], body["end"]) == (now, now - 100)
    assert body["metrics"] == {}


def test_range_with_only_empty_names_has_null_metrics(api, collected):
    assert api.get("/api/range?metrics=,%20,").json()["metrics"] is None


def _bulk_history(member, *, seconds, step, slot_names):
    slots = timeseries.slots_for(slot_names, create=True)
    width = max(slots.values())
    now = int(time.time()) // 600 * 600
    rows = []
    for ts in range(now - seconds, now, step):
        vals = [None] * width
        vals[slots["go_goroutines"] - 1] = float(ts % 1200)
        rows.append(Sample(member=member, ts=ts, vals=vals))
    Sample.objects.bulk_create(rows, ignore_conflicts=True)
    return now


def test_range_downsamples_by_span_with_bucket_averages(api, collected):
    now = _bulk_history(collected, seconds=8 * 86400, step=300, slot_names=["go_goroutines"])
    cluster = MonitoredCluster.objects.get()
    cluster.rollup_state = {}  # the history was inserted behind the collector's rollups
    services.rollups_refresh(cluster=cluster)

    hour = api.get("/api/range?metrics=go_goroutines&range=1h").json()["metrics"]["go_goroutines"]
    week = api.get("/api/range?metrics=go_goroutines&range=7d").json()["metrics"]["go_goroutines"]
    day = api.get(f"/api/range?metrics=go_goroutines&start={now - 86400}&end={now - 1}").json()[
        "metrics"
    ]["go_goroutines"]

    assert all(p["ts"] % 30 == 0 for p in hour)
    assert all(p["ts"] % 600 == 0 for p in week) and 1000 <= len(week) <= 1010
    # a 600 s bucket holds the samples at +0 and +300, whose values are ts % 1200
    sample_bucket = next(p for p in week if p["ts"] % 1200 == 0 and p["ts"] < now - 3600)
    assert sample_bucket["value"] == pytest.approx(150.0)
    assert all(p["ts"] % 300 == 0 for p in day) and len(day) == 288


def test_range_json_from_the_database_matches_the_row_by_row_series(api, collected):
    """The PostgreSQL-built JSON (string_agg) against the Python reading of the same rows."""
    from monitoring import selectors

    names = ["go_goroutines", "process_open_fds", "collector_up", "never_stored_name"]
    slots = timeseries.slots_for(names[:3], create=True)
    width = max(slots.values())
    now = int(time.time()) // 600 * 600
    rows = []
    for ts in range(now - 3 * 86400, now - 600, 30):
        vals = [None] * width
        vals[slots["go_goroutines"] - 1] = float(ts % 977) + 0.25
        if ts % 90:  # gaps: this series is missing from every third row
            vals[slots["process_open_fds"] - 1] = 1e9 + ts % 7
        rows.append(Sample(member=collected, ts=ts, vals=vals))
    Sample.objects.bulk_create(rows, ignore_conflicts=True)
    cluster = MonitoredCluster.objects.get()
    cluster.rollup_state = {}
    services.rollups_refresh(cluster=cluster)
    collected.refresh_from_db()

    tiers = ((1200, None), (3600, 30), (12 * 3600, 120), (86400, 300), (3 * 86400, 600))
    for span, bucket in tiers:
        window = dict(member=collected, names=names, start=now - span, end=now, bucket=bucket)
        expected = selectors.metric_series(**window)
        got = json.loads(selectors.metric_series_json(**window))
        assert got.keys() == expected.keys() and "never_stored_name" not in got
        for name, points in expected.items():
            assert [p["ts"] for p in got[name]] == [p["ts"] for p in points], (name, bucket)
            assert [p["value"] for p in got[name]] == pytest.approx(
                [p["value"] for p in points], rel=1e-6
            )
    body = api.get("/api/range?metrics=go_goroutines,process_open_fds&range=3d").json()
    assert set(body) == {"start", "end", "member_id", "metrics", "not_exported"}
    assert body["not_exported"] == {}
    assert body["member_id"] == collected.member_id
    assert len(body["metrics"]["go_goroutines"]) >= 400


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("range=1h", "metrics parameter required"),
        ("metrics=&range=1h", "metrics parameter required"),
        ("metrics=a&range=1h30m", "invalid range parameter"),
        ("metrics=a&range=2w", "invalid range parameter"),
        ("metrics=a&range=abc", "invalid range parameter"),
        ("metrics=a&range=nanm", "invalid range parameter"),
        ("metrics=a&range=90.01d", "requested range too large (max 90 days)"),
        ("metrics=a&range=2161h", "requested range too large (max 90 days)"),
        ("metrics=a&start=0&end=7776001", "requested range too large (max 90 days)"),
        ("metrics=a&start=1.5&end=10", "invalid start parameter"),
        ("metrics=a&start=10&end=x", "invalid end parameter"),
        ("metrics=a&start=0&end=100", "end time too far in past"),
    ],
)
def test_range_rejects_bad_input_with_the_reference_messages(api, collected, query, message):
    response = api.get(f"/api/range?{query}")

    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_range_rejects_a_start_far_in_the_future(api, collected):
    now = int(time.time())

    response = api.get(f"/api/range?metrics=a&start={now + 2 * 86400}&end={now + 3 * 86400}")

    assert response.status_code == 400
    assert response.json() == {"error": "start time cannot be in far future"}


def test_range_accepts_the_documented_maximum_of_90_days(api, collected, settings):
    """The collector-interval buffer is the server's own margin, not part of the user's range
    (the reference refused its own maximum, `range=90d`)."""
    settings.COLLECTOR_INTERVAL = 30
    for value in ("90d", "2160h", "129600m"):
        response = api.get(f"/api/range?metrics=collector_up&range={value}")
        assert response.status_code == 200, (value, response.json())
        body = response.json()
        assert body["end"] - body["start"] == 90 * 86400 + 30

    now = int(time.time())
    exact = api.get(f"/api/range?metrics=collector_up&start={now - 90 * 86400}&end={now}")
    assert exact.status_code == 200


def test_range_accepts_go_durations_fractions_and_negative_ranges(api, collected):
    for value in ("30s", "500ms", "0.5d", "-1h", "2h"):
        assert api.get(f"/api/range?metrics=collector_up&range={value}").status_code == 200
    assert api.get("/api/range?metrics=collector_up&range=-1h").json()["metrics"] == {}


def test_range_parsing_matches_the_reference_rules():
    assert range_seconds("1.5h") == 5400
    assert range_seconds("0.5d") == 43200
    assert range_seconds("30s") == 30
    assert go_duration_seconds("1h30m") == 5400
    assert go_duration_seconds("500ms") == 0.5
    for bad in ("1h30m", "", "h", "1 h", "1_0m", "infm"):
        with pytest.raises(ValueError):
            range_seconds(bad)


def test_status_reads_storage_and_reports_the_default_member(
    api, collected, settings, etcd_server_version
):
    body = api.get("/api/status").json()

    assert body["status"] == "running"
    assert body["collector_up"] is True
    assert body["etcd_version"] == etcd_server_version
    assert body["member_count"] == 3 and body["default_member_id"] == collected.member_id
    assert body["etcd_endpoint"] == ",".join(settings.ETCD_ENDPOINTS)
    assert body["collect_interval"] == settings.COLLECTOR_INTERVAL


def test_status_shows_collector_down_when_the_default_member_failed(api, collected):
    Member.objects.filter(pk=collected.pk).update(collector_up=False)

    assert api.get("/api/status").json()["collector_up"] is False


def test_status_before_any_collection_is_still_200(api):
    body = api.get("/api/status").json()

    assert body["collector_up"] is False and body["members"] == []


def test_debug_counts_samples_per_member_for_loopback_clients(api, collected):
    body = api.get("/api/debug").json()

    assert body["db_member_ids"] == {
        m.member_id: Sample.objects.filter(member=m).count() for m in Member.objects.all()
    }
    assert len(body["collector_members"]) == 3


def test_debug_ignores_x_forwarded_for_from_remote_clients(api, collected):
    response = api.get("/api/debug", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1")

    assert response.status_code == 403
    assert response.json() == {"error": "debug endpoint restricted to localhost"}


def test_debug_is_open_to_staff_from_anywhere(collected):
    staff = get_user_model().objects.create_user(username="ops", password="x", is_staff=True)
    client = APIClient()
    client.force_authenticate(user=staff)

    assert client.get("/api/debug", REMOTE_ADDR="203.0.113.9").status_code == 200
