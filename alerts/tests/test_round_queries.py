"""One evaluation round over the fleet (PostgreSQL) reads each kind of row once for every
cluster, on real clusters' collected data, with the per-cluster guarantees of the engine:
a cluster another evaluator holds is skipped, and a cluster whose writes fail loses only its
own round."""

import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import selectors, services
from alerts.models import Alert, AlertRule, AlertState, ClusterEvaluation, alert_fingerprint
from alerts.rules import counter_increase
from clusters.models import Cluster
from monitoring import services as monitoring_services
from monitoring import timeseries
from monitoring.models import Sample

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the batched round is PostgreSQL's"
)


def _records(etcd_cluster, count: int, first: int = 0) -> list[str]:
    """`count` monitored records of the session's real cluster besides the default, each
    collected twice and probed (samples, series and health to evaluate)."""
    now = timezone.now()
    ids = ["default"]
    for index in range(first, first + count):
        record = Cluster.objects.create(
            name=f"fleet-{index}",
            endpoints=etcd_cluster.client_urls,
            monitored=True,
            created_at=now,
            updated_at=now,
        )
        ids.append(record.pk)
    for _ in range(2):
        for cluster_id in ids:
            monitoring_services.collect_cluster_id(cluster_id=cluster_id)
    for cluster_id in ids:
        monitoring_services.health_probe_id(cluster_id=cluster_id)
    return ids


def _round_queries() -> tuple[int, list]:
    """Queries of a steady round (the first one makes each cluster's evaluation row)."""
    services.evaluate_all()
    with CaptureQueriesContext(connection) as queries:
        reports = services.evaluate_all()
    return len(queries), reports


@pytest.mark.django_db
def test_a_round_reads_each_kind_of_row_once_for_the_whole_fleet(etcd_cluster):
    ids = _records(etcd_cluster, 2)
    few, reports = _round_queries()
    assert [r.cluster_id for r in reports] == ids
    assert not any(r.skipped or r.transitions for r in reports)

    ids += _records(etcd_cluster, 4, first=2)[1:]
    many, reports = _round_queries()
    assert [r.cluster_id for r in reports] == ids
    assert not any(r.skipped or r.transitions for r in reports)
    # Three clusters or seven: the same statements (the old engine ran ~10 per cluster).
    assert many == few


def _fire_everywhere() -> None:
    """leader_changes with a threshold every cluster crosses, firing at once."""
    services.rules_ensure()
    AlertRule.objects.filter(id="leader_changes").update(thresholds={"changes": 0}, for_seconds=0)


@pytest.mark.django_db(transaction=True)
def test_a_cluster_another_evaluator_holds_is_skipped_and_the_others_evaluated(etcd_cluster):
    ids = _records(etcd_cluster, 2)
    services.evaluate_all()  # every cluster has its evaluation row
    _fire_everywhere()
    held = ids[1]
    locked, release = threading.Event(), threading.Event()

    def other_evaluator():
        try:
            with transaction.atomic():
                ClusterEvaluation.objects.select_for_update().get(cluster_id=held)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=other_evaluator)
    thread.start()
    try:
        assert locked.wait(30)
        reports = {r.cluster_id: r for r in services.evaluate_all()}
    finally:
        release.set()
        thread.join()

    assert reports[held].skipped and not reports[held].transitions
    for cluster_id in ids:
        if cluster_id != held:
            assert [(t.rule, t.status) for t in reports[cluster_id].transitions] == [
                ("leader_changes", "firing")
            ]
    assert not Alert.objects.filter(cluster_id=held).exists()
    # The skipped cluster's turn comes at the next round, once, from what is stored.
    again = {r.cluster_id: r for r in services.evaluate_all()}
    assert [(t.rule, t.status) for t in again[held].transitions] == [("leader_changes", "firing")]
    assert not any(again[cid].transitions for cid in ids if cid != held)


