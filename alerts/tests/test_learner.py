"""learner_stuck on a real learner: a member added with MemberAdd(is_learner) through etcdctl,
started with --initial-cluster-state existing, left unpromoted, then promoted."""

import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest

from alerts.selectors import MEMBER_LIST_MAX_AGE
from alerts.tests.test_faults import _follower, _started
from devtools.localcluster import LocalMember, etcd_binary, free_port
from etcdgateway import cluster_gateway
from monitoring import services as monitoring_services
from monitoring.models import Member, MonitoredCluster
from monitoring.services import MetricsTarget


def _etcdctl(cluster, *args: str, timeout: float = 20.0) -> str:
    """etcdctl from the bin directory of the cluster's etcd (ETCD_BIN_DIR or PATH), through the
    first three members only (the voters: a learner refuses MemberAdd and MemberPromote with
    "rpc not supported for learner", and etcdctl may pick any endpoint), repeated
    while etcd refuses a reconfiguration as "unhealthy cluster" (it wants every voter connected
    for 5 s first) or a promotion because the learner has not caught up yet."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            [etcd_binary("etcdctl"), f"--endpoints={','.join(cluster.client_urls[:3])}", *args],
            env={**os.environ, "ETCDCTL_API": "3"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0:
            return done.stdout
        retry = "unhealthy cluster" in done.stderr or "in sync with leader" in done.stderr
        assert retry and time.monotonic() < deadline, done.stderr
        time.sleep(0.5)


def _add_learner(cluster, name: str = "m4") -> tuple[LocalMember, str]:
    """MemberAdd(is_learner) then the new etcd process joining the existing cluster; the member
    joins `cluster.members`, so the fixture's teardown kills it by PID with the others."""
    learner = LocalMember(
        name=name,
        client_port=free_port(),
        peer_port=free_port(),
        data_dir=cluster.base_dir / f"{name}.etcd",
        log_path=cluster.base_dir / f"{name}.log",
    )
    add = ["member", "add", name, "--learner", f"--peer-urls={learner.peer_url}", "-w", "json"]
    added = json.loads(_etcdctl(cluster, *add))
    assert added["member"]["isLearner"] is True
    cluster.members.append(learner)
    cluster.start_member(learner, state="existing")
    cluster.wait_healthy([learner])
    return learner, str(added["member"]["ID"])


def _synced(monitor) -> None:
    """The member list read now (the collector rereads it every 60 s), then a collection."""
    record = MonitoredCluster.objects.get(name="default")
    monitoring_services.members_sync(cluster=record, force=True)
    monitor.collect()


def _members(monitor) -> dict[str, dict]:
    response = monitor.api.get("/api/members")
    assert response.status_code == 200, response.content
    return {m["id"]: m for m in response.json()["members"]}


def _cluster_health(monitor) -> dict:
    response = monitor.api.get("/api/status")
    assert response.status_code == 200, response.content
    return response.json()["cluster"]


@pytest.fixture
def learner_cluster(etcd_cluster_factory, monitor):
    """(cluster, learner, its id): three voters and a running, unpromoted learner m4 that the
    monitor has listed, probed and scraped."""
    cluster = _started(etcd_cluster_factory, monitor)
    learner, learner_id = _add_learner(cluster)
    _synced(monitor)
    return cluster, learner, learner_id


@pytest.mark.django_db
def test_an_unpromoted_learner_is_pending_then_firing_and_resolves_once_promoted(
    learner_cluster, monitor
):
    cluster, _, learner_id = learner_cluster
    monitor.set_rule("learner_stuck", for_seconds=3)

    assert monitor.round() == []
    pending = monitor.alert("learner_stuck", learner_id)
    assert pending["state"] == "pending" and pending["severity"] == "warning"
    assert pending["values"]["member_name"] == "m4" and "m4" in pending["summary"]
    assert 0 <= pending["values"]["learner_seconds"] < 3
    # The member list marks the learner; the health model counts three voters.
    members = _members(monitor)
    assert [m["name"] for m in members.values() if m["is_learner"]] == ["m4"]
    assert members[learner_id]["health"] == "up"
    health = _cluster_health(monitor)
    assert (health["members_total"], health["members_up"]) == (4, 4)
    assert (health["quorum"], health["quorum_margin"], health["health"]) == (2, 1, "healthy")

    monitor.until(
        lambda: monitor.alert("learner_stuck", learner_id, "firing"), what="learner_stuck firing"
    )
    firing = monitor.alert("learner_stuck", learner_id)
    assert firing["id"] == pending["id"]
    [fired] = monitor.transitions
    assert (fired.rule, fired.status, fired.member_id) == ("learner_stuck", "firing", learner_id)
    # Which learner and for how long: since the monitor first listed it, at least for_seconds.
    assert fired.values["learner_since"] == pending["values"]["learner_since"]
    assert fired.values["learner_seconds"] >= 3
    assert firing["starts_at"] - fired.values["learner_since"] >= 3
    assert re.fullmatch(r"etcd learner m4 is not promoted after \d+ s", fired.summary)
    assert "m4" in fired.description and "since" in fired.description

    _etcdctl(cluster, "member", "promote", f"{int(learner_id):x}")
    # The next probe round hears it from the member itself, before any member list sync.
    monitor.until(
        lambda: monitor.alert("learner_stuck", learner_id, "resolved"),
        what="learner_stuck resolved",
    )
    assert [(t.rule, t.status) for t in monitor.transitions] == [
        ("learner_stuck", "firing"),
        ("learner_stuck", "resolved"),
    ]
    assert not any(m["is_learner"] for m in _members(monitor).values())
    health = _cluster_health(monitor)
    assert (health["quorum"], health["quorum_margin"]) == (3, 1)
    assert Member.objects.get(member_id=learner_id).learner_since is None


