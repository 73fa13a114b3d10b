"""v2 keys must stay under `/v2/keys/` (issue 15, high 1).

A key with `..` segments once left the prefix: `DELETE ../members/<id>` removed a member of the
real cluster, `GET ../../version` answered 500. These tests run the attack through the API, on
the configured cluster and through a KV tab, against a private 3-member cluster (so that a
regression cannot break the session cluster), and check the member list afterwards.
"""

import json

import pytest
from django.conf import settings

from devtools.localcluster import LocalEtcdCluster
from etcdgateway import ClusterConfig, ClusterGateway, EtcdError, reset_gateways
from etcdgateway.v2 import V2Keys, keys_path
from tests.servers import canned_http_server

pytestmark = pytest.mark.django_db

DOT_SEGMENT_KEYS = [
    "../members/{id}",
    "../../v2/members/{id}",
    "/a/../../members/{id}",
    "%2e%2e/members/{id}",
    "%2E%2E/members/{id}",
    ".%2E/members/{id}",
    "%2e./members/{id}",
    "%252e%252e/members/{id}",
    "./../members/{id}",
    "a/./b",
    ".",
    "/x/%2e",
]


@pytest.fixture(scope="module")
def victim(tmp_path_factory, etcd_cluster):
    """A private 3-member cluster (v2 on) whose members the attack tries to remove."""
    cluster = LocalEtcdCluster(tmp_path_factory.mktemp("v2-victim"), size=3).start()
    yield cluster
    cluster.remove()


def member_ids(cluster) -> list[int]:
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(cluster.client_urls)))
    try:
        return sorted(member.id for member in gateway.members())
    finally:
        gateway.close()


@pytest.fixture
def victim_as_default(victim):
    previous = settings.ETCD_ENDPOINTS
    settings.ETCD_ENDPOINTS = list(victim.client_urls)
    reset_gateways()
    yield victim
    settings.ETCD_ENDPOINTS = previous
    reset_gateways()


@pytest.fixture
def victim_tab(api, victim):
    response = api.post("/api/kv/tabs", {"endpoint": victim.client_urls[0]}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["tab"]["id"]


def assert_refused(response):
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert set(body) == {"error", "code", "message"}
    assert body["code"] == "invalid_request"
    assert "segment" in body["error"]


@pytest.mark.parametrize("template", DOT_SEGMENT_KEYS)
def test_v2_delete_with_dot_segments_is_refused_and_members_stay(api, victim_as_default, template):
    before = member_ids(victim_as_default)
    key = template.format(id=format(before[-1], "x"))

    response = api.post("/api/kv/v2/delete", {"key": key}, format="json")

    assert_refused(response)
    assert member_ids(victim_as_default) == before


@pytest.mark.parametrize("template", DOT_SEGMENT_KEYS)
def test_v2_delete_through_a_tab_is_refused_and_members_stay(api, victim, victim_tab, template):
    before = member_ids(victim)
    key = template.format(id=format(before[0], "x"))

    response = api.post(f"/api/kv/v2/delete?tab_id={victim_tab}", {"key": key}, format="json")

    assert_refused(response)
    assert member_ids(victim) == before


@pytest.mark.parametrize(
    "key", ["../../version", "../members", "../../v2/auth/users", "%2e%2e/%2e%2e/version"]
)
@pytest.mark.parametrize("through_tab", [False, True])
def test_v2_get_with_dot_segments_is_refused(api, victim_tab, victim_as_default, key, through_tab):
    query = {"key": key, **({"tab_id": victim_tab} if through_tab else {})}

    assert_refused(api.get("/api/kv/v2/get", query))
    assert_refused(api.get("/api/kv/v2/getpath", query))


@pytest.mark.parametrize("through_tab", [False, True])
def test_v2_put_with_dot_segments_is_refused_and_audited(
    api, victim_tab, victim_as_default, through_tab
):
    from audit.models import AuditLog

    suffix = f"?tab_id={victim_tab}" if through_tab else ""
    response = api.put(
        f"/api/kv/v2/put{suffix}", {"key": "../../v2/keys/x", "value": "1"}, format="json"
    )

    assert_refused(response)
    entry = AuditLog.objects.filter(operation="put").latest("id")
    assert entry.success is False and entry.target.endswith("../../v2/keys/x")


def test_non_v2_json_answers_502_not_500(json_server):
    """A server whose /v2/keys answers JSON without `node` (what /version or /v2/members
    return) is a bad gateway, never a KeyError 500."""
    gateway = ClusterGateway(ClusterConfig(endpoints=(json_server,)))
    try:
        for call in (
            lambda v2: v2.get("/x"),
            lambda v2: v2.set("/x", value="1"),
            lambda v2: v2.delete("/x"),
        ):
            with pytest.raises(EtcdError) as caught:
                call(V2Keys(gateway))
            assert caught.value.status_code == 502
            assert type(caught.value) is EtcdError
    finally:
        gateway.close()


@pytest.fixture
def json_server():
    """A loopback HTTP server answering `{"etcdserver": "3.4.0"}` (like /version) to anything."""
    body = json.dumps({"etcdserver": "3.4.0", "etcdcluster": "3.4.0"}).encode()
    with canned_http_server(body, "application/json", ("GET", "PUT", "DELETE")) as url:
        yield url


def test_ordinary_keys_keep_working_and_are_quoted_per_segment():
    assert keys_path("/a/b c") == "/v2/keys/a/b%20c"
    assert keys_path("/a/..b/c.") == "/v2/keys/a/..b/c."
    assert keys_path("/q?x=1#f") == "/v2/keys/q%3Fx%3D1%23f"
    assert keys_path("/") == "/v2/keys/"
