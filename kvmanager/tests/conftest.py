"""Fixtures of the kvmanager tests: an authenticated API client and a raw v3 handle."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import AccountProfile
from etcdgateway import cluster_gateway


@pytest.fixture
def user(db):
    """A KV writer: the operator role on every cluster (writes need it; issue 21)."""
    user = get_user_model().objects.create_user(username="kvadmin", password="x" * 12)
    AccountProfile.objects.create(user=user, roles={"*": "operator"})
    return user


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def etcd():
    """Direct pyetcd access to the configured cluster, to arrange and check state."""

    class Etcd:
        def put(self, key, value=b"", lease=None):
            if isinstance(value, str):
                value = value.encode()
            cluster_gateway().kv(lambda c: c.put(key, value, lease=lease))

        def get(self, key):
            return cluster_gateway().kv(lambda c: c.get(key))

        def lease(self, ttl):
            return cluster_gateway().kv(lambda c: c.lease(ttl))

        def keys(self, prefix):
            return sorted(
                meta.key.decode()
                for _, meta in cluster_gateway().kv(
                    lambda c: list(c.get_prefix(prefix, keys_only=True))
                )
            )

    return Etcd()
