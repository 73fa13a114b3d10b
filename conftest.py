"""Test harness: a real 3-member etcd cluster, real PostgreSQL (via DATABASE_URL) and Redis.

`make test` sets DATABASE_URL to the local PostgreSQL. The session cluster is shared; tests that
kill or pause members ask for `etcd_cluster_factory` and get a cluster of their own.
"""

import os
import uuid

import pytest
from django.conf import settings

from devtools.localcluster import LocalEtcdCluster, etcd_binary, etcd_version
from etcdgateway import cluster_gateway, reset_gateways

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def pytest_report_header(config):
    """Which etcd the fixtures start (`make test-etcd35` sets ETCD_BIN_DIR)."""
    binary = etcd_binary()
    return f"etcd: {binary} (version {etcd_version(binary)})"


def _wait_published(cluster: LocalEtcdCluster, timeout: float = 15.0) -> None:
    """/health answers before every member's client URLs reach the others' MemberList
    (seen as a member without client URLs right after start): wait for all of them."""
    import time

    from etcdgateway import ClusterGateway
    from etcdgateway.config import ClusterConfig

    if cluster.tls or any("--client-cert-auth" in m.extra_args for m in cluster.members):
        return  # needs the test's own credentials
    gateway = ClusterGateway(ClusterConfig(endpoints=list(cluster.client_urls)))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                members = gateway.members()
            except Exception:  # noqa: BLE001 - still starting: try again
                members = []
            if len(members) == len(cluster.members) and all(m.client_urls for m in members):
                return
            time.sleep(0.1)
    finally:
        gateway.close()


def _point_settings_at(cluster: LocalEtcdCluster) -> None:
    settings.ETCD_ENDPOINTS = list(cluster.client_urls)
    reset_gateways()


@pytest.fixture(scope="session")
def etcd_cluster(tmp_path_factory):
    """The session's 3-member cluster (v2 enabled); settings.ETCD_ENDPOINTS points at it."""
    cluster = LocalEtcdCluster(tmp_path_factory.mktemp("etcd-session")).start()
    _wait_published(cluster)
    previous = settings.ETCD_ENDPOINTS
    _point_settings_at(cluster)
    yield cluster
    settings.ETCD_ENDPOINTS = previous
    reset_gateways()
    for member in cluster.members:  # no test may kill a shared member: say which one died
        if member.process is not None and member.process.poll() is not None:
            log_tail = member.log_path.read_text(errors="replace")[-3000:]
            print(f"\nsession etcd {member.name} exited ({member.process.returncode}):\n{log_tail}")
    cluster.remove()


@pytest.fixture(scope="session")
def etcd_server_version() -> str:
    """The version of the etcd binary the fixtures start, e.g. "3.5.30"."""
    return etcd_version()


@pytest.fixture(autouse=True)
def _use_session_cluster(request, etcd_cluster):
    """Every test talks to the session cluster unless it starts its own."""
    own_cluster = "etcd_cluster_factory" in request.fixturenames
    if not own_cluster and etcd_cluster.client_urls != settings.ETCD_ENDPOINTS:
        _point_settings_at(etcd_cluster)
    yield


@pytest.fixture
def etcd_cluster_factory(tmp_path, etcd_cluster):
    """Start private clusters (for fault tests); each is killed by PID when the test ends."""
    started: list[LocalEtcdCluster] = []

    def start(size: int = 3, *, point_settings: bool = True, **kwargs) -> LocalEtcdCluster:
        cluster = LocalEtcdCluster(tmp_path / f"etcd-{len(started)}", size=size, **kwargs)
        started.append(cluster)
        cluster.start()
        _wait_published(cluster)
        if point_settings:
            _point_settings_at(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.remove()
    # Module fixtures set up before the next test's autouse fixture must not see a dead cluster.
    _point_settings_at(etcd_cluster)


@pytest.fixture
def kv_prefix(etcd_cluster):
    """A key prefix of this test's own in the session cluster, deleted afterwards."""
    prefix = f"/etcdmonitor-test/{uuid.uuid4().hex[:10]}/"
    yield prefix
    cluster_gateway().kv(lambda client: client.delete_prefix(prefix))


@pytest.fixture
def redis_url():
    """The local Redis (a test database number), flushed before and after."""
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_timeout=2)
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()
    client.close()


# --- accounts: an isolated DATA_DIR, the admin user and an authenticated API client ---------------

ADMIN_TEST_PASSWORD = "admin-test-password"  # noqa: S105 - fixed test password


@pytest.fixture(autouse=True)
def _no_request_caches(settings):
    """Tests change sessions and samples behind the app's back (UPDATE expires_at, direct
    inserts): read them every time unless a test turns AUTH_CACHE_SECONDS or
    CURRENT_CACHE_SECONDS on."""
    from accounts.selectors import forget_session_rows
    from monitoring.selectors import forget_latest_json

    settings.AUTH_CACHE_SECONDS = 0
    settings.CURRENT_CACHE_SECONDS = 0
    yield
    forget_session_rows()
    forget_latest_json()


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_dir(tmp_path_factory):
    """The test database's bootstrap (post_migrate) and every test write runtime files into a
    throwaway DATA_DIR, never into the developer's ./data (its initial password would be lost)."""
    previous = settings.DATA_DIR
    data_dir = tmp_path_factory.mktemp("data-dir")
    data_dir.chmod(0o700)
    settings.DATA_DIR = data_dir
    yield data_dir
    settings.DATA_DIR = previous


@pytest.fixture
def admin_user(db):
    """The `admin` user with password ADMIN_TEST_PASSWORD, no forced change, not locked."""
    from django.contrib.auth import get_user_model

    from accounts.models import AccountProfile

    user, _ = get_user_model().objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    user.set_password(ADMIN_TEST_PASSWORD)
    user.is_active = user.is_staff = user.is_superuser = True
    user.save()
    AccountProfile.objects.update_or_create(
        user=user,
        defaults={"must_change_password": False},
    )
    return user


@pytest.fixture
def auth_header():
    """`auth_header(user)` → {"HTTP_AUTHORIZATION": "Bearer <token>"} for a real new session."""
    from accounts.services import session_create

    def make(user) -> dict:
        token, _ = session_create(user=user)
        return {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    return make


@pytest.fixture
def bearer_client(auth_header):
    """`bearer_client(user)` → a DRF APIClient signed in as `user` by a real bearer token."""
    from rest_framework.test import APIClient

    def make(user):
        client = APIClient()
        client.credentials(**auth_header(user))
        client.user = user
        return client

    return make


@pytest.fixture
def api_client(admin_user, bearer_client):
    """A DRF APIClient authenticated as `admin` by a real bearer token of the session service."""
    return bearer_client(admin_user)
