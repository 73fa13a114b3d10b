"""Many clusters monitored from one deployment (issue 19): each monitored cluster record is
collected and probed on its own, through its own gateway, with its own members and series;
`cluster_id` on every monitoring route; `/api/fleet`; a dead cluster never holds up the others.

Real etcd clusters (the session's as `default`, private ones as records) and PostgreSQL."""

import re
import time
from concurrent.futures import Future, wait
from datetime import UTC, datetime

import pytest

from alerts import selectors as alert_selectors
from alerts import services as alert_services
from clusters.connection import cluster_gateway
from clusters.models import Cluster
from clusters.tests.conftest import add_tab
from etcdgateway import ClusterConfig
from etcdgateway import cluster_gateway as settings_gateway
from monitoring import services
from monitoring.models import Member, MonitoredCluster, Sample

MONITOR_ROUTES = ["/api/members", "/api/current", "/api/range", "/api/status", "/api/debug"]


SAMPLE_INSERT = re.compile(r'INSERT INTO "?monitoring_sample"? ')


def add_cluster(client, url: str, **fields) -> str:
    response = client.post(
        "/api/clusters", {"endpoints": url, "monitored": True, **fields}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def member_ids(url: str) -> set[str]:
    return {m.id_str for m in settings_gateway(ClusterConfig(endpoints=(url,))).members()}


def fleet(client) -> dict[str, dict]:
    response = client.get("/api/fleet")
    assert response.status_code == 200, response.json()
    return {entry["id"]: entry for entry in response.json()["clusters"]}


def finish(runs: dict, timeout: float = 60) -> None:
    """Wait for runs started on the fleet pool (none may outlive the test's database)."""
    done, pending = wait(runs.values(), timeout=timeout)
    assert not pending, f"runs still going after {timeout} s: {pending}"
    for future in done:
        future.result()


@pytest.fixture
def second(etcd_cluster_factory):
    """A one-member cluster of its own, not the configured one."""
    return etcd_cluster_factory(size=1, point_settings=False)


@pytest.mark.django_db
def test_two_clusters_are_monitored_side_by_side_with_their_own_members_and_series(
    etcd_cluster, second, api_client
):
    url = second.client_urls[0]
    record = add_cluster(api_client, url, name="staging-1", labels={"environment": "staging"})

    default_report = services.collect_cluster_id(cluster_id="default")
    record_report = services.collect_cluster_id(cluster_id=record)
    services.health_probe_id(cluster_id="default")
    services.health_probe_id(cluster_id=record)

    assert {m["member_id"] for m in record_report.members} == member_ids(url)
    assert {m["member_id"] for m in default_report.members} == member_ids(
        etcd_cluster.client_urls[0]
    )
    assert all(m["up"] for m in record_report.members + default_report.members)
    row = MonitoredCluster.objects.get(name=record)
    assert set(row.members.values_list("member_id", flat=True)) == member_ids(url)
    assert Sample.objects.filter(member__cluster=row).count() == 1
    assert Sample.objects.filter(member__cluster__name="default").count() == 3

    named = api_client.get("/api/members", {"cluster_id": record}).json()
    plain = api_client.get("/api/members").json()
    explicit = api_client.get("/api/members", {"cluster_id": "default"}).json()
    current = api_client.get("/api/current", {"cluster_id": record}).json()
    status = api_client.get("/api/status", {"cluster_id": record}).json()
    assert {m["id"] for m in named["members"]} == member_ids(url)
    assert {m["id"] for m in plain["members"]} == member_ids(etcd_cluster.client_urls[0])
    assert [m["id"] for m in explicit["members"]] == [m["id"] for m in plain["members"]]
    assert current["member_id"] in member_ids(url) and current["stale"] is False
    assert current["metrics"]["etcd_server_has_leader"] == 1
    assert status["etcd_endpoint"] == url and status["member_count"] == 1
    assert status["cluster"]["health"] == "healthy" and status["cluster"]["members_up"] == 1
    (member_id,) = member_ids(url)
    series = api_client.get(
        "/api/range",
        {"cluster_id": record, "member_id": member_id, "metrics": "collector_up", "range": "5m"},
    ).json()
    assert series["member_id"] == member_id and series["metrics"]["collector_up"][0]["value"] == 1
    # The default cluster's member ids are not the record's.
    other = next(iter(member_ids(etcd_cluster.client_urls[0])))
    missing = api_client.get(
        "/api/range", {"cluster_id": record, "member_id": other, "metrics": "collector_up"}
    )
    assert missing.status_code == 404

    listed = fleet(api_client)
    assert list(listed) == ["default", record]
    entry = listed[record]
    assert entry["name"] == "staging-1" and entry["labels"] == {"environment": "staging"}
    assert entry["monitored"] is True and entry["owner"] is None
    assert entry["status"]["health"] == "healthy" and entry["status"]["members_total"] == 1
    assert entry["versions"] == [second_version(url)]
    assert entry["last_collected"] == int(row.last_cycle_at.timestamp())
    assert entry["alerts"] == {"firing": 0, "worst": None}
    assert listed["default"]["status"]["members_total"] == 3


def second_version(url: str) -> str:
    return settings_gateway(ClusterConfig(endpoints=(url,))).status().version


def _operator(user_model):
    """A user who may add KV tabs (operator on every cluster), neither staff nor admin."""
    from accounts.models import AccountProfile

    user = user_model.objects.create_user(username="bob", password="b" * 12)
    AccountProfile.objects.create(user=user, roles={"*": "operator"})
    return user


@pytest.mark.django_db
@pytest.mark.parametrize("path", MONITOR_ROUTES)
def test_an_unknown_or_someone_elses_cluster_id_is_404_on_monitoring_routes(
    path, api_client, bearer_client, second, django_user_model
):
    bob = bearer_client(_operator(django_user_model))
    bobs = add_tab(bob, second.client_urls[0])["id"]

    unknown = api_client.get(path, {"cluster_id": "no-such-cluster", "metrics": "collector_up"})
    foreign = api_client.get(path, {"cluster_id": bobs, "metrics": "collector_up"})

    for response in (unknown, foreign):
        assert response.status_code == 404, response.json()
        assert response.json()["error"] == "cluster not found"


@pytest.mark.django_db
def test_a_users_own_cluster_is_in_their_fleet_only(api_client, bearer_client, second, db):
    from django.contrib.auth import get_user_model

    bob = bearer_client(_operator(get_user_model()))
    bobs = add_tab(bob, second.client_urls[0], name="bob's")["id"]

    mine = fleet(bob)
    admins = fleet(api_client)

    assert list(mine) == ["default", bobs] and list(admins) == ["default"]
    entry = mine[bobs]
    assert entry["monitored"] is False and entry["owner"] == "bob"
    assert entry["status"]["health"] == "unknown" and entry["status"]["as_of"] is None
    assert entry["versions"] == [] and entry["last_collected"] is None
    assert bob.get("/api/current", {"cluster_id": bobs}).status_code == 503


def test_fleet_needs_a_session(client, db):
    response = client.get("/api/fleet")

    assert response.status_code == 401 and response.json() == {"error": "not authenticated"}


@pytest.mark.django_db(transaction=True)
def test_a_new_monitored_cluster_has_metrics_by_the_second_round(second, api_client, settings):
    record = add_cluster(api_client, second.client_urls[0])
    before = api_client.get("/api/current", {"cluster_id": record})

    for _ in range(2):
        finish(services.collect_fleet())
        time.sleep(1.05)  # the next round's samples get their own second
    current = api_client.get("/api/current", {"cluster_id": record})

    assert before.status_code == 503
    assert current.status_code == 200, current.json()
    assert current.json()["stale"] is False
    assert current.json()["metrics"]["etcd_server_has_leader"] == 1
    assert Sample.objects.filter(member__cluster__name=record).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_paused_cluster_never_holds_up_the_others(etcd_cluster_factory, api_client):
    healthy = etcd_cluster_factory(size=1, point_settings=False)
    paused = etcd_cluster_factory(size=1, point_settings=False)
    healthy_id = add_cluster(api_client, healthy.client_urls[0], name="healthy")
    paused_id = add_cluster(api_client, paused.client_urls[0], name="paused")
    finish(services.collect_fleet())  # every cluster known, members listed
    time.sleep(1.05)
    paused.pause_member(paused.members[0])
    try:
        first = services.collect_fleet()
        probes = services.health_probe_fleet()
        finish({k: f for k, f in first.items() if k != paused_id})
        time.sleep(1.05)
        # The paused cluster's cycle is still waiting on its timeouts: the next round starts
        # every other cluster and leaves that one alone.
        second = services.collect_fleet()
        finish(second)
        finish(probes, timeout=30)

        assert set(first) == {"default", healthy_id, paused_id}
        # Not started again: its first cycle was still waiting (SCRAPE_TIMEOUT 10 s).
        assert set(second) == {"default", healthy_id}
        healthy_rows = Sample.objects.filter(member__cluster__name=healthy_id)
        assert healthy_rows.count() == 3 and all(
            Member.objects.filter(cluster__name=healthy_id).values_list("collector_up", flat=True)
        )
        assert Sample.objects.filter(member__cluster__name="default").count() == 9
        listed = fleet(api_client)
        assert listed[paused_id]["status"]["health"] == "unreachable"
        assert listed[paused_id]["status"]["members_up"] == 0
        assert listed[healthy_id]["status"]["health"] == "healthy"
        assert listed["default"]["status"]["health"] == "healthy"
        finish(first)  # the paused cluster's cycle ends on its own timeouts
        (member,) = Member.objects.filter(cluster__name=paused_id)
        assert member.collector_up is False and member.last_scrape_error
    finally:
        paused.resume_member(paused.members[0])
        wait(first.values(), timeout=60)


@pytest.mark.django_db(transaction=True)
def test_a_dead_cluster_is_unreachable_in_the_fleet_within_15_seconds(
    etcd_cluster_factory, api_client, settings
):
    doomed = etcd_cluster_factory(size=1, point_settings=False)
    record = add_cluster(api_client, doomed.client_urls[0])
    finish(services.health_probe_fleet())
    assert fleet(api_client)[record]["status"]["health"] == "healthy"

    doomed.kill_member(doomed.members[0])
    killed = time.monotonic()
    while fleet(api_client)[record]["status"]["health"] != "unreachable":
        assert time.monotonic() - killed < 15, "not unreachable within 15 s"
        finish(services.health_probe_fleet())
        time.sleep(min(settings.HEALTH_PROBE_INTERVAL, 1))

    assert fleet(api_client)["default"]["status"]["health"] == "healthy"


@pytest.mark.django_db
def test_alerts_evaluate_name_and_check_every_monitored_cluster(second, api_client):
    url = second.client_urls[0]
    record = add_cluster(api_client, url, name="remote-one")

    ids = alert_selectors.cluster_ids()
    check = alert_services.consistency_check(cluster_id=record)

    assert ids == ["default", record]
    assert alert_selectors.cluster_name(record) == "remote-one"
    assert check.outcome == "consistent"
    assert {r["member_id"] for r in check.results} == member_ids(url)
    assert alert_services.consistency_check(cluster_id="no-such-cluster") is None


@pytest.mark.django_db(transaction=True)
def test_with_a_broker_one_task_spreads_the_clusters_rounds_over_half_the_interval(
    second, api_client, redis_url, settings
):
    from celery.contrib.testing.worker import start_worker

    from etcdmonitor_site import celery_app
    from monitoring.tasks import collect_metrics

    record = add_cluster(api_client, second.client_urls[0])
    settings.EMBEDDED_MODE = False
    settings.MONITOR_ROUND_CLUSTERS = 1  # rounds of one: two rounds for two clusters
    received = []
    celery_app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=60):
            from celery.signals import task_received

            def note(request, **_kwargs):
                received.append(request.name)

            task_received.connect(note, weak=False)
            try:
                summary = collect_metrics.apply_async(expires=85).get(timeout=90)
                deadline = time.monotonic() + 60
                while Member.objects.filter(collector_up=True).count() < 4:
                    assert time.monotonic() < deadline, "the spread rounds did not run"
                    time.sleep(0.2)
            finally:
                task_received.disconnect(note)
    finally:
        celery_app.conf.update(task_always_eager=True)
        finish(services._collect_runner._running)
        services._collect_runner.close_connections()

    assert summary == {"spread": ["default", record]}
    assert received == ["monitoring.tasks.collect_metrics"]  # no task per round
    # The first round at once, the second (of two) a quarter of the interval later: a cycle's
    # samples carry its start (whole seconds).
    first = Sample.objects.get(member__cluster__name=record).ts
    default_ts = set(
        Sample.objects.filter(member__cluster__name="default").values_list("ts", flat=True)
    )
    assert len(default_ts) == 1
    assert abs(first - default_ts.pop() - settings.COLLECTOR_INTERVAL / 4) <= 1
    assert MonitoredCluster.objects.get(name=record).last_cycle_ms > 0
    assert Member.objects.filter(cluster__name="default").count() == 3


