"""etcd failures against the real server (`manage.py runmonitor`, embedded jobs, 2 s interval).

Each test breaks a private 3-member cluster while the collector runs, and checks that the web
process keeps answering, that no stored sample disappears, and that the monitor catches up within
two collection intervals of the fault (or of the repair). Deadlines add a few seconds of slack
for a busy two-core machine; the hung-member case waits for the scrape timeout on purpose.
"""

import time

import pytest

from monitoring.services import SCRAPE_TIMEOUT, STATUS_TIMEOUT
from tests.system.conftest import (
    COLLECTOR_INTERVAL,
    collected_since,
    member_up,
    sample_counts,
    wait_until,
)

pytestmark = pytest.mark.system

TWO_INTERVALS = 2 * COLLECTOR_INTERVAL + 4  # two cycles, plus scheduling slack


@pytest.fixture
def watched(etcd_cluster_factory, monitor):
    """A private cluster, a monitor collecting it, a logged-in client; all members seen up."""
    cluster = etcd_cluster_factory(point_settings=False)
    server = monitor(cluster.endpoints)
    http = server.client(server.login())
    members = wait_until(
        lambda: (
            len(http.get("/api/members").json().get("members", [])) == 3
            and http.get("/api/members").json()["members"]
        ),
        timeout=30,
        what="three members stored",
    )
    for member in members:
        wait_until(lambda m=member: member_up(http, m["id"]), timeout=30, what="member up")
    by_url = {m.client_url: m for m in cluster.members}
    ids = {m["id"]: by_url[m["client_urls"][0]] for m in members}
    yield cluster, server, http, ids
    http.close()
    assert server.alive() == {"web": True}, "no process exited"
    assert "Traceback" not in server.logs()


def _leader_id(http) -> str | None:
    leaders = [m["id"] for m in http.get("/api/members").json()["members"] if m["is_leader"]]
    return leaders[0] if len(leaders) == 1 else None


def _never_fewer(before: dict[str, int], after: dict[str, int]) -> bool:
    return all(after.get(member, 0) >= count for member, count in before.items())


def test_killing_a_follower_marks_it_down_and_collection_goes_on(watched):
    cluster, _, http, ids = watched
    leader = wait_until(lambda: _leader_id(http), timeout=TWO_INTERVALS, what="a leader")
    follower_id = next(i for i in ids if i != leader)
    before = sample_counts(http)

    cluster.kill_member(ids[follower_id])
    killed_at = int(time.time())

    wait_until(lambda: not member_up(http, follower_id), timeout=TWO_INTERVALS, what="down")
    wait_until(lambda: collected_since(http, killed_at), timeout=TWO_INTERVALS, what="a cycle")
    assert all(member_up(http, i) for i in ids if i != follower_id)
    assert _never_fewer(before, sample_counts(http))
    assert http.get("/api/kv/v3/keys").status_code == 200

    cluster.start_member(ids[follower_id])
    cluster.wait_healthy([ids[follower_id]])
    wait_until(lambda: member_up(http, follower_id), timeout=TWO_INTERVALS, what="back up")


def test_killing_the_leader_shows_the_newly_elected_one(watched):
    cluster, _, http, ids = watched
    old_leader = wait_until(lambda: _leader_id(http), timeout=TWO_INTERVALS, what="a leader")
    before = sample_counts(http)

    cluster.kill_member(ids[old_leader])

    new_leader = wait_until(
        lambda: (leader := _leader_id(http)) not in (None, old_leader) and leader,
        timeout=TWO_INTERVALS + 2,  # plus etcd's election timeout (200 ms here)
        what="the new leader in /api/members",
    )
    assert new_leader in ids
    wait_until(lambda: not member_up(http, old_leader), timeout=TWO_INTERVALS, what="old down")
    assert _never_fewer(before, sample_counts(http))
    put = http.put("/api/kv/v3/put", json={"key": "/after-election", "value": "1"})
    assert put.status_code == 200, put.text


def test_all_members_stopped_gives_clear_503s_and_recovers(watched):
    cluster, server, http, ids = watched
    before = sample_counts(http)

    cluster.stop()

    health = wait_until(
        lambda: (body := http.get("/healthz").json())["etcd"] is False and body,
        timeout=TWO_INTERVALS + 5,  # /healthz trusts a health probe up to 5 s old
        what="/healthz etcd false",
    )
    assert health["status"] == "ok" and health["database"] is True
    wait_until(
        lambda: not any(member_up(http, i) for i in ids), timeout=TWO_INTERVALS, what="all down"
    )
    for method, path, body in [
        ("GET", "/api/kv/v3/keys", None),
        ("GET", "/api/kv/v3/get?key=/x", None),
        ("PUT", "/api/kv/v3/put", {"key": "/x", "value": "1"}),
        ("POST", "/api/kv/v3/connect", {}),
        ("GET", "/api/ops/alarms", None),
        ("POST", "/api/ops/hashkv", {}),
    ]:
        response = http.request(method, path, json=body)
        assert response.status_code == 503, (path, response.status_code, response.text)
        assert "unavailable" in response.json()["error"], response.text
    stored = http.get("/api/members")
    assert stored.status_code == 200 and len(stored.json()["members"]) == 3
    assert http.get("/api/status").json()["collector_up"] is False
    assert _never_fewer(before, sample_counts(http))
    assert server.alive() == {"web": True}

    cluster.start()
    restarted_at = int(time.time())
    for member_id in ids:
        wait_until(lambda m=member_id: member_up(http, m), timeout=TWO_INTERVALS, what="up")
    assert collected_since(http, restarted_at - 1)
    assert http.get("/api/kv/v3/keys").status_code == 200


def test_a_hung_member_does_not_stall_a_cycle_past_its_timeout(watched):
    cluster, _, http, ids = watched
    hung_id = next(iter(ids))
    healthy = [i for i in ids if i != hung_id]

    cluster.pause_member(ids[hung_id])
    try:
        paused_at = int(time.time())
        # Its scrape times out (SCRAPE_TIMEOUT), so that cycle ends no later than the timeout.
        cycle_bound = SCRAPE_TIMEOUT + STATUS_TIMEOUT + TWO_INTERVALS
        wait_until(lambda: not member_up(http, hung_id), timeout=cycle_bound, what="hung down")
        for _ in range(2):  # the following cycles keep finishing, each within the bound
            mark = int(time.time())
            wait_until(lambda m=mark: collected_since(http, m), timeout=cycle_bound, what="cycle")
        assert collected_since(http, paused_at)
        assert all(member_up(http, i) for i in healthy)
        started = time.monotonic()
        assert http.get("/api/members").status_code == 200
        assert time.monotonic() - started < SCRAPE_TIMEOUT, "the web does not wait on etcd"
    finally:
        cluster.resume_member(ids[hung_id])
    wait_until(lambda: member_up(http, hung_id), timeout=TWO_INTERVALS + SCRAPE_TIMEOUT, what="up")
