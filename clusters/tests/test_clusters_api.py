"""`/api/clusters` (issue 19): records of shared clusters and users' own, written by staff only,
the environment's `default` read-only, every refusal in the contract's body and audited."""

import logging

import pytest
from django.conf import settings as django_settings

from audit.models import AuditLog
from clusters import selectors, services
from clusters.connection import cluster_gateway
from clusters.crypto import password_decrypt
from clusters.models import Cluster
from clusters.tests.conftest import add_tab, dead_url
from etcdgateway import cluster_gateway as settings_gateway

RECORD_FIELDS = {
    "id", "name", "endpoints", "username", "has_password", "insecure_skip_verify",
    "has_ca_cert", "labels", "monitored", "owner", "created_at",
}  # fmt: skip


def audits(operation: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(operation=operation).order_by("id"))


def add_cluster(client, endpoints, **fields) -> dict:
    response = client.post("/api/clusters", {"endpoints": endpoints, **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/clusters"),
        ("post", "/api/clusters"),
        ("get", "/api/clusters/default"),
        ("patch", "/api/clusters/default"),
        ("delete", "/api/clusters/default"),
    ],
)
def test_every_cluster_route_answers_401_without_a_session(client, db, method, path):
    response = getattr(client, method)(path, {}, content_type="application/json")

    assert response.status_code == 401
    assert response.json() == {"error": "not authenticated"}


def test_the_default_record_mirrors_the_environment(api_client, settings):
    settings.ETCD_CLUSTER_NAME = "main"
    settings.ETCD_CLUSTER_ENVIRONMENT = "prod"

    listed = api_client.get("/api/clusters")

    assert listed.status_code == 200
    (default,) = listed.json()["clusters"]
    assert set(default) == RECORD_FIELDS
    assert default["id"] == "default" and default["name"] == "main"
    assert default["endpoints"] == django_settings.ETCD_ENDPOINTS
    assert default["labels"] == {"environment": "prod"}
    assert default["monitored"] is True and default["owner"] is None
    assert api_client.get("/api/clusters/default").json() == default


