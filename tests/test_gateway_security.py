"""The gateway against etcd with auth enabled and against an mTLS-only member, the sync calls
and the asyncio watch (the journal's) alike."""

import asyncio
import time

import httpx
import pytest

from devtools.localcluster import etcd_version, make_test_certificates
from etcdgateway import (
    ClusterConfig,
    EtcdAuthFailed,
    EtcdPermissionDenied,
    EtcdUnavailable,
    Transfers,
    cluster_gateway,
)
from etcdgateway.aiowatch import AsyncGateway
from tests.etcdctl import etcdctl
from tests.loops import run_on_a_thread


@pytest.fixture
def auth_cluster(etcd_cluster_factory):
    """One member with auth on: root, and `app` who may only read/write under /allowed/."""
    cluster = etcd_cluster_factory(size=1, point_settings=False, extra_args=["--auth-token-ttl=1"])
    url = cluster.client_urls[0]
    etcdctl(url, "user", "add", "root:rootpw")
    etcdctl(url, "role", "add", "app-role")
    etcdctl(url, "role", "grant-permission", "app-role", "--prefix=true", "readwrite", "/allowed/")
    etcdctl(url, "user", "add", "app:apppw")
    etcdctl(url, "user", "grant-role", "app", "app-role")
    etcdctl(url, "auth", "enable")
    return cluster


def test_username_password_work_over_a_plaintext_channel(auth_cluster):
    gateway = cluster_gateway(
        ClusterConfig(endpoints=tuple(auth_cluster.client_urls), username="root", password="rootpw")
    )

    assert len(gateway.members()) == 1
    gateway.kv(lambda c: c.put("/anything", b"v"))
    assert gateway.kv(lambda c: c.get("/anything"))[0] == b"v"


def test_expired_auth_token_is_renewed_transparently(auth_cluster):
    config = ClusterConfig(
        endpoints=tuple(auth_cluster.client_urls), username="root", password="rootpw"
    )
    client = cluster_gateway(config).client_for(auth_cluster.client_urls[0])
    client.call(lambda c: c.put("/k", b"1"))
    first_token = client.raw.metadata

    time.sleep(2.5)  # --auth-token-ttl=1: the simple token has expired
    assert client.call(lambda c: c.get("/k"))[0] == b"1"

    assert client.raw.metadata != first_token, "a new token was fetched"


def test_wrong_etcd_password_is_auth_failed_without_echoing_it(auth_cluster):
    gateway = cluster_gateway(
        ClusterConfig(
            endpoints=tuple(auth_cluster.client_urls), username="root", password="not-the-password"
        )
    )

    with pytest.raises(EtcdAuthFailed) as raised:
        gateway.members()

    assert raised.value.status_code == 403
    assert "not-the-password" not in raised.value.message
    assert "not-the-password" not in repr(gateway.config)


def test_permission_denied_outside_the_granted_prefix(auth_cluster):
    gateway = cluster_gateway(
        ClusterConfig(endpoints=tuple(auth_cluster.client_urls), username="app", password="apppw")
    )
    gateway.kv(lambda c: c.put("/allowed/x", b"1"))

    with pytest.raises(EtcdPermissionDenied) as raised:
        gateway.kv(lambda c: c.put("/forbidden/x", b"1"))

    assert raised.value.status_code == 403
    assert "permission denied" in raised.value.message


@pytest.fixture
def tls_cluster(etcd_cluster_factory, tmp_path):
    files = make_test_certificates(tmp_path / "pki")
    cluster = etcd_cluster_factory(size=1, point_settings=False, tls=files)
    return cluster, files


def test_mtls_member_over_grpc_and_https(tls_cluster):
    cluster, files = tls_cluster
    config = ClusterConfig(
        endpoints=tuple(cluster.client_urls),
        ca_cert=str(files.ca),
        client_cert=str(files.client_cert),
        client_key=str(files.client_key),
    )
    gateway = cluster_gateway(config)

    assert gateway.status().version.startswith("3.")
    with gateway.http_client() as http:
        response = http.get(f"{cluster.client_urls[0]}/metrics")
    assert response.status_code == 200 and "etcd_server_has_leader" in response.text
    # the collector's own client (libcurl) with the same TLS material
    assert "etcd_server_has_leader" in gateway.scraper().fetch(cluster.client_urls[0], "/metrics")


def test_mtls_member_without_a_client_certificate_is_unavailable(tls_cluster):
    cluster, files = tls_cluster
    gateway = cluster_gateway(
        ClusterConfig(endpoints=tuple(cluster.client_urls), ca_cert=str(files.ca))
    )

    with pytest.raises(EtcdUnavailable):
        gateway.status()
    with gateway.http_client() as http, pytest.raises(httpx.TransportError):
        http.get(f"{cluster.client_urls[0]}/metrics")
    with pytest.raises(EtcdUnavailable):
        gateway.scraper().fetch(cluster.client_urls[0], "/metrics")


