"""Roles and READ_ONLY on the KV routes against the real cluster: a refused write leaves etcd
as it was, in the KV error dialect, audited under the attempted operation (issue 21)."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import AccountProfile
from audit.models import AuditLog
from etcdmonitor_site.policy import READ_ONLY_MESSAGE

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(etcd):
    name = f"/roles-{uuid.uuid4().hex[:8]}/k"
    etcd.put(name, "before")
    yield name
    etcd.put(name, "")  # leave nothing of value behind


def _client(username: str, roles: dict | None, **flags) -> APIClient:
    user = get_user_model().objects.create_user(username=username, password="x" * 12, **flags)
    AccountProfile.objects.create(user=user, roles=roles or {})
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def test_a_viewer_reads_but_cannot_write_and_etcd_is_untouched(key, etcd):
    viewer = _client("vic", {"*": "viewer"})

    read = viewer.get("/api/kv/v3/get", {"key": key})
    put = viewer.put("/api/kv/v3/put", {"key": key, "value": "after"}, format="json")
    delete = viewer.post("/api/kv/v3/delete", {"key": key}, format="json")

    assert read.status_code == 200 and read.json()["node"]["value"] == "before"
    text = "permission denied: put needs the operator role on cluster default"
    assert (put.status_code, put.json()) == (
        403,
        {"error": text, "code": "permission_denied", "message": text},
    )
    assert delete.status_code == 403
    assert etcd.get(key)[0] == b"before"
    denied = AuditLog.objects.filter(username="vic", success=False).order_by("pk")
    assert [(e.operation, e.result) for e in denied] == [
        ("put", text),
        ("delete", text.replace("put", "delete")),
    ]


def test_an_operator_of_another_cluster_is_a_viewer_here(key, etcd):
    client = _client("olga", {"*": "viewer", "elsewhere": "operator"})

    put = client.put("/api/kv/v3/put", {"key": key, "value": "after"}, format="json")

    assert put.status_code == 403
    assert etcd.get(key)[0] == b"before"


def test_an_operator_writes(key, etcd):
    operator = _client("otto", {"*": "operator"})

    put = operator.put("/api/kv/v3/put", {"key": key, "value": "after"}, format="json")

    assert put.status_code == 200
    assert etcd.get(key)[0] == b"after"


def test_read_only_refuses_a_superusers_writes_and_keeps_reads(key, etcd, settings):
    root = _client("root", None, is_staff=True, is_superuser=True)
    settings.READ_ONLY = True

    put = root.put("/api/kv/v3/put", {"key": key, "value": "after"}, format="json")
    delete = root.post("/api/kv/v3/delete", {"key": key}, format="json")
    v2 = root.put("/api/kv/v2/put", {"key": "/ro/x", "value": "after"}, format="json")
    read = root.get("/api/kv/v3/get", {"key": key})

    for response in (put, delete, v2):
        assert (response.status_code, response.json()["error"]) == (403, READ_ONLY_MESSAGE)
    assert read.status_code == 200
    assert etcd.get(key)[0] == b"before"
    refused = AuditLog.objects.filter(username="root", success=False)
    assert sorted(refused.values_list("operation", flat=True)) == ["delete", "put", "put"]
    assert set(refused.values_list("result", flat=True)) == {READ_ONLY_MESSAGE}

    settings.READ_ONLY = False
    again = root.put("/api/kv/v3/put", {"key": key, "value": "after"}, format="json")
    assert again.status_code == 200 and etcd.get(key)[0] == b"after"
