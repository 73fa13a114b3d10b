"""Fixtures and helpers of the KV tab tests: a second etcd cluster, a second user."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import AccountProfile
from devtools.localcluster import LocalEtcdCluster, free_port
from etcdgateway import ClusterConfig, cluster_gateway
from kvmanager.tests.conftest import etcd  # noqa: F401 - the default cluster, to check it untouched
from tests.etcdctl import etcdctl


@pytest.fixture(scope="module")
def remote_cluster(tmp_path_factory, etcd_cluster):
    """A one-member cluster that is not the configured one (what a user adds as a tab)."""
    cluster = LocalEtcdCluster(tmp_path_factory.mktemp("tabs-remote"), size=1).start()
    yield cluster
    cluster.remove()


@pytest.fixture
def remote_url(remote_cluster) -> str:
    return remote_cluster.client_urls[0]


def remote_get(url: str, key: str, **credentials):
    """A key's value read straight from a cluster (not through the API)."""
    gateway = cluster_gateway(ClusterConfig(endpoints=(url,), **credentials))
    return gateway.kv(lambda c: c.get(key))[0]


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def auth_cluster(etcd_cluster_factory):
    """A separate one-member cluster with etcd auth on: user root / rootpw."""
    cluster = etcd_cluster_factory(size=1, point_settings=False)
    url = cluster.client_urls[0]
    etcdctl(url, "user", "add", "root:rootpw")
    etcdctl(url, "auth", "enable")
    return cluster


@pytest.fixture
def bob(db):
    """An operator on every cluster (adding KV tabs needs it), neither staff nor admin."""
    user = get_user_model().objects.create_user(username="bob", password="b" * 12)
    AccountProfile.objects.create(user=user, roles={"*": "operator"})
    return user


@pytest.fixture
def bob_client(bob, bearer_client):
    """A second dashboard user, authenticated by a real bearer token."""
    return bearer_client(bob)


def add_tab(client, url: str, **fields) -> dict:
    response = client.post("/api/kv/tabs", {"endpoint": url, **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["tab"]