@pytest.mark.django_db(transaction=True)
def test_with_a_broker_a_health_round_probes_every_cluster_on_the_workers_pool(
    etcd_cluster_factory, api_client, settings
):
    from monitoring.tasks import probe_health

    healthy = etcd_cluster_factory(size=1, point_settings=False)
    paused = etcd_cluster_factory(size=1, point_settings=False)
    healthy_id = add_cluster(api_client, healthy.client_urls[0])
    paused_id = add_cluster(api_client, paused.client_urls[0])
    settings.EMBEDDED_MODE = False
    paused.pause_member(paused.members[0])
    try:
        first = probe_health()  # one task: every cluster started here, none queued
        finish({k: f for k, f in services._probe_runner._running.items() if k != paused_id})
        second_round = probe_health()
        views = fleet(api_client)
    finally:
        paused.resume_member(paused.members[0])
        finish(services._probe_runner._running)
        services._probe_runner.close_connections()

    assert first == {"started": sorted(["default", healthy_id, paused_id])}
    # The paused cluster's probe is still waiting on its timeout: not started a second time.
    assert second_round == {"started": sorted(["default", healthy_id])}
    assert views[healthy_id]["status"]["health"] == "healthy"
    assert views["default"]["status"]["health"] == "healthy"


def test_collection_and_probes_share_one_pool_per_process(settings):
    # Each pool thread keeps a database connection in a worker: one pool per job per worker
    # process ran PostgreSQL out of connections in bench/fleet.py.
    pool = services._collect_runner._executor()
    assert pool is services._probe_runner._executor()
    assert pool._max_workers == settings.MONITOR_CLUSTER_WORKERS


