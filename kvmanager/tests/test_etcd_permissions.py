"""The KV API with non-root etcd credentials limited to one prefix (etcd auth enabled)."""

import pytest

from audit.models import AuditLog
from etcdgateway import reset_gateways
from tests.etcdctl import etcdctl

pytestmark = pytest.mark.django_db

PERMISSION_MESSAGE = (
    "permission denied: the configured etcd user does not have permission for this operation"
)


@pytest.fixture
def limited_cluster(etcd_cluster_factory, settings):
    """A one-member cluster with auth on; the app's user may read and write `/app/` only."""
    cluster = etcd_cluster_factory(size=1)
    endpoint = cluster.client_urls[0]
    etcdctl(endpoint, "put", "/other/secret", "s")
    etcdctl(endpoint, "user", "add", "root:rootpw")
    etcdctl(endpoint, "role", "add", "app")
    etcdctl(endpoint, "role", "grant-permission", "app", "--prefix=true", "readwrite", "/app/")
    etcdctl(endpoint, "user", "add", "app:apppw")
    etcdctl(endpoint, "user", "grant-role", "app", "app")
    etcdctl(endpoint, "auth", "enable")
    settings.ETCD_USERNAME, settings.ETCD_PASSWORD = "app", "apppw"
    reset_gateways()
    return cluster


def test_limited_user_works_inside_its_prefix(api, limited_cluster):
    put = api.put("/api/kv/v3/put", {"key": "/app/x", "value": "1", "ttl": 60}, format="json")

    assert put.status_code == 200 and put.json()["node"]["value"] == "1"
    assert api.get("/api/kv/v3/get", {"key": "/app/x"}).json()["node"]["value"] == "1"
    assert (
        api.put("/api/kv/v3/put", {"key": "/app/x", "value": "2"}, format="json").status_code == 200
    )
    listing = api.get("/api/kv/v3/list", {"prefix": "/app"}).json()
    assert [n["key"] for n in listing["nodes"]] == ["/app/x"]
    tree = api.get("/api/kv/v3/getpath", {"key": "/app"}).json()["node"]
    assert [n["key"] for n in tree["nodes"]] == ["/app/x"]
    assert api.post("/api/kv/v3/delete", {"key": "/app/x"}, format="json").status_code == 200
    assert api.get("/api/kv/v3/list", {"prefix": "/app"}).json()["nodes"] == []


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "/api/kv/v3/get", {"key": "/other/secret"}),
        ("get", "/api/kv/v3/keys", None),
        ("get", "/api/kv/v3/list", {"prefix": "/other"}),
        ("put", "/api/kv/v3/put", {"key": "/other/x", "value": "1"}),
        ("post", "/api/kv/v3/delete", {"key": "/other/secret"}),
    ],
)
def test_outside_its_prefix_the_answer_is_403_permission_denied(
    api, limited_cluster, method, path, data
):
    if method == "get":
        response = api.get(path, data)
    else:
        response = getattr(api, method)(path, data, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "error": PERMISSION_MESSAGE,
        "code": "permission_denied",
        "message": PERMISSION_MESSAGE,
    }
    if method != "get":
        entry = AuditLog.objects.get(target=data["key"])
        assert entry.success is False and "permission denied" in entry.result
