"""The client IP helper (TRUSTED_PROXIES) and etcd's auth probe (audit retention: audit/tests)."""

import pytest
from django.test import RequestFactory

from accounts import selectors
from audit.models import AuditLog
from etcdmonitor_site.clientip import client_ip

factory = RequestFactory()


def _request(remote, forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return factory.get("/", **extra)


def test_forwarded_for_is_ignored_from_untrusted_peers(settings):
    settings.TRUSTED_PROXIES = []

    assert client_ip(_request("203.0.113.5", "127.0.0.1")) == "203.0.113.5"


def test_forwarded_for_is_believed_from_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_ip(_request("10.0.0.2", "198.51.100.7")) == "198.51.100.7"


def test_spoofed_left_entries_behind_a_trusted_proxy_are_ignored(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.2", "10.0.0.3"]

    ip = client_ip(_request("10.0.0.2", "127.0.0.1, 198.51.100.7, 10.0.0.3"))

    assert ip == "198.51.100.7"


def test_garbage_forwarded_for_falls_back_to_the_peer(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.2"]

    assert client_ip(_request("10.0.0.2", "not-an-ip")) == "10.0.0.2"
    assert client_ip(_request("10.0.0.2")) == "10.0.0.2"


@pytest.mark.django_db
def test_login_audit_uses_the_trusted_client_ip(settings):
    from rest_framework.test import APIClient

    settings.TRUSTED_PROXIES = []
    APIClient().post(
        "/api/auth/login",
        {"username": "x", "password": "y"},
        format="json",
        REMOTE_ADDR="192.0.2.9",
        HTTP_X_FORWARDED_FOR="127.0.0.1",
    )

    assert AuditLog.objects.get(operation="login").client_ip == "192.0.2.9"


def test_etcd_auth_is_reported_disabled_on_the_test_cluster(etcd_cluster):
    assert selectors.etcd_auth_required(refresh=True) is False


def test_etcd_auth_is_reported_enabled_when_etcd_requires_it(etcd_cluster_factory, settings):
    from pyetcd import etcdrpc

    from etcdgateway import cluster_gateway, reset_gateways

    cluster_etcd = etcd_cluster_factory(size=1)

    def enable_auth(client):
        client.call(
            lambda raw: raw.authstub.UserAdd(
                etcdrpc.AuthUserAddRequest(name="root", password="rootpw"), 5
            )
        )
        client.call(
            lambda raw: raw.authstub.UserGrantRole(
                etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"), 5
            )
        )
        client.call(lambda raw: raw.authstub.AuthEnable(etcdrpc.AuthEnableRequest(), 5))

    cluster_gateway().call(enable_auth)
    reset_gateways()
    assert cluster_etcd.client_urls == settings.ETCD_ENDPOINTS

    assert selectors.etcd_auth_required(refresh=True) is True


def test_etcd_auth_defaults_to_true_when_etcd_is_unreachable(etcd_cluster_factory):
    etcd_cluster_factory(size=1).stop()

    assert selectors.etcd_auth_required(refresh=True) is True
