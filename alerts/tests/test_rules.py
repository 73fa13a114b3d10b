"""Each rule on stored data: synthetic samples and health rows where etcd cannot produce the
condition on demand (fsync latency, a quota forecast, a HashKV mismatch), and the staleness
policy (old data never raises or promotes an alert)."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from alerts import services
from alerts.models import Alert, ConsistencyCheck
from alerts.rules import counter_increase, linear_fit
from monitoring import timeseries
from monitoring.models import Member, MonitoredCluster, Sample

GIB = 1024**3


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def cluster(db):
    """A 3-member `default` cluster whose latest probe round (just now) saw every member up."""
    now = _now()
    row = MonitoredCluster.objects.create(
        name="default",
        health="healthy",
        health_at=now,
        last_member_sync=now,
        health_summary={
            "health": "healthy",
            "members_total": 3,
            "members_up": 3,
            "quorum": 2,
            "quorum_margin": 1,
            "leader_id": "1",
            "alarms": [],
            "db_size_bytes": 1000,
            "db_quota_bytes": 2 * GIB,
            "db_quota_ratio": 1000 / (2 * GIB),
        },
    )
    for index in (1, 2, 3):
        Member.objects.create(
            cluster=row,
            member_id=str(index),
            name=f"m{index}",
            health="up",
            probed_at=now,
            etcd_version="3.4.23",
            collector_up=True,
        )
    return row


def _member(member_id: str) -> Member:
    return Member.objects.get(member_id=member_id)


def _sample(member_id: str, *, ago: float = 0, **values) -> None:
    ts = int(time.time() - ago)
    Sample.objects.update_or_create(
        member=_member(member_id),
        ts=ts,
        defaults={
            "vals": timeseries.to_array(
                {"collector_up": 1.0, **{k: float(v) for k, v in values.items()}}
            )
        },
    )


def _evaluate():
    return services.evaluate_cluster(cluster_id="default").transitions


def _active(rule: str) -> list[Alert]:
    return list(Alert.objects.filter(rule=rule, state__in=["pending", "firing"]))


def _set(monitor, rule: str, **changes) -> None:
    monitor.set_rule(rule, **changes)


@pytest.mark.parametrize(
    ("rule", "key", "slow", "fast"),
    [
        ("wal_fsync_slow", "etcd_disk_wal_fsync_duration_seconds_p99", 0.7, 0.01),
        ("backend_commit_slow", "etcd_disk_backend_commit_duration_seconds_p99", 0.3, 0.02),
        ("peer_rtt_slow", "etcd_network_peer_round_trip_time_seconds_p99", 0.2, 0.001),
        ("grpc_slow", "grpc_server_unary_handling_seconds_p99", 0.2, 0.005),
    ],
)
def test_a_slow_p99_fires_and_a_fast_one_resolves(cluster, monitor, rule, key, slow, fast):
    _set(monitor, rule, for_seconds=0)
    _sample("1", ago=40, **{key: fast})
    _sample("1", ago=2, **{key: slow})
    _sample("2", ago=2, **{key: fast})

    fired = _evaluate()
    _sample("1", ago=0, **{key: fast})
    resolved = _evaluate()

    assert [(t.rule, t.member_id, t.status, t.severity) for t in fired] == [
        (rule, "1", "firing", "warning")
    ]
    assert fired[0].values["p99_seconds"] == pytest.approx(slow, rel=1e-3)
    assert [(t.member_id, t.status) for t in resolved] == [("1", "resolved")]


def test_wal_fsync_above_one_second_rises_to_critical(cluster, monitor):
    _set(monitor, "wal_fsync_slow", for_seconds=0)
    _sample("1", ago=3, etcd_disk_wal_fsync_duration_seconds_p99=0.6)
    first = _evaluate()
    _sample("1", ago=1, etcd_disk_wal_fsync_duration_seconds_p99=1.5)
    second = _evaluate()

    assert [(t.severity, t.update) for t in first + second] == [
        ("warning", False),
        ("critical", True),
    ]
    assert Alert.objects.filter(rule="wal_fsync_slow").count() == 1


def test_a_sample_older_than_two_intervals_neither_raises_nor_resolves(cluster, monitor, settings):
    _set(monitor, "wal_fsync_slow", for_seconds=0)
    old = 2 * settings.COLLECTOR_INTERVAL + 10
    _sample("1", ago=old, etcd_disk_wal_fsync_duration_seconds_p99=5.0)
    assert _evaluate() == []

    _sample("1", ago=1, etcd_disk_wal_fsync_duration_seconds_p99=5.0)
    assert [t.status for t in _evaluate()] == ["firing"]
    Sample.objects.filter(member=_member("1")).delete()
    _sample("1", ago=old, etcd_disk_wal_fsync_duration_seconds_p99=0.01)
    assert _evaluate() == []
    assert _active("wal_fsync_slow")[0].state == "firing"


def test_a_failed_scrape_is_no_evidence(cluster, monitor):
    _set(monitor, "wal_fsync_slow", for_seconds=0)
    Sample.objects.create(
        member=_member("1"), ts=int(time.time()), vals=timeseries.to_array({"collector_up": 0.0})
    )
    assert _evaluate() == []


def test_stale_health_never_raises_member_down_and_drops_a_pending_one(cluster, monitor):
    _set(monitor, "member_down", for_seconds=60)
    Member.objects.filter(member_id="3").update(health="down", probe_error="refused")
    MonitoredCluster.objects.update(
        health_summary={**cluster.health_summary, "members_up": 2, "quorum_margin": 0}
    )
    assert _evaluate() == []
    assert _active("member_down")[0].state == "pending"

    old = _now() - timedelta(minutes=5)
    Member.objects.update(probed_at=old)
    MonitoredCluster.objects.update(health_at=old)
    assert _evaluate() == []
    assert _active("member_down") == []


def test_leader_changes_count_the_counters_rise_over_fifteen_minutes(cluster, monitor):
    for ago, value in ((800, 3), (600, 4), (400, 5), (200, 6), (1, 7)):
        _sample("1", ago=ago, etcd_server_leader_changes_seen_total=value)
    _sample("2", ago=1, etcd_server_leader_changes_seen_total=1)

    fired = _evaluate()

    assert [(t.rule, t.status, t.member_id) for t in fired] == [("leader_changes", "firing", None)]
    assert fired[0].values == {"changes": 4, "window_seconds": 900}


def test_failed_proposals_over_five_in_an_hour_fire_per_member(cluster, monitor):
    for ago, value in ((3000, 10), (1500, 13), (1, 16.0)):
        _sample("2", ago=ago, etcd_server_proposals_failed_total=value)
    _sample("1", ago=1, etcd_server_proposals_failed_total=100)

    fired = _evaluate()

    assert [(t.rule, t.member_id) for t in fired] == [("proposals_failed", "2")]
    assert fired[0].values["failed"] == 6


def test_a_restarted_counter_is_not_counted_as_a_rise():
    assert counter_increase([(0, 5.0), (10, 7.0), (20, 1.0), (30, 2.0)]) == 3.0


def test_failed_unary_requests_over_one_then_five_percent(cluster, monitor):
    _set(monitor, "grpc_failed_ratio", for_seconds=0)
    for ago, total, failed in ((250, 1000, 0), (120, 1500, 2), (1, 2000, 12)):
        _sample(
            "1",
            ago=ago,
            grpc_server_handled_unary_total=total,
            grpc_server_handled_unary_failed_total=failed,
        )
    # A quiet member: 1 failure of 10 requests proves nothing.
    _sample(
        "2", ago=100, grpc_server_handled_unary_total=0, grpc_server_handled_unary_failed_total=0
    )
    _sample(
        "2", ago=1, grpc_server_handled_unary_total=10, grpc_server_handled_unary_failed_total=1
    )
    warning = _evaluate()
    _sample(
        "1", ago=0, grpc_server_handled_unary_total=2100, grpc_server_handled_unary_failed_total=70
    )
    critical = _evaluate()

    assert [(t.member_id, t.severity) for t in warning] == [("1", "warning")]
    assert (warning[0].values["failed"], warning[0].values["requests"]) == (12, 1000)
    assert [(t.member_id, t.severity, t.update) for t in critical] == [("1", "critical", True)]


def test_fragmentation_needs_half_unused_and_a_quarter_of_the_quota(cluster, monitor):
    _set(monitor, "fragmentation", for_seconds=0)
    quota = 100 * 1024 * 1024
    size = {"etcd_mvcc_db_total_size_in_bytes": 40e6, "etcd_server_quota_backend_bytes": quota}
    _sample("1", ago=1, etcd_mvcc_db_total_size_in_use_in_bytes=10e6, **size)
    _sample("2", ago=1, etcd_mvcc_db_total_size_in_use_in_bytes=30e6, **size)
    # Mostly unused but a small file: the mixin's fixed floor would fire; the quota share not.
    _sample(
        "3",
        ago=1,
        etcd_mvcc_db_total_size_in_bytes=4e6,
        etcd_mvcc_db_total_size_in_use_in_bytes=1e6,
        etcd_server_quota_backend_bytes=quota,
    )

    fired = _evaluate()

    assert [(t.rule, t.member_id) for t in fired] == [("fragmentation", "1")]
    assert fired[0].values["in_use_ratio"] == 0.25


def test_a_db_growing_into_its_quota_within_four_hours_is_forecast(cluster, monitor):
    _set(monitor, "db_quota_forecast", for_seconds=0)
    quota = 2 * GIB
    # 0.2 GiB growing 0.25 GiB/h for 5 h: 1.45 GiB now, full in 2.2 h.
    for step in range(0, 5 * 3600 + 1, 300):
        ago = 5 * 3600 - step
        size = 0.2 * GIB + 0.25 * GIB * step / 3600
        _sample("1", ago=ago + 1, etcd_mvcc_db_total_size_in_bytes=size)
    _sample("1", ago=0, etcd_server_quota_backend_bytes=quota)

    fired = _evaluate()

    assert [(t.rule, t.status) for t in fired] == [("db_quota_forecast", "firing")]
    hours = fired[0].values["seconds_to_full"] / 3600
    assert 2.0 < hours < 2.4


def test_a_short_history_forecasts_nothing(cluster, monitor):
    _set(monitor, "db_quota_forecast", for_seconds=0)
    for ago in (600, 300, 1):
        _sample("1", ago=ago, etcd_mvcc_db_total_size_in_bytes=GIB * (2 - ago / 1000))
    _sample("1", ago=0, etcd_server_quota_backend_bytes=2 * GIB)

    assert _evaluate() == []


def test_linear_fit_finds_slope_and_current_value():
    slope, value = linear_fit([(0, 10.0), (10, 20.0), (20, 30.0)])
    assert (slope, value) == (pytest.approx(1.0), pytest.approx(30.0))


def test_db_at_95_percent_of_quota_is_critical(cluster, monitor):
    _set(monitor, "db_quota_high", for_seconds=0)
    MonitoredCluster.objects.update(
        health_summary={**cluster.health_summary, "db_size_bytes": 96, "db_quota_bytes": 100,
                        "db_quota_ratio": 0.96}
    )  # fmt: skip

    fired = _evaluate()

    assert [(t.rule, t.severity) for t in fired] == [("db_quota_high", "critical")]


def test_members_on_two_versions_are_version_skew(cluster, monitor):
    _set(monitor, "version_skew", for_seconds=0)
    Member.objects.filter(member_id="3").update(etcd_version="3.5.17")

    fired = _evaluate()
    Member.objects.filter(member_id="3").update(health="down")
    while_down = _evaluate()

    assert [(t.rule, t.severity) for t in fired] == [("version_skew", "info")]
    assert fired[0].values["versions"]["3"] == "3.5.17"
    assert while_down == []  # the others agree, but a down member proves nothing


def test_a_learner_not_promoted_fires_after_for_seconds(cluster, monitor):
    _set(monitor, "learner_stuck", for_seconds=0)
    Member.objects.filter(member_id="3").update(is_learner=True)

    fired = _evaluate()

    assert [(t.rule, t.member_id) for t in fired] == [("learner_stuck", "3")]


def test_a_learner_seen_for_the_default_hour_fires_in_its_first_evaluation(cluster):
    """The hour counts from when the monitor first saw the learner (Member.learner_since), not
    from the alert: an evaluator that was away (or an alert dropped by a data gap) does not
    wait another hour for a member etcd cannot have demoted and promoted meanwhile."""
    since = _now() - timedelta(minutes=61)
    Member.objects.filter(member_id="3").update(is_learner=True, learner_since=since)
    Member.objects.filter(member_id="2").update(
        is_learner=True, learner_since=_now() - timedelta(minutes=59)
    )

    [fired] = _evaluate()

    assert (fired.rule, fired.member_id, fired.status) == ("learner_stuck", "3", "firing")
    assert fired.values["learner_since"] == int(since.timestamp())
    assert fired.values["learner_seconds"] >= 61 * 60
    assert "m3 is not promoted after 1 h 1 min" in fired.summary
    young = Alert.objects.get(rule="learner_stuck", member_id="2")
    assert young.state == "pending" and young.pending_at < _now() - timedelta(minutes=58)


def test_a_recorded_hashkv_mismatch_fires_and_a_consistent_check_resolves(cluster):
    results = [
        {"member_id": "1", "hash": 1, "revision": 9, "compact_revision": 0},
        {"member_id": "2", "hash": 2, "revision": 9, "compact_revision": 0},
    ]
    ConsistencyCheck.objects.create(
        cluster_id="default", checked_at=_now(), revision=9, outcome="mismatch",
        detail="hashes 1=1, 2=2", results=results,
    )  # fmt: skip
    fired = _evaluate()
    ConsistencyCheck.objects.create(
        cluster_id="default", checked_at=_now(), revision=12, outcome="inconclusive"
    )
    kept = _evaluate()
    ConsistencyCheck.objects.create(
        cluster_id="default", checked_at=_now(), revision=15, outcome="consistent"
    )
    resolved = _evaluate()

    assert [(t.rule, t.severity, t.status) for t in fired] == [
        ("hashkv_mismatch", "critical", "firing")
    ]
    assert kept == []
    assert [t.status for t in resolved] == ["resolved"]


def _answer(member_id, hash_, revision=10, compact=5):
    return {
        "member_id": member_id,
        "hash": hash_,
        "revision": revision,
        "compact_revision": compact,
    }


@pytest.mark.parametrize(
    ("results", "outcome"),
    [
        ([_answer("1", 7), _answer("2", 7), _answer("3", 7)], "consistent"),
        ([_answer("1", 7), _answer("2", 8), _answer("3", 7)], "mismatch"),
        ([_answer("1", 7), _answer("2", 8), {"member_id": "3", "error": "x"}], "inconclusive"),
        ([_answer("1", 7), _answer("2", 8, compact=6), _answer("3", 7)], "inconclusive"),
        ([_answer("1", 7), _answer("2", 8, revision=11), _answer("3", 7)], "inconclusive"),
        ([_answer("1", 7), _answer("2", 8)], "inconclusive"),
    ],
)
def test_a_hashkv_verdict_proves_a_mismatch_only_from_a_complete_round(results, outcome):
    assert services.hashkv_verdict(results, 3)[0] == outcome


def test_a_disabled_rule_resolves_its_alerts_and_an_override_disables_per_cluster(cluster, monitor):
    _set(monitor, "learner_stuck", for_seconds=0)
    Member.objects.filter(member_id="3").update(is_learner=True)
    assert [t.status for t in _evaluate()] == ["firing"]

    _set(monitor, "learner_stuck", cluster_overrides={"default": {"enabled": False}})
    assert [t.status for t in _evaluate()] == ["resolved"]
    _set(monitor, "learner_stuck", cluster_overrides={"default": None})
    assert [t.status for t in _evaluate()] == ["firing"]


def test_a_member_that_left_the_cluster_resolves_its_alert(cluster, monitor):
    _set(monitor, "learner_stuck", for_seconds=0)
    Member.objects.filter(member_id="3").update(is_learner=True)
    _evaluate()
    Member.objects.filter(member_id="3").update(in_cluster=False)

    assert [(t.member_id, t.status) for t in _evaluate()] == [("3", "resolved")]


def test_history_older_than_the_retention_is_purged(cluster, monitor, settings):
    _set(monitor, "learner_stuck", for_seconds=0)
    Member.objects.filter(member_id="3").update(is_learner=True)
    _evaluate()
    Member.objects.filter(member_id="3").update(is_learner=False)
    _evaluate()
    settings.ALERT_RETENTION_DAYS = 30

    kept = services.alerts_purge(now=_now() + timedelta(days=29))
    purged = services.alerts_purge(now=_now() + timedelta(days=31))

    assert (kept, purged) == (0, 1)
    assert not Alert.objects.exists()


def test_every_rule_id_of_the_issue_is_listed(monitor):
    rules = {r["id"]: r for r in monitor.api.get("/api/alerts/rules").json()["rules"]}

    assert set(rules) == {
        "member_down", "insufficient_members", "no_leader", "leader_changes",
        "grpc_failed_ratio", "grpc_slow", "peer_rtt_slow", "proposals_failed",
        "wal_fsync_slow", "backend_commit_slow", "db_quota_high", "db_quota_forecast",
        "fragmentation", "alarm_active", "hashkv_mismatch", "version_skew", "learner_stuck",
    }  # fmt: skip
    assert all(r["runbook_url"].startswith("https://") for r in rules.values())
    assert all(r["implemented"] for r in rules.values())
    assert rules["wal_fsync_slow"]["thresholds"] == {
        "warning_p99_seconds": 0.5,
        "critical_p99_seconds": 1.0,
    }
