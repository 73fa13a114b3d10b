"""Values near etcd's request limit, through the API against real etcd (default limits).

etcd 3.4 refuses a v3 request over `--max-request-bytes` (1.5 MiB by default) with
"etcdserver: request is too large", and one over that + 512 KiB already in gRPC
("received message larger than max", RESOURCE_EXHAUSTED — the code NOSPACE also uses). The v2 API
has no such limit but Go's form parser refuses bodies over 10 MiB.
"""

import base64
import os
import re

import grpc
import httpx
import pytest

from audit.models import AuditLog
from etcdgateway import (
    EtcdError,
    EtcdInvalidRequest,
    EtcdRequestTooLarge,
    EtcdResponseTooLarge,
    EtcdSpaceExceeded,
    cluster_gateway,
)
from etcdgateway.errors import translate
from tests.etcdctl import etcdctl

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
NEAR_LIMIT = int(1.4 * MIB)  # etcdctl put accepts it with etcd's default --max-request-bytes
OVER_LIMIT = int(1.6 * MIB)  # over --max-request-bytes, under gRPC's receive limit
FAR_OVER_LIMIT = int(1.9 * MIB)  # sent twice it would pass gRPC's limit: the old put did that


def _grpc_bytes_received(cluster) -> int:
    """Bytes every member's gRPC server received from clients (etcd's own counter)."""
    total = 0
    for url in cluster.client_urls:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        total += sum(
            int(float(m))
            for m in re.findall(
                r"^etcd_network_client_grpc_received_bytes_total\S* (\S+)$", text, re.M
            )
        )
    return total


def _put_v3(api, key, value: bytes):
    body = {"key": key, "value": base64.b64encode(value).decode(), "encoding": "base64"}
    return api.put("/api/kv/v3/put", body, format="json")


def _read_v3(api, key) -> bytes:
    node = api.get("/api/kv/v3/get", {"key": key}).json()["node"]
    return (
        base64.b64decode(node["value"])
        if node.get("encoding") == "base64"
        else node["value"].encode()
    )


def test_a_value_etcdctl_accepts_is_accepted_by_the_v3_put_and_sent_once(
    api, kv_prefix, etcd, etcd_cluster
):
    value = os.urandom(NEAR_LIMIT)
    etcdctl(etcd_cluster.client_urls[0], "put", f"{kv_prefix}by-etcdctl", stdin=value)
    assert etcd.get(f"{kv_prefix}by-etcdctl")[0] == value

    key = f"{kv_prefix}by-api"
    before = _grpc_bytes_received(etcd_cluster)
    response = _put_v3(api, key, value)
    sent = _grpc_bytes_received(etcd_cluster) - before

    assert response.status_code == 200, response.json()
    assert _read_v3(api, key) == value
    # The put, its lease lookup and the re-read: the value once plus small change.
    print(f"bytes received by etcd for a {NEAR_LIMIT}-byte put: {sent}")
    assert NEAR_LIMIT < sent < NEAR_LIMIT + 64 * 1024, sent


def test_a_near_limit_update_keeps_the_keys_lease(api, kv_prefix, etcd):
    key = f"{kv_prefix}leased"
    lease = etcd.lease(600)
    etcd.put(key, "small", lease=lease)
    value = os.urandom(NEAR_LIMIT)

    response = _put_v3(api, key, value)

    assert response.status_code == 200, response.json()
    stored, meta = etcd.get(key)
    assert stored == value and meta.lease_id == lease.id
    assert 0 < response.json()["node"]["ttl"] <= 600