def test_untrusted_server_certificate_is_refused_unless_verification_is_skipped(tls_cluster):
    cluster, files = tls_cluster
    common = dict(
        endpoints=tuple(cluster.client_urls),
        client_cert=str(files.client_cert),
        client_key=str(files.client_key),
    )

    # The system CAs do not know our test CA.
    with (
        cluster_gateway(ClusterConfig(**common)).http_client() as http,
        pytest.raises(httpx.ConnectError),
    ):
        http.get(f"{cluster.client_urls[0]}/health")
    with pytest.raises(EtcdUnavailable):
        cluster_gateway(ClusterConfig(**common)).status()
    with pytest.raises(EtcdUnavailable, match="TLS failed"):
        cluster_gateway(ClusterConfig(**common)).scraper().fetch(cluster.client_urls[0], "/metrics")

    skipping = cluster_gateway(ClusterConfig(**common, insecure_skip_verify=True))
    with skipping.http_client() as http:
        assert http.get(f"{cluster.client_urls[0]}/health").status_code == 200
    assert skipping.status().version.startswith("3.")
    assert "etcd_server_has_leader" in skipping.scraper().fetch(cluster.client_urls[0], "/metrics")


def _watched(config: ClusterConfig, key: bytes, *, sleep: float = 0) -> list[bytes]:
    """Put `key`, then read it back through the asyncio watch (the journal's) from its
    revision: the values of the first batch with events. With `sleep`, a second watch is opened
    on the same gateway that long after the first (past an auth token's TTL)."""
    revision = cluster_gateway(config).put(key, b"watched", ttl=None)

    async def follow() -> list[bytes]:
        gateway = AsyncGateway(cluster_gateway(config))
        try:
            for delay in (0, sleep) if sleep else (0,):
                await asyncio.sleep(delay)
                watch = await gateway.watch(key, start_revision=revision)
                try:
                    batch = await watch.next()
                    while not batch.events:  # the created reply
                        batch = await watch.next()
                finally:
                    watch.close()
            return [event.value for event in batch.events]
        finally:
            await gateway.close()

    return run_on_a_thread(follow())


def test_the_asyncio_watch_authenticates_and_renews_an_expired_token(auth_cluster):
    config = ClusterConfig(
        endpoints=tuple(auth_cluster.client_urls), username="root", password="rootpw"
    )

    assert _watched(config, b"/allowed/aio", sleep=2.5) == [b"watched"]

    wrong = ClusterConfig(endpoints=config.endpoints, username="root", password="wrong")
    with pytest.raises(EtcdAuthFailed):
        run_on_a_thread(_revision(wrong))


async def _revision(config: ClusterConfig) -> int:
    gateway = AsyncGateway(cluster_gateway(config))
    try:
        return await gateway.revision()
    finally:
        await gateway.close()


def test_the_asyncio_watch_speaks_mtls_and_can_skip_verification(tls_cluster):
    cluster, files = tls_cluster
    common = dict(
        endpoints=tuple(cluster.client_urls),
        client_cert=str(files.client_cert),
        client_key=str(files.client_key),
    )

    assert _watched(ClusterConfig(**common, ca_cert=str(files.ca)), b"/aio-tls") == [b"watched"]
    skipping = ClusterConfig(**common, insecure_skip_verify=True)
    assert run_on_a_thread(_revision(skipping)) > 0
    with pytest.raises(EtcdUnavailable):  # the system CAs do not know our test CA
        run_on_a_thread(_revision(ClusterConfig(**common, connect_timeout=2.0)))


def test_a_round_status_call_waits_for_no_token_and_renews_an_expired_one(auth_cluster):
    """With auth, a call started on a `Transfers` needs the token fetched first (by a call of
    its own, which may wait); an expired token is renewed when the outcome is settled."""
    config = ClusterConfig(
        endpoints=tuple(auth_cluster.client_urls), username="root", password="rootpw"
    )
    client = cluster_gateway(config).client_for(auth_cluster.client_urls[0], timeout=2)
    assert not client.can_start()  # no token yet: the prober calls it on a thread of its own
    expected = client.status()
    assert client.can_start()
    first_token = client.raw.metadata

    time.sleep(2.5)  # --auth-token-ttl=1: the simple token has expired
    transfers = Transfers()
    try:
        heard = []
        client.start_status(transfers, done=heard.append, timeout=2)
        transfers.run(time.monotonic() + 10, early=False)
    finally:
        transfers.close()
    assert client.status_settled(heard[0], timeout=2).member_id == expected.member_id
    if isinstance(heard[0], bytes):
        assert etcd_version().startswith("3.4")  # 3.4 answers Status without checking a token
    else:  # 3.5 refused the expired token: settling renewed it and called again
        assert client.settling_calls(heard[0])
        assert client.raw.metadata != first_token, "a new token was fetched"