def test_staff_registers_a_shared_cluster_after_testing_it(api_client, remote_url, bob_client):
    # A create also takes one comma-separated string; duplicates collapse.
    response = api_client.post(
        "/api/clusters",
        {
            "endpoints": f"{remote_url}/, {remote_url}",
            "name": "payments",
            "labels": {"environment": "staging", "team": "core"},
            "monitored": True,
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    record = response.json()
    assert set(record) == RECORD_FIELDS
    assert record["endpoints"] == [remote_url] and record["name"] == "payments"
    assert record["labels"] == {"environment": "staging", "team": "core"}
    assert record["monitored"] is True and record["owner"] is None
    assert record["has_password"] is False and record["username"] == ""
    assert Cluster.objects.get(pk=record["id"]).owner is None
    (entry,) = audits("cluster_create")
    assert entry.success and entry.target == record["id"] and entry.username == "admin"
    # Shared: every signed-in user reads it, after the default.
    ids = [c["id"] for c in bob_client.get("/api/clusters").json()["clusters"]]
    assert ids == ["default", record["id"]]
    assert bob_client.get(f"/api/clusters/{record['id']}").json() == record
    # Not a tab of anyone's.
    tabs = bob_client.get("/api/kv/tabs").json()["tabs"]
    assert [t["id"] for t in tabs] == ["default"]


def test_endpoints_may_be_a_list_with_several_members(api_client, etcd_cluster_factory):
    cluster = etcd_cluster_factory(size=3, point_settings=False)

    record = add_cluster(api_client, list(cluster.client_urls))

    assert record["endpoints"] == list(cluster.client_urls)
    gateway = cluster_gateway(Cluster.objects.get(pk=record["id"]))
    assert {m.id for m in gateway.members()} == {
        m.id for m in settings_gateway(gateway.config).members()
    }
    assert len(gateway.members()) == 3


@pytest.mark.parametrize(
    "endpoints, code",
    [
        ("ftp://127.0.0.1:2379", "KV_TAB_INVALID_SCHEME"),
        (["http://127.0.0.1:2379/v3"], "KV_TAB_INVALID_SCHEME"),
        ("", "KV_TAB_INVALID_SCHEME"),
        (["http://127.0.0.1:1", "https://127.0.0.1:2"], "KV_TAB_INVALID_SCHEME"),
        (["https://a.example:1", "https://b.example:2"], "KV_TAB_INVALID_SCHEME"),
    ],
)
def test_create_refuses_bad_endpoints(api_client, endpoints, code):
    response = api_client.post("/api/clusters", {"endpoints": endpoints}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == code and response.json()["error"]
    assert not Cluster.objects.exclude(pk="default").exists()
    (entry,) = audits("cluster_create")
    assert not entry.success and entry.result == "invalid_scheme"


def test_create_refuses_an_unreachable_endpoint_with_the_reason(api_client, remote_url):
    dead = dead_url()

    response = api_client.post("/api/clusters", {"endpoints": [remote_url, dead]}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "KV_TAB_UNREACHABLE" and body["status"] == "unreachable"
    assert body["error"] == f"{dead}: connection test failed: connection refused"
    assert body["endpoint"] == dead
    assert not Cluster.objects.exclude(pk="default").exists()
    (entry,) = audits("cluster_create")
    assert not entry.success and entry.result.startswith("unreachable:")


def test_create_refuses_wrong_credentials_and_never_shows_a_password(
    api_client, auth_cluster, caplog
):
    url = auth_cluster.client_urls[0]
    caplog.set_level(logging.DEBUG)

    refused = api_client.post(
        "/api/clusters",
        {"endpoints": url, "username": "root", "password": "wrong-pw"},
        format="json",
    )
    created = api_client.post(
        "/api/clusters",
        {"endpoints": url, "username": "root", "password": "rootpw"},
        format="json",
    )

    assert refused.status_code == 400
    assert refused.json()["code"] == "KV_TAB_AUTH_FAILED"
    assert refused.json()["status"] == "auth_failed"
    assert created.status_code == 201
    record = created.json()
    assert record["has_password"] is True and record["username"] == "root"
    row = Cluster.objects.get(pk=record["id"])
    assert b"rootpw" not in bytes(row.password_cipher)
    assert password_decrypt(row.password_cipher, tab_id=row.pk) == "rootpw"
    for response in (
        created,
        api_client.get("/api/clusters"),
        api_client.get(f"/api/clusters/{record['id']}"),
    ):
        text = response.content.decode()
        assert "rootpw" not in text and "password_cipher" not in text
    for entry in AuditLog.objects.all():
        assert "rootpw" not in entry.params + entry.result + entry.target
        assert "wrong-pw" not in entry.params + entry.result + entry.target
    assert "rootpw" not in caplog.text and "wrong-pw" not in caplog.text
    # The stored credentials reach the cluster.
    assert cluster_gateway(row).kv(lambda c: c.put("/x", b"1")) is not None


def test_only_admins_write_and_every_refusal_is_audited(api_client, bob_client, remote_url):
    shared = add_cluster(api_client, remote_url)

    attempts = [
        bob_client.post("/api/clusters", {"endpoints": remote_url}, format="json"),
        bob_client.patch(f"/api/clusters/{shared['id']}", {"name": "x"}, format="json"),
        bob_client.delete(f"/api/clusters/{shared['id']}"),
    ]

    for response in attempts:
        assert response.status_code == 403
        assert response.json() == {"error": DENIED, "code": "FORBIDDEN"}
    assert Cluster.objects.get(pk=shared["id"]).name == shared["name"]
    assert Cluster.objects.exclude(pk="default").count() == 1
    denied = AuditLog.objects.filter(username="bob", success=False)
    assert sorted(e.operation for e in denied) == [
        "cluster_create", "cluster_delete", "cluster_update"
    ]  # fmt: skip
    assert all(e.result == DENIED for e in denied)


DENIED = "permission denied: changing clusters needs the admin role"


def test_the_default_record_is_read_only(api_client):
    before = api_client.get("/api/clusters/default").json()

    patch = api_client.patch("/api/clusters/default", {"name": "mine"}, format="json")
    delete = api_client.delete("/api/clusters/default")

    for response in (patch, delete):
        assert response.status_code == 403
        assert response.json()["code"] == "CLUSTER_READ_ONLY"
        assert "read-only" in response.json()["error"]
    assert api_client.get("/api/clusters/default").json() == before
    assert [e.result for e in AuditLog.objects.filter(success=False)] == ["read_only"] * 2


def test_a_new_endpoint_is_tested_before_it_is_stored(api_client, remote_url):
    record = add_cluster(api_client, remote_url, name="r")

    refused = api_client.patch(
        f"/api/clusters/{record['id']}", {"endpoints": [dead_url()]}, format="json"
    )
    bad_label = api_client.patch(
        f"/api/clusters/{record['id']}", {"labels": {"environment": "qa"}}, format="json"
    )
    changed = api_client.patch(
        f"/api/clusters/{record['id']}",
        {"labels": {"environment": "prod"}, "monitored": True, "name": "payments"},
        format="json",
    )

    assert refused.status_code == 400 and refused.json()["code"] == "KV_TAB_UNREACHABLE"
    assert bad_label.status_code == 400 and bad_label.json()["code"] == "BAD_REQUEST"
    assert "prod, staging, dev, other" in bad_label.json()["error"]
    assert Cluster.objects.get(pk=record["id"]).endpoints == [remote_url]
    assert changed.status_code == 200
    assert changed.json() == {
        **record,
        "name": "payments",
        "labels": {"environment": "prod"},
        "monitored": True,
    }
    update = AuditLog.objects.filter(operation="cluster_update", success=True).get()
    assert update.params == "fields=labels,monitored,name password="


def test_delete_removes_the_record(api_client, remote_url):
    record = add_cluster(api_client, remote_url)

    response = api_client.delete(f"/api/clusters/{record['id']}")

    assert response.status_code == 204
    assert not Cluster.objects.filter(pk=record["id"]).exists()
    assert api_client.get(f"/api/clusters/{record['id']}").status_code == 404
    (entry,) = audits("cluster_delete")
    assert entry.success and entry.params == f"endpoints={remote_url}"


def test_another_users_own_cluster_is_an_unknown_id(api_client, bob_client, remote_url):
    bobs = add_tab(bob_client, remote_url)  # a tab is bob's own cluster

    mine = api_client.get("/api/clusters").json()["clusters"]
    responses = [
        api_client.get(f"/api/clusters/{bobs['id']}"),
        api_client.patch(f"/api/clusters/{bobs['id']}", {"name": "x"}, format="json"),
        api_client.delete(f"/api/clusters/{bobs['id']}"),
        api_client.get("/api/clusters/no-such-cluster"),
    ]

    assert [c["id"] for c in mine] == ["default"]
    for response in responses:
        assert response.status_code == 404
        assert response.json() == {"error": "cluster not found", "code": "CLUSTER_NOT_FOUND"}
    assert Cluster.objects.get(pk=bobs["id"]).name == bobs["name"]
    attempts = AuditLog.objects.filter(operation="kv_tab_cross_user_attempt")
    assert attempts.count() == 3 and {e.target for e in attempts} == {bobs["id"]}
    # Bob sees his tab as his own cluster.
    (own,) = [c for c in bob_client.get("/api/clusters").json()["clusters"] if c["owner"]]
    assert own["id"] == bobs["id"] and own["owner"] == "bob"
    assert own["endpoints"] == [remote_url] and own["monitored"] is False


def test_the_tab_limit_counts_a_users_own_clusters_only(api_client, remote_cluster, bob):
    now = services.timezone.now()
    Cluster.objects.bulk_create(
        [
            Cluster(name=f"s{i}", endpoints=[dead_url()], created_at=now, updated_at=now)
            for i in range(12)
        ]
    )  # shared clusters are no one's tabs
    for i in range(10):
        add_tab(api_client, remote_cluster.client_urls[0], name=f"t{i}")

    over = api_client.post(
        "/api/kv/tabs", {"endpoint": remote_cluster.client_urls[0]}, format="json"
    )

    assert over.status_code == 409 and over.json()["code"] == "KV_TAB_LIMIT_EXCEEDED"


def test_monitored_clusters_are_the_monitored_records_with_the_default(api_client, remote_url):
    watched = add_cluster(api_client, remote_url, name="b-watched", monitored=True)
    add_cluster(api_client, remote_url, name="a-quiet")
    Cluster.objects.filter(pk="default").delete()  # e.g. a flushed database: brought back

    records = selectors.monitored_clusters()

    assert [c.pk for c in records] == ["default", watched["id"]]
    assert selectors.monitored_cluster_ids() == ["default", watched["id"]]
    default = records[0]
    assert default.endpoints == django_settings.ETCD_ENDPOINTS
    assert cluster_gateway(default) is settings_gateway()
    assert list(cluster_gateway(records[1]).members()[0].client_urls) == [remote_url]


def test_listing_and_reading_take_a_fixed_number_of_queries(
    api_client, remote_url, django_assert_max_num_queries
):
    for name in ("a", "b", "c"):
        add_cluster(api_client, remote_url, name=name)

    with django_assert_max_num_queries(4):  # session, default record, the list
        response = api_client.get("/api/clusters")

    assert [c["name"] for c in response.json()["clusters"]][1:] == ["a", "b", "c"]


def test_migrate_writes_the_default_record_from_the_environment(db, settings):
    from django.core.management import call_command

    Cluster.objects.filter(pk="default").delete()
    settings.ETCD_ENDPOINTS = ["http://192.0.2.1:2379", "http://192.0.2.2:2379"]
    settings.ETCD_USERNAME = "monitor"
    settings.ETCD_PASSWORD = "env-secret"

    call_command("migrate", verbosity=0)

    default = Cluster.objects.get(pk="default")
    assert default.endpoints == settings.ETCD_ENDPOINTS and default.owner is None
    assert default.username == "monitor" and bytes(default.password_cipher) == b""
    assert default.to_dict()["has_password"] is True  # the environment's, never stored
    assert default.monitored is True


def test_a_bad_default_environment_label_fails_the_system_check(settings):
    from clusters.apps import check_default_environment

    settings.ETCD_CLUSTER_ENVIRONMENT = "production"

    (error,) = check_default_environment()

    assert error.id == "clusters.E001" and "prod, staging, dev, other" in error.msg