def test_a_near_limit_value_is_accepted_by_the_v2_put(api, kv_prefix):
    key = f"{kv_prefix.rstrip('/')}/v2-big"
    value = ("0123456789abcdef☃\n" * (NEAR_LIMIT // 20))[: NEAR_LIMIT // 2]
    value = value + "x" * (NEAR_LIMIT - len(value.encode()))
    assert len(value.encode()) == NEAR_LIMIT

    response = api.put("/api/kv/v2/put", {"key": key, "value": value}, format="json")

    assert response.status_code == 200, response.json()
    assert api.get("/api/kv/v2/get", {"key": key}).json()["node"]["value"] == value
    api.post("/api/kv/v2/delete", {"key": key}, format="json")


@pytest.mark.parametrize("size", [OVER_LIMIT, FAR_OVER_LIMIT])
@pytest.mark.parametrize("ttl", [None, 0, 60])
def test_a_value_over_etcds_request_limit_is_413_naming_the_limit(api, kv_prefix, etcd, size, ttl):
    key = f"{kv_prefix}too-big"
    body = {"key": key, "value": "v" * size}
    if ttl is not None:
        body["ttl"] = ttl

    response = api.put("/api/kv/v3/put", body, format="json")

    assert response.status_code == 413, response.json()
    message = response.json()["error"]
    assert response.json()["code"] == "etcd_request_too_large"
    assert "request size limit" in message and "--max-request-bytes" in message
    assert str(size) in message
    assert "NOSPACE" not in message and "space" not in message
    assert etcd.get(key)[0] is None
    entry = AuditLog.objects.filter(operation="put", target=key).latest("id")
    assert entry.success is False and entry.result == message


def test_a_v2_value_over_etcds_form_limit_is_413_naming_the_limit(api, kv_prefix, settings):
    settings.KV_MAX_VALUE_SIZE = 12 * MIB
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * MIB
    key = f"{kv_prefix.rstrip('/')}/v2-too-big"

    response = api.put("/api/kv/v2/put", {"key": key, "value": "v" * (10 * MIB)}, format="json")

    assert response.status_code == 413, response.json()
    message = response.json()["error"]
    assert "request size limit" in message and "NOSPACE" not in message
    entry = AuditLog.objects.filter(operation="put", target=key).latest("id")
    assert entry.success is False and entry.result == message


def test_a_value_at_kv_max_value_size_is_not_refused_by_django_first(api, kv_prefix, settings):
    """A base64 value of KV_MAX_VALUE_SIZE bytes fits the request body limit; etcd decides."""
    value = os.urandom(settings.KV_MAX_VALUE_SIZE)

    response = _put_v3(api, f"{kv_prefix}max", value)

    # 2 MiB is over etcd's default request limit: etcd's answer, not Django's body limit.
    assert response.status_code == 413
    assert response.json()["code"] == "etcd_request_too_large"


def test_nospace_is_507_and_audited_with_the_same_message(api, etcd_cluster_factory):
    etcd_cluster_factory(size=1, extra_args=["--quota-backend-bytes=2097152"])
    gateway = cluster_gateway()
    with pytest.raises(Exception) as raised:
        for i in range(200):
            gateway.kv(lambda c, i=i: c.put(f"/fill/{i % 5}", b"z" * 200_000))
    assert getattr(raised.value, "status_code", None) == 507

    response = api.put("/api/kv/v3/put", {"key": "/after", "value": "small"}, format="json")

    assert response.status_code == 507, response.json()
    message = response.json()["error"]
    assert "NOSPACE" in message and "request size" not in message
    entry = AuditLog.objects.filter(operation="put", target="/after").latest("id")
    assert entry.success is False and entry.result == message


class _RpcError(grpc.RpcError):
    """A gRPC failure as grpcio raises it (code + details), for the classification table."""

    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        ("RESOURCE_EXHAUSTED", "etcdserver: mvcc: database space exceeded", EtcdSpaceExceeded),
        (
            "RESOURCE_EXHAUSTED",
            "grpc: received message larger than max (2936157 vs. 2097152)",
            EtcdRequestTooLarge,
        ),
        ("RESOURCE_EXHAUSTED", "Sent message larger than max (9 vs. 8)", EtcdRequestTooLarge),
        ("RESOURCE_EXHAUSTED", "Received message larger than max (9 vs. 8)", EtcdResponseTooLarge),
        ("RESOURCE_EXHAUSTED", "etcdserver: too many requests", EtcdError),
        ("INVALID_ARGUMENT", "etcdserver: request is too large", EtcdRequestTooLarge),
        ("INVALID_ARGUMENT", "etcdserver: key is not provided", EtcdInvalidRequest),
    ],
)
def test_only_nospace_is_a_space_error(code, details, expected):
    """The gRPC texts above are the ones etcd 3.4 and grpcio produce (seen in the tests here)."""
    error = translate(_RpcError(getattr(grpc.StatusCode, code), details))

    assert type(error) is expected
    assert details in error.message
    assert (error.status_code == 507) == (expected is EtcdSpaceExceeded)
