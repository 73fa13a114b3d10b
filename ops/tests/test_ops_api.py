"""Ops endpoints against real clusters: each op really happens, bad input is a 4xx JSON error."""

import json
import subprocess

import pytest

from audit.models import AuditLog
from audit.services import Actor
from devtools.localcluster import etcd_binary
from etcdgateway import cluster_gateway
from ops.services import member_snapshot

pytestmark = pytest.mark.django_db


def leader_and_followers():
    gateway = cluster_gateway()
    members = gateway.members()
    statuses = {m.id: gateway.member_client(m).status() for m in members}
    leader = next(m for m in members if statuses[m.id].is_leader)
    return leader, [m for m in members if m.id != leader.id]


def last_audit(operation: str) -> AuditLog:
    return AuditLog.objects.filter(operation=operation).order_by("-id").first()


# --- defragment ------------------------------------------------------------------------------


def test_defragment_one_member_reports_duration_and_is_audited(ops_client, etcd_cluster):
    _, followers = leader_and_followers()
    target = followers[0]

    response = ops_client.post("/api/ops/defragment", {"member_id": target.id_str}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["message"] == "defragment completed"
    assert body["member_id"] == target.id_str and body["member_name"] == target.name
    assert isinstance(body["duration_ms"], int)
    entry = last_audit("defragment")
    assert (entry.username, entry.target, entry.params, entry.result, entry.success) == (
        "operator",
        target.name,
        target.id_str,
        "success",
        True,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "member_id: This field is required."),
        ({"member_id": "abc"}, "member_id: must be the decimal member id"),
        ({"member_id": "-1"}, "member_id: must be the decimal member id"),
        ({"member_id": True}, "member_id: must be the decimal member id"),
        ({"member_id": str(2**64)}, "member_id: must be the decimal member id"),
        ({"member_id": "12345"}, "member not found"),
    ],
)
def test_defragment_rejects_bad_member_ids(ops_client, etcd_cluster, body, message):
    response = ops_client.post("/api/ops/defragment", body, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_defragment_refuses_an_unreachable_member_with_409(ops_client, etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    members = {m.client_urls[0]: m for m in cluster_gateway().members()}
    victim = cluster.members[2]
    cluster.kill_member(victim)

    response = ops_client.post(
        "/api/ops/defragment", {"member_id": members[victim.client_url].id_str}, format="json"
    )

    assert response.status_code == 409
    assert "unreachable" in response.json()["error"]
    assert response.json()["error"].endswith("; defragment refused")


def test_invalid_json_is_a_400_json_error(ops_client, etcd_cluster):
    response = ops_client.generic(
        "POST", "/api/ops/defragment", "{not json", content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid JSON"}


# --- snapshot --------------------------------------------------------------------------------


def test_snapshot_comes_from_the_chosen_member_and_passes_etcdctl(ops_client, kv_prefix, tmp_path):
    gateway = cluster_gateway()
    for i in range(50):
        gateway.kv(lambda c, i=i: c.put(f"{kv_prefix}{i}", b"x" * 1000))
    _, followers = leader_and_followers()
    source = followers[1]
    revision = gateway.member_client(source).status().revision

    response = ops_client.get("/api/ops/snapshot", {"member_id": source.id_str})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    disposition = response["Content-Disposition"]
    assert disposition.startswith(f'attachment; filename="etcd-snapshot-{source.name}-')
    assert response["X-Etcd-Member-Id"] == source.id_str
    path = tmp_path / "snap.db"
    path.write_bytes(b"".join(response.streaming_content))
    revision_after = gateway.member_client(source).status().revision
    status = json.loads(
        subprocess.check_output(
            [etcd_binary("etcdctl"), "snapshot", "status", str(path), "-w", "json"],
            env={"ETCDCTL_API": "3"},
        )
    )
    # A lease expiring from an earlier test may add a revision while the snapshot is taken.
    assert revision <= status["revision"] <= revision_after
    entry = last_audit("snapshot")
    assert entry.success and entry.result == f"success, size={path.stat().st_size} bytes"
    assert entry.target == source.name


def test_snapshot_failing_midway_raises_so_the_connection_is_aborted(
    ops_client, etcd_cluster_factory
):
    cluster = etcd_cluster_factory(size=1)
    gateway = cluster_gateway()
    # ~30 MB: far more than gRPC's flow-control window (which can grow to a few MB), so the
    # kill lands while most of the snapshot is still to come even on a slow, loaded machine.
    for i in range(300):
        gateway.kv(lambda c, i=i: c.put(f"/big/{i}", b"y" * 100_000))
    member = gateway.members()[0]

    response = ops_client.get("/api/ops/snapshot", {"member_id": member.id_str})
    chunks = iter(response.streaming_content)
    first = next(chunks)
    cluster.kill_member(cluster.members[0])

    with pytest.raises(Exception):  # noqa: B017 - any error: the WSGI server then aborts
        for _ in chunks:
            pass
    assert len(first) > 0
    entry = last_audit("snapshot")
    assert entry.success is False and "snapshot transfer failed after" in entry.result


def test_a_client_leaving_midway_is_audited_as_a_failed_transfer(etcd_cluster):
    leader, _ = leader_and_followers()
    actor = Actor(username="operator", client_ip="192.0.2.9")

    stream = member_snapshot(member_id=leader.id, actor=actor)
    first = next(stream.chunks)
    stream.chunks.close()  # what the WSGI server does when the client goes away

    entry = last_audit("snapshot")
    assert entry.success is False and entry.target == leader.name
    assert entry.result == f"snapshot transfer failed after {len(first)} bytes: client disconnected"
    assert (entry.username, entry.client_ip, entry.params) == (
        "operator",
        "192.0.2.9",
        leader.id_str,
    )


def test_snapshot_of_an_unknown_member_is_400(ops_client, etcd_cluster):
    response = ops_client.get("/api/ops/snapshot", {"member_id": "42"})

    assert response.status_code == 400
    assert response.json() == {"error": "member not found"}


# --- alarms ----------------------------------------------------------------------------------


def test_nospace_alarm_is_listed_and_disarmed_after_compact_and_defrag(
    ops_client, etcd_cluster_factory
):
    etcd_cluster_factory(size=1, extra_args=["--quota-backend-bytes=2097152"])
    gateway = cluster_gateway()
    member = gateway.members()[0]
    with pytest.raises(Exception) as raised:
        for i in range(200):
            gateway.kv(lambda c, i=i: c.put(f"/fill/{i % 5}", b"z" * 200_000))
    assert getattr(raised.value, "status_code", None) == 507

    alarms = ops_client.get("/api/ops/alarms").json()["alarms"]
    assert alarms == [
        {"member_id": member.id_str, "member_name": member.name, "alarm_type": "NOSPACE"}
    ]

    gateway.kv(lambda c: c.delete_prefix("/fill/"))
    assert (
        ops_client.post(
            "/api/ops/compact", {"retain_count": 1, "physical": True}, format="json"
        ).status_code
        == 200
    )
    assert (
        ops_client.post(
            "/api/ops/defragment", {"member_id": member.id_str}, format="json"
        ).status_code
        == 200
    )
    response = ops_client.post(
        "/api/ops/alarms/disarm",
        {"member_id": member.id_str, "alarm_type": "NOSPACE"},
        format="json",
    )

    assert response.status_code == 200 and response.json() == {"message": "alarm disarmed"}
    assert ops_client.get("/api/ops/alarms").json() == {"alarms": []}
    gateway.kv(lambda c: c.put("/after", b"writes work again"))
    entry = last_audit("alarm_disarm")
    assert entry.success and entry.params == f"member_id={member.id_str}, alarm_type=NOSPACE"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"alarm_type": "NOSPACE"}, "member_id: This field is required."),
        ({"member_id": "x", "alarm_type": "NOSPACE"}, "member_id: must be the decimal member id"),
        ({"member_id": "1", "alarm_type": "NOSPACE"}, "member not found"),
    ],
)
def test_disarm_validates_member_id(ops_client, etcd_cluster, body, message):
    response = ops_client.post("/api/ops/alarms/disarm", body, format="json")

    assert response.status_code == 400 and response.json() == {"error": message}