def _probed_at(cluster_name: str) -> dict[str, object]:
    return dict(
        Member.objects.filter(cluster__name=cluster_name).values_list("member_id", "probed_at")
    )


@pytest.mark.django_db(transaction=True)
def test_a_health_round_skips_a_member_row_another_transaction_holds(second, api_client):
    from django.db import connections

    record = add_cluster(api_client, second.client_urls[0])
    finish(services.health_probe_fleet())  # first sight: rows and members made
    finish(services.health_probe_fleet())
    held = Member.objects.filter(cluster__name="default").order_by("pk").first()
    before = {**_probed_at("default"), **_probed_at(record)}
    # Another connection holds one member row, as members_sync's transaction does.
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("SELECT id FROM monitoring_member WHERE id = %s FOR UPDATE", [held.pk])
        time.sleep(0.01)
        finish(services.health_probe_fleet(), timeout=30)  # waiting on the row would hang here
        during = {**_probed_at("default"), **_probed_at(record)}
    finally:
        other.rollback()
        other.close()
    finish(services.health_probe_fleet())
    after = {**_probed_at("default"), **_probed_at(record)}

    assert during[held.member_id] == before[held.member_id]  # skipped, not waited for
    assert all(during[m] > before[m] for m in before if m != held.member_id)
    assert after[held.member_id] > before[held.member_id]  # the next round wrote it
    assert fleet(api_client)[record]["status"]["health"] == "healthy"