@pytest.mark.django_db(transaction=True)
def test_a_cluster_whose_writes_fail_loses_only_its_own_round(etcd_cluster, monkeypatch):
    ids = _records(etcd_cluster, 2)
    services.evaluate_all()
    _fire_everywhere()
    broken = ids[2]
    # An active alert the round does not see (as if written by an evaluator that bypassed the
    # lock): opening it again breaks the one-active-alert constraint.
    now = timezone.now()
    Alert.objects.create(
        rule="leader_changes",
        cluster_id=broken,
        member_id=None,
        fingerprint=alert_fingerprint("leader_changes", broken, None),
        severity="warning",
        state=AlertState.PENDING,
        values={},
        summary="written behind the lock",
        pending_at=now,
        updated_at=now,
    )
    reads = selectors.RoundReads.__init__

    def blind(self, **kwargs):
        reads(self, **kwargs)
        self.active[broken] = []

    monkeypatch.setattr(selectors.RoundReads, "__init__", blind)
    before = {e.cluster_id: e.evaluations for e in ClusterEvaluation.objects.all()}

    reports = {r.cluster_id: r for r in services.evaluate_all()}

    assert reports[broken].skipped and not reports[broken].transitions
    assert list(Alert.objects.filter(cluster_id=broken).values_list("summary", flat=True)) == [
        "written behind the lock"
    ]
    after = {e.cluster_id: e.evaluations for e in ClusterEvaluation.objects.all()}
    assert after[broken] == before[broken]
    for cluster_id in ids:
        if cluster_id == broken:
            continue
        assert [(t.rule, t.status) for t in reports[cluster_id].transitions] == [
            ("leader_changes", "firing")
        ]
        assert Alert.objects.get(cluster_id=cluster_id).state == AlertState.FIRING
        assert after[cluster_id] == before[cluster_id] + 1


def _decisions(transitions) -> list[tuple]:
    return [(t.rule, t.member_id, t.status, t.severity, t.values) for t in transitions]


@pytest.mark.django_db
def test_the_batched_round_decides_what_each_cluster_alone_decides(etcd_cluster):
    ids = _records(etcd_cluster, 3)
    services.rules_ensure()
    # Rules every healthy cluster crosses (series, samples and the probe's quotas), one of
    # them switched off for one cluster by an override.
    AlertRule.objects.filter(id="leader_changes").update(
        thresholds={"changes": 0},
        for_seconds=0,
        cluster_overrides={ids[1]: {"enabled": False}},
    )
    AlertRule.objects.filter(id="db_quota_high").update(thresholds={"ratio": 0.0}, for_seconds=0)
    AlertRule.objects.filter(id="proposals_failed").update(thresholds={"failures": -1})
    now = timezone.now()

    # Each cluster with its own reads (the per-cluster path SQLite keeps), then undone.
    inputs = services._round_inputs(now)
    alone = {}
    savepoint = transaction.savepoint()
    for cluster_id in ids:
        alone[cluster_id] = _decisions(services._evaluate(cluster_id, inputs).transitions)
    transaction.savepoint_rollback(savepoint)

    batched = {r.cluster_id: _decisions(r.transitions) for r in services.evaluate_all(now=now)}
    assert batched == alone
    for decisions in batched.values():
        rules = {d[0] for d in decisions}
        assert {"db_quota_high", "proposals_failed"} <= rules, decisions
    assert not any(d[0] == "leader_changes" for d in batched[ids[1]])
    assert any(d[0] == "leader_changes" for d in batched[ids[0]])


@pytest.mark.django_db
def test_a_rounds_counter_increase_is_what_its_series_points_sum_to(etcd_cluster):
    """A round has PostgreSQL sum a counter's rises (one row per member, not every point):
    the number `counter_increase` makes of the series, across gaps, a drop (a restart) and
    fractions, for every member read ahead."""
    ids = _records(etcd_cluster, 1)
    name = "etcd_server_leader_changes_seen_total"
    slot = timeseries.slots_for([name])[name]
    now = timezone.now()
    end = int(now.timestamp())
    reads = selectors.RoundReads(cluster_ids=ids, inputs=services._round_inputs(now))
    rows = [row for cluster_id in ids for row in reads.members[cluster_id]]
    assert len(rows) >= 2
    member = rows[0]
    for index, value in enumerate([3.0, None, 4.5, 7.0, 2.0, 2.0, None, 5.25]):
        vals = [None] * slot
        vals[slot - 1] = value
        Sample.objects.create(member_id=member.pk, ts=end - 800 + 10 * index, vals=vals)

    for row in rows:
        points = reads.series(row, name, 900, None)
        assert reads.increase(row, name, 900) == counter_increase(points)
    assert reads.increase(member, name, 900) >= 1.5 + 2.5 + 3.25
    assert reads.increase(member, name, 5) == counter_increase(reads.series(member, name, 5, None))