@pytest.mark.parametrize("alarm_type", ["BOGUS", "", "NONE"])
def test_disarm_rejects_unknown_alarm_types(ops_client, etcd_cluster, alarm_type):
    member = cluster_gateway().members()[0]

    response = ops_client.post(
        "/api/ops/alarms/disarm",
        {"member_id": member.id_str, "alarm_type": alarm_type},
        format="json",
    )

    assert response.status_code == 400
    assert "alarm_type" in response.json()["error"]


# --- move leader -----------------------------------------------------------------------------


def test_move_leader_really_moves_leadership(ops_client, etcd_cluster_factory):
    etcd_cluster_factory()
    leader, followers = leader_and_followers()
    target = followers[0]

    response = ops_client.post(
        "/api/ops/move-leader", {"target_member_id": target.id_str}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["message"] == "leader moved"
    assert response.json()["target_id"] == target.id_str
    new_leader, _ = leader_and_followers()
    assert new_leader.id == target.id != leader.id
    assert last_audit("move_leader").success


def test_move_leader_refuses_the_current_leader_and_unknown_targets(ops_client, etcd_cluster):
    leader, _ = leader_and_followers()

    already = ops_client.post(
        "/api/ops/move-leader", {"target_member_id": leader.id_str}, format="json"
    )
    unknown = ops_client.post("/api/ops/move-leader", {"target_member_id": "7"}, format="json")
    missing = ops_client.post("/api/ops/move-leader", {}, format="json")

    assert (already.status_code, already.json()) == (
        400,
        {"error": "target member is already the leader"},
    )
    assert (unknown.status_code, unknown.json()) == (400, {"error": "target member not found"})
    assert missing.status_code == 400


# --- hashkv ----------------------------------------------------------------------------------


def test_hashkv_is_consistent_on_a_healthy_cluster(ops_client, etcd_cluster):
    response = ops_client.post("/api/ops/hashkv")

    body = response.json()
    assert response.status_code == 200
    assert body["consistent"] is True
    assert len(body["results"]) == 3
    assert len({r["hash"] for r in body["results"]}) == 1
    assert all("error" not in r for r in body["results"])
    assert last_audit("hashkv").result.startswith("consistent, ")


def test_hashkv_with_a_member_down_is_incomplete_never_inconsistent(
    ops_client, etcd_cluster_factory
):
    cluster = etcd_cluster_factory()
    members = {m.client_urls[0]: m for m in cluster_gateway().members()}
    victim = members[cluster.members[1].client_url]
    cluster.kill_member(cluster.members[1])

    response = ops_client.post("/api/ops/hashkv")

    body = response.json()
    assert response.status_code == 200
    assert (body["consistent"], body["incomplete"], body["mismatch"]) == (False, True, False)
    assert [u["member_id"] for u in body["unreachable"]] == [victim.id_str]
    assert body["unreachable"][0]["member_name"] == victim.name and body["unreachable"][0]["error"]
    errored = [r for r in body["results"] if "error" in r]
    assert len(errored) == 1 and errored[0]["hash"] == 0
    entry = last_audit("hashkv")
    assert entry.success is False
    assert entry.result.startswith("incomplete: 1 member(s) unreachable (m2), ")
    assert "INCONSISTENT" not in entry.result


def test_hashkv_on_a_healthy_cluster_is_neither_incomplete_nor_a_mismatch(ops_client, etcd_cluster):
    body = ops_client.post("/api/ops/hashkv").json()

    assert (body["consistent"], body["incomplete"], body["mismatch"]) == (True, False, False)
    assert body["unreachable"] == []


def _killed(cluster, index: int):
    members = {m.client_urls[0]: m for m in cluster_gateway().members()}
    victim = members[cluster.members[index].client_url]
    cluster.kill_member(cluster.members[index])
    return victim


def test_move_leader_refuses_a_down_target_with_409(ops_client, etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    _, followers = leader_and_followers()
    index = next(
        i for i, m in enumerate(cluster.members) if m.client_url in followers[0].client_urls
    )
    victim = _killed(cluster, index)

    response = ops_client.post(
        "/api/ops/move-leader", {"target_member_id": victim.id_str}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["error"].startswith(f"member {victim.name} is down (unreachable: ")
    assert response.json()["error"].endswith("; move-leader refused")


def test_snapshot_refuses_a_down_source_member_with_409(ops_client, etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    victim = _killed(cluster, 2)

    response = ops_client.get(f"/api/ops/snapshot?member_id={victim.id_str}")

    assert response.status_code == 409
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"].endswith("; snapshot refused")
    assert f"member {victim.name} is down" in response.json()["error"]


# --- compaction ------------------------------------------------------------------------------


def test_compact_keeps_the_requested_revisions(ops_client, kv_prefix):
    gateway = cluster_gateway()
    for i in range(5):
        gateway.kv(lambda c, i=i: c.put(f"{kv_prefix}k", str(i).encode()))
    current = ops_client.get("/api/ops/compact/revision").json()["revision"]

    response = ops_client.post("/api/ops/compact", {"retain_count": 3}, format="json")

    body = response.json()
    assert response.status_code == 200
    assert body["current_revision"] == current
    assert body["target_revision"] == current - 3 and body["physical"] is False
    entry = last_audit("compact")
    assert json.loads(entry.params) == {
        "retain_count": 3,
        "physical": False,
        "target_revision": current - 3,
    }


def test_compacting_an_already_compacted_revision_is_a_400_and_audited(ops_client, kv_prefix):
    gateway = cluster_gateway()
    for i in range(3):
        gateway.kv(lambda c, i=i: c.put(f"{kv_prefix}k", str(i).encode()))
    first = ops_client.post("/api/ops/compact", {"retain_count": 1}, format="json")
    assert first.status_code == 200

    again = ops_client.post("/api/ops/compact", {"retain_count": 1}, format="json")

    assert again.status_code == 400
    body = again.json()
    assert body["error"].startswith("compact failed: ") and "compacted" in body["error"]
    assert isinstance(body["duration_ms"], int)
    entry = last_audit("compact")
    assert entry.success is False and "compacted" in entry.result


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"retain_count": 0},
        {"retain_count": -5},
        {"retain_count": "5"},
        {"retain_count": True},
        {"retain_count": 1.5},
        {"retain_count": 2**70},
    ],
)
def test_compact_rejects_bad_retain_counts(ops_client, etcd_cluster, body):
    response = ops_client.post("/api/ops/compact", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"].startswith("retain_count")


def test_compact_with_a_non_positive_target_is_400_with_the_revision(ops_client, etcd_cluster):
    current = ops_client.get("/api/ops/compact/revision").json()["revision"]

    response = ops_client.post("/api/ops/compact", {"retain_count": current + 10}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "retain_count is too large, computed target revision is non-positive"
    assert body["retain_count"] == current + 10 and body["current_revision"] >= current


# --- ops disabled ----------------------------------------------------------------------------


OPS_ROUTES = [
    ("post", "/api/ops/defragment"),
    ("get", "/api/ops/snapshot"),
    ("get", "/api/ops/alarms"),
    ("post", "/api/ops/alarms/disarm"),
    ("post", "/api/ops/move-leader"),
    ("post", "/api/ops/hashkv"),
    ("post", "/api/ops/compact"),
    ("get", "/api/ops/compact/revision"),
    ("get", "/api/ops/audit-logs"),
]


@pytest.mark.parametrize(("method", "path"), OPS_ROUTES)
def test_ops_disabled_answers_403_on_every_route(ops_client, settings, method, path):
    settings.OPS_ENABLED = False

    response = (
        getattr(ops_client, method)(path, {}, format="json")
        if method == "post"
        else (ops_client.get(path))
    )

    assert response.status_code == 403
    assert response.json() == {"error": "ops disabled"}


def test_hashkv_schema_names_every_field_of_the_answer(ops_client, etcd_cluster):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    component = schema["components"]["schemas"]["HashKVOutput"]

    body = ops_client.post("/api/ops/hashkv").json()

    assert set(body) == set(component["properties"]) == set(component["required"])