@pytest.mark.django_db(transaction=True)
def test_a_health_rounds_queries_do_not_grow_with_the_fleet(etcd_cluster_factory, api_client):
    from concurrent.futures import Future

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def round_queries() -> int:
        ids = services.monitored_cluster_ids()
        runs = {cluster_id: Future() for cluster_id in ids}
        with CaptureQueriesContext(connection) as captured:
            services._probe_round(runs=runs)
        finish(runs)
        assert all(run.result().health == "healthy" for run in runs.values())
        return len(captured.captured_queries)

    counts = []
    for _ in range(2):
        add_cluster(api_client, etcd_cluster_factory(size=1, point_settings=False).client_urls[0])
        add_cluster(api_client, etcd_cluster_factory(size=1, point_settings=False).client_urls[0])
        finish(services.health_probe_fleet())  # the new clusters' first sight
        counts.append(round_queries())

    assert counts[0] == counts[1], counts  # 3 then 5 clusters


@pytest.mark.django_db(transaction=True)
def test_a_collection_round_claims_the_leases_ahead_without_waiting_on_a_held_row(
    etcd_cluster_factory, api_client
):
    import threading

    from django.db import connections

    ids = [
        add_cluster(api_client, etcd_cluster_factory(size=1, point_settings=False).client_urls[0])
        for _ in range(2)
    ]
    finish(services.collect_fleet())  # rows and members made
    time.sleep(1.05)
    held = MonitoredCluster.objects.get(name=ids[0])
    other = connections.create_connection("default")
    started: dict = {}
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM monitoring_monitoredcluster WHERE id = %s FOR UPDATE", [held.pk]
            )
        rows = list(MonitoredCluster.objects.all())
        claims: dict = {}

        def claim_then_start() -> None:
            try:
                claims.update(services.cluster_locks_claim(clusters=rows))
                # The round's own start must not wait on the held row either (only its
                # cycle does).
                started.update(services.collect_fleet())
            finally:
                connections.close_all()

        runner = threading.Thread(target=claim_then_start)
        runner.start()
        runner.join(timeout=20)
        assert not runner.is_alive(), "the round waited on a row another transaction holds"
    finally:
        other.rollback()
        other.close()
    finish(started)
    for name, claim in claims.items():  # this test's own claims, given back
        services.cluster_lock_release(
            cluster=MonitoredCluster.objects.get(name=name), token=claim.token
        )

    assert held.name not in claims and set(claims) == {"default", ids[1]}
    assert all(c.members for c in claims.values())
    # Every cycle of the round ran (the held one took its lease itself once the row was free,
    # the others found theirs taken by the test's claims and were skipped) and gave it back.
    assert set(started) == {"default", *ids}
    assert not MonitoredCluster.objects.exclude(lock_token="").exists()
    assert Sample.objects.filter(member__cluster__name=held.name).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_collection_round_reads_ahead_in_queries_that_do_not_grow(
    etcd_cluster_factory, api_client
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for _ in range(2):
        for _ in range(2):
            url = etcd_cluster_factory(size=1, point_settings=False).client_urls[0]
            add_cluster(api_client, url)
        finish(services.collect_fleet())  # the new clusters' first cycle
        time.sleep(1.05)
        runs = {cid: Future() for cid in services.monitored_cluster_ids()}
        handed_off: set[str] = set()
        with CaptureQueriesContext(connection) as captured:
            services._collect_round(runs=runs, handed_off=handed_off)  # here, to see its queries
        finish(runs)
        assert not handed_off and all(not run.result().skipped for run in runs.values())
        # The metric-name registry is read when a name is new to this process or a rollup
        # bucket closed (by the clock), not per round: left out.
        reads = [
            q["sql"]
            for q in captured.captured_queries
            if q["sql"].lstrip().startswith("SELECT") and "monitoring_metricname" not in q["sql"]
        ]
        counts.append(len(reads))
        # Members are written in a statement per wave of clusters, not one each; every
        # member still has exactly this round's sample, counted once.
        members = Member.objects.filter(in_cluster=True, collector_up=True)
        writes = [q for q in captured.captured_queries if SAMPLE_INSERT.search(q["sql"])]
        assert 1 <= len(writes) < len(runs) < members.count(), (len(writes), len(runs))
        for member in members.select_related("cluster"):
            ts = runs[member.cluster.name].result().ts
            assert Sample.objects.filter(member=member, ts=ts).count() == 1
            assert member.latest_ts == ts
            assert member.sample_count == Sample.objects.filter(member=member).count()

    assert counts[0] == counts[1], counts  # 3 then 5 clusters
    assert not MonitoredCluster.objects.exclude(lock_token="").exists()
    assert not MonitoredCluster.objects.filter(last_cycle_at__isnull=True).exists()


@pytest.mark.django_db
def test_a_member_whose_cycle_postgresql_refuses_costs_only_its_own_write(etcd_cluster):
    services.collect_cluster()
    members = list(Member.objects.order_by("pk"))
    now, ts = datetime.now(UTC), int(time.time()) + 5
    writes = [
        services._CycleWrite(
            member,
            ts,
            [1.0],
            {"collector_up": True, "last_scrape_at": now, "latest": {"collector_up": 1}},
        )
        for member in members
    ]
    # jsonb has no NUL character: PostgreSQL refuses this member's state, and so the shared
    # statement.
    writes[1].fields["latest"] = {"collector_up": 1, "name": "nul\x00"}

    failed = services._write_cycles(writes)

    assert set(failed) == {members[1].pk}
    for member in members:
        stored = Member.objects.get(pk=member.pk)
        written = member.pk != members[1].pk
        assert Sample.objects.filter(member=member, ts=ts).exists() is written
        assert (stored.last_scrape_at == now) is written
        assert stored.sample_count == Sample.objects.filter(member=member).count()


def _round(cluster_ids: list[str]) -> tuple[set[str], dict[str, float]]:
    """One collection round on this thread: the clusters it handed off, and when each ended."""
    runs = {cluster_id: Future() for cluster_id in cluster_ids}
    started, ended = time.monotonic(), {}
    for cluster_id, run in runs.items():
        run.add_done_callback(
            lambda _, cluster_id=cluster_id: ended.setdefault(
                cluster_id, time.monotonic() - started
            )
        )
    handed_off: set[str] = set()
    services._collect_round(runs=runs, handed_off=handed_off)
    finish(runs)
    return handed_off, ended


def _assert_not_held_back(ended: dict[str, float], *, quick: str, slow: str, timeout: float):
    """`slow` waited out its hung member's `timeout`; `quick` ended most of that timeout sooner.

    Relative, not absolute: a machine that stalls the test process (CI's did, ~4 s once)
    shifts both ends, while a round that held `quick` back would end the two together.
    """
    assert ended[slow] >= timeout, ended
    assert ended[slow] - ended[quick] >= 0.75 * timeout, ended


@pytest.mark.django_db(transaction=True)
def test_a_collection_round_scrapes_on_one_thread_and_tells_each_member_truly(
    etcd_cluster_factory, api_client, monkeypatch
):
    """Once their members are known, a round collects every cluster from its own thread (none
    handed to the single-cluster path); with one member of a cluster stopped and one hung, the
    other cluster is stored without waiting for the hung one, and each member is stored as
    what it is: up, refused, timed out."""
    monkeypatch.setattr(services, "SCRAPE_TIMEOUT", 2.0)
    trio = etcd_cluster_factory(size=3, point_settings=False)
    solo = etcd_cluster_factory(size=1, point_settings=False)
    trio_id = add_cluster(api_client, trio.client_urls[0], name="trio")
    solo_id = add_cluster(api_client, solo.client_urls[0], name="solo")
    finish(services.collect_fleet(cluster_ids=[trio_id, solo_id]))  # members listed
    time.sleep(1.05)
    live, stopped, hung = trio.members
    trio.kill_member(stopped)
    trio.pause_member(hung)
    try:
        handed_off, ended = _round([trio_id, solo_id])
    finally:
        trio.resume_member(hung)

    assert handed_off == set()
    _assert_not_held_back(ended, quick=solo_id, slow=trio_id, timeout=2.0)
    by_url = {m.scrape_url: m for m in Member.objects.filter(cluster__name=trio_id)}
    assert by_url[live.client_url].collector_up is True
    assert by_url[live.client_url].latest["etcd_server_has_leader"] in (0, 1)
    refused, timed_out = by_url[stopped.client_url], by_url[hung.client_url]
    assert refused.collector_up is False and "connection refused" in refused.last_scrape_error
    assert timed_out.collector_up is False and "timed out" in timed_out.last_scrape_error
    assert Sample.objects.filter(member__cluster__name=trio_id).count() == 6
    (member,) = Member.objects.filter(cluster__name=solo_id)
    assert member.collector_up is True and member.sample_count == 2
    assert member.latest["etcd_lease_count"] == 0  # the round's LeaseLeases answered
    assert not MonitoredCluster.objects.exclude(lock_token="").exists()


def _members_due(cluster_id: str) -> None:
    MonitoredCluster.objects.filter(name=cluster_id).update(
        last_member_sync=datetime(2000, 1, 1, tzinfo=UTC)
    )


@pytest.mark.django_db(transaction=True)
def test_a_collection_round_lists_members_itself_and_tells_the_truth_when_it_cannot(
    etcd_cluster_factory, api_client, monkeypatch
):
    """Member discovery happens inside the round (nothing handed to the single-cluster path):
    a new cluster's members are listed and scraped in its first round; with the endpoint
    asked first stopped, MemberList fails over to the next endpoint and the stopped member is
    stored refused; with the next one hung, the listed members are kept, the cluster says
    why, the other members are still scraped, and the other cluster is not held back."""
    monkeypatch.setattr(services, "STATUS_TIMEOUT", 2.0)
    monkeypatch.setattr(services, "SCRAPE_TIMEOUT", 2.0)
    trio = etcd_cluster_factory(size=3, point_settings=False)
    solo = etcd_cluster_factory(size=1, point_settings=False)
    trio_id = add_cluster(api_client, ",".join(trio.client_urls), name="trio")
    solo_id = add_cluster(api_client, solo.client_urls[0], name="solo")
    first, second_, third = trio.members

    handed_off, _ = _round([trio_id, solo_id])
    assert handed_off == set()
    by_url = {m.scrape_url: m for m in Member.objects.filter(cluster__name=trio_id)}
    assert set(by_url) == set(trio.client_urls)
    assert all(m.collector_up and m.in_cluster for m in by_url.values())
    assert sum(m.is_default for m in by_url.values()) == 1
    assert by_url[first.client_url].is_default  # the first configured endpoint
    assert Member.objects.get(cluster__name=solo_id).collector_up is True

    time.sleep(1.05)
    trio.kill_member(first)
    _members_due(trio_id)
    _members_due(solo_id)
    handed_off, _ = _round([trio_id, solo_id])
    assert handed_off == set()
    cluster = MonitoredCluster.objects.get(name=trio_id)
    assert cluster.last_error == "" and cluster.last_member_sync.year > 2000  # listed
    by_url = {m.scrape_url: m for m in Member.objects.filter(cluster__name=trio_id)}
    assert all(m.in_cluster for m in by_url.values())
    stopped = by_url[first.client_url]
    assert stopped.collector_up is False and "connection refused" in stopped.last_scrape_error
    assert by_url[second_.client_url].collector_up and by_url[third.client_url].collector_up
    gateway = cluster_gateway(Cluster.objects.get(pk=trio_id))
    assert gateway.preferred_endpoint() != first.client_url  # the failure was noted

    time.sleep(1.05)
    asked = gateway.preferred_endpoint()
    hung = next(m for m in trio.members if m.client_url == asked)
    trio.pause_member(hung)
    _members_due(trio_id)
    _members_due(solo_id)
    try:
        handed_off, ended = _round([trio_id, solo_id])
    finally:
        trio.resume_member(hung)
    assert handed_off == set()
    _assert_not_held_back(ended, quick=solo_id, slow=trio_id, timeout=2.0)
    cluster = MonitoredCluster.objects.get(name=trio_id)
    assert "timed out" in cluster.last_error or "deadline" in cluster.last_error.lower()
    assert cluster.last_member_sync.year == 2000  # not listed: nothing pretends it was
    by_url = {m.scrape_url: m for m in Member.objects.filter(cluster__name=trio_id)}
    assert len(by_url) == 3 and all(m.in_cluster for m in by_url.values())  # kept
    assert by_url[hung.client_url].collector_up is False
    assert "timed out" in by_url[hung.client_url].last_scrape_error
    (alive,) = [m for m in trio.members if m not in (first, hung)]
    assert by_url[alive.client_url].collector_up is True
    assert by_url[first.client_url].collector_up is False
    assert Sample.objects.filter(member__cluster__name=trio_id).count() == 9
    assert not MonitoredCluster.objects.exclude(lock_token="").exists()


@pytest.mark.django_db(transaction=True)
def test_a_round_member_without_grpc_over_libcurl_is_asked_on_grpcio_and_told_truly(
    etcd_cluster_factory, api_client
):
    """A member whose endpoint did not answer gRPC over libcurl (a proxy that speaks only TLS
    ALPN h2, say) is asked on grpcio away from the round's thread: its member list, scrape
    and lease count are what the member says, and the cluster stays in the round."""
    trio = etcd_cluster_factory(size=3, point_settings=False)
    trio_id = add_cluster(api_client, ",".join(trio.client_urls), name="trio")
    gateway = cluster_gateway(Cluster.objects.get(pk=trio_id))
    for _ in range(3):
        gateway.lease_grant(600)
    clients = [gateway.client_for(url, timeout=services.STATUS_TIMEOUT) for url in trio.client_urls]
    for client in clients:
        client._caller_refused = True  # as a NotGrpc answer leaves it

    handed_off, _ = _round([trio_id])
    assert handed_off == set()
    assert all(client._raw is not None for client in clients)  # asked on grpcio
    members = list(Member.objects.filter(cluster__name=trio_id))
    assert {m.scrape_url for m in members} == set(trio.client_urls)
    assert all(m.collector_up for m in members)
    leader_id = gateway.status().leader_id
    assert {m.member_id for m in members if m.is_leader} == {str(leader_id)}
    assert {m.latest["etcd_lease_count"] for m in members} == {3}
    assert not MonitoredCluster.objects.exclude(lock_token="").exists()