@pytest.mark.django_db
def test_a_down_learner_is_no_lost_quorum(learner_cluster, monitor):
    """Two of four members down is quorum lost for four voters, not for three and a learner."""
    cluster, learner, learner_id = learner_cluster
    monitor.set_rule("learner_stuck", enabled=False)
    monitor.set_rule("member_down", for_seconds=0)
    monitor.set_rule("insufficient_members", for_seconds=0)
    assert monitor.round() == []

    cluster.kill_member(learner)
    [down] = monitor.round()
    assert (down.rule, down.member_id, down.severity) == ("member_down", learner_id, "warning")
    assert down.values["quorum_margin"] == 1

    victim, victim_id = _follower(cluster, monitor.api)
    cluster.kill_member(victim)
    monitor.until(
        lambda: monitor.alert("member_down", victim_id, "firing"), what="member_down firing"
    )
    health = _cluster_health(monitor)
    assert (health["members_total"], health["members_up"]) == (4, 2)
    assert (health["quorum"], health["quorum_margin"]) == (2, 0)
    assert health["health"] == "degraded" and health["leader_id"] is not None
    # The voter's loss leaves no margin: critical; the learner's stays a warning.
    assert monitor.alert("member_down", victim_id)["severity"] == "critical"
    assert monitor.alert("member_down", learner_id)["severity"] == "warning"
    assert monitor.alert("insufficient_members") is None
    assert monitor.alert("no_leader") is None
    assert sorted((t.rule, t.member_id) for t in monitor.transitions) == sorted(
        [("member_down", learner_id), ("member_down", victim_id)]
    )

    # One voter more is quorum lost, and the answer names voters, not members.
    last = next(m for m in cluster.members[:3] if m is not victim)
    cluster.kill_member(last)
    monitor.until(
        lambda: monitor.alert("insufficient_members", state="firing"),
        what="insufficient_members firing",
    )
    lost = monitor.alert("insufficient_members")
    assert lost["values"]["voters_up"] == 1 and lost["values"]["voters_total"] == 3
    assert (lost["values"]["quorum"], lost["values"]["quorum_margin"]) == (2, -1)
    assert lost["summary"] == "etcd cluster has lost quorum"
    [told] = [t for t in monitor.transitions if t.rule == "insufficient_members"]
    assert told.description.startswith("1 of 3 voting members answer; 2 are needed.")
    assert "1 learner(s) do not count towards the quorum" in told.description


@pytest.mark.django_db
def test_a_gap_in_the_member_list_does_not_reset_a_learners_age(learner_cluster, monitor):
    """The monitor away longer than MEMBER_LIST_MAX_AGE drops the pending alert (nothing proves
    the learner stayed one), but etcd never demotes: back, it fires at once for the learner
    that stayed one past for_seconds."""
    _, _, learner_id = learner_cluster
    monitor.set_rule("learner_stuck", for_seconds=4)
    assert monitor.round() == []
    since = monitor.alert("learner_stuck", learner_id, "pending")["values"]["learner_since"]

    MonitoredCluster.objects.filter(name="default").update(
        last_member_sync=datetime.now(UTC) - timedelta(seconds=MEMBER_LIST_MAX_AGE + 1)
    )
    assert monitor.round() == []
    assert monitor.alert("learner_stuck", learner_id) is None
    time.sleep(max(0.0, since + 5.2 - time.time()))  # `since` is in whole seconds

    _synced(monitor)
    [fired] = monitor.round()
    assert (fired.rule, fired.status, fired.member_id) == ("learner_stuck", "firing", learner_id)
    assert fired.values["learner_since"] == since and fired.values["learner_seconds"] >= 4


@pytest.mark.django_db
def test_the_lease_count_is_asked_of_a_voter_never_of_the_learner(learner_cluster):
    """A learner refuses LeaseLeases: had it answered Status first and made the cycle's one
    lease count call, the cycle would have stored no lease count for any member."""
    _, _, learner_id = learner_cluster
    members = {m.member_id: m for m in Member.objects.filter(in_cluster=True)}
    gateway = cluster_gateway()
    leases = monitoring_services._LeaseCount()

    learned = monitoring_services._scrape(
        members[learner_id], gateway, gateway.config.metrics_path, MetricsTarget(), leases
    )
    assert learned.status.is_learner and not learned.error
    assert not leases._claimed
    voter = next(m for m in members.values() if not m.is_learner)
    monitoring_services._scrape(
        voter, gateway, gateway.config.metrics_path, MetricsTarget(), leases
    )
    assert leases.get() == 0
