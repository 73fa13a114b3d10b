"""ETCD_METRICS_URLS: metrics from listeners of their own (kubeadm's --listen-metrics-urls)
while the client URLs demand client certificates, on real clusters through the API."""

import ssl
import urllib.request

import httpx
import pytest
from django.core import checks

from devtools.localcluster import free_port, make_test_certificates
from etcdgateway import reset_gateways
from monitoring import services
from monitoring.models import Member
from monitoring.services import metrics_targets

pytestmark = pytest.mark.usefixtures("fresh_slot_cache")

HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


@pytest.fixture
def mtls_cluster(etcd_cluster_factory, settings, tmp_path):
    """Start a cluster, one loopback host per member, mTLS on the client URLs and a plain-HTTP
    metrics listener each; point the settings at it (client certificate for the gRPC calls)."""

    def start(metrics_ports, metrics_urls):
        files = make_test_certificates(tmp_path / "pki")
        cluster = etcd_cluster_factory(
            tls=files, hosts=HOSTS, metrics_ports=metrics_ports, point_settings=False
        )
        settings.ETCD_ENDPOINTS = cluster.client_urls
        settings.ETCD_TLS_CA_CERT = str(files.ca)
        settings.ETCD_TLS_CERT = str(files.client_cert)
        settings.ETCD_TLS_KEY = str(files.client_key)
        settings.ETCD_METRICS_PATH = "/not-the-metrics"  # proves the client URL is not scraped
        settings.ETCD_METRICS_URLS = metrics_urls(cluster)
        reset_gateways()
        return cluster

    yield start
    reset_gateways()


def _client_url_needs_a_certificate(cluster):
    member = cluster.members[0]
    context = ssl.create_default_context(cafile=str(cluster.tls.ca))
    with pytest.raises(OSError):  # the TLS handshake fails without a client certificate
        urllib.request.urlopen(f"{member.client_url}/metrics", context=context, timeout=5)
    # …and the metrics port answers anyone, in plain HTTP.
    assert "etcd_server_has_leader" in httpx.get(member.metrics_url, timeout=5).text


def _assert_collected_from_every_member(api, report):
    assert [entry.get("error") for entry in report.members if not entry["up"]] == []
    assert len(report.members) == 3
    for member in Member.objects.all():
        metrics = api.get(f"/api/current?member_id={member.member_id}").json()["metrics"]
        assert metrics["collector_up"] == 1 and metrics["etcd_server_has_leader"] == 1
        assert metrics["etcd_mvcc_db_total_size_in_bytes"] > 0


@pytest.mark.django_db
def test_a_host_template_scrapes_each_members_metrics_port(api, mtls_cluster):
    port = free_port()
    cluster = mtls_cluster([port] * 3, lambda _: [f"http://{{host}}:{port}/metrics"])
    _client_url_needs_a_certificate(cluster)

    report = services.collect_cluster()

    _assert_collected_from_every_member(api, report)


@pytest.mark.django_db
def test_a_list_of_metrics_urls_is_matched_to_members_by_host(api, mtls_cluster, settings):
    ports = [free_port() for _ in HOSTS]
    cluster = mtls_cluster(ports, lambda c: [m.metrics_url for m in reversed(c.members)])
    _client_url_needs_a_certificate(cluster)

    _assert_collected_from_every_member(api, services.collect_cluster())

    # A wrong port for one member: that member is down with the listener's error, not
    # silently scraped elsewhere; the others go on.
    wrong = f"http://{HOSTS[1]}:{free_port()}/metrics"
    settings.ETCD_METRICS_URLS = [
        cluster.members[0].metrics_url,
        wrong,
        cluster.members[2].metrics_url,
    ]
    reset_gateways()
    report = services.collect_cluster()
    down = {entry["name"]: entry["error"] for entry in report.members if not entry["up"]}
    assert list(down) == ["m2"] and "connection refused" in down["m2"]
    assert f"{HOSTS[1]}:" in down["m2"]

    settings.ETCD_METRICS_URLS = [cluster.members[0].metrics_url]
    reset_gateways()
    report = services.collect_cluster()
    down = {entry["name"]: entry["error"] for entry in report.members if not entry["up"]}
    assert sorted(down) == ["m2", "m3"]
    assert "no ETCD_METRICS_URLS entry" in down["m3"]
    current = api.get("/api/status").json()
    assert current["collector_up"] is True  # m1, the default member, is still collected


def _member(name, url, peer=None):
    return Member(
        member_id=name, name=name, scrape_url=url, client_urls=[url], peer_urls=[peer or url]
    )


def test_matching_rules_never_guess():
    members = [
        _member("a", "https://10.0.0.1:2379"),
        _member("b", "https://etcd-b.example:2379", peer="https://10.0.0.2:2380"),
        _member("c", "https://[fd00::3]:2379"),
    ]

    template = metrics_targets(members, ("http://{host}:2381/metrics",))
    listed = metrics_targets(
        members, ("http://10.0.0.2:2381/metrics", "http://10.0.0.1:2381/metrics")
    )
    shared = metrics_targets(
        [_member("x", "https://10.0.0.9:2379"), _member("y", "https://10.0.0.9:22379")],
        ("http://10.0.0.9:2381/metrics",),
    )

    assert template["c"].url == "http://[fd00::3]:2381/metrics"
    assert template["b"].url == "http://etcd-b.example:2381/metrics"
    assert listed["a"].url == "http://10.0.0.1:2381/metrics"
    assert listed["b"].url == "http://10.0.0.2:2381/metrics"  # by its peer URL's host
    assert "no ETCD_METRICS_URLS entry" in listed["c"].error
    assert all("same host" in t.error and not t.url for t in shared.values())
    assert metrics_targets(members, ())["a"] == services.MetricsTarget()


@pytest.mark.parametrize(
    ("urls", "problem"),
    [
        (["http://{host}:2381/metrics", "http://10.0.0.1:2381/metrics"], "only entry"),
        (["http://{hostname}:2381/metrics"], "only placeholder"),
        (["ftp://10.0.0.1/metrics"], "not an http(s) URL"),
        (["http://10.0.0.1:notaport/metrics"], "not a URL"),
        (["http://x{host}:2381/metrics"], "whole host part"),
    ],
)
def test_a_bad_metrics_urls_setting_is_a_system_check_error(settings, urls, problem):
    settings.ETCD_METRICS_URLS = urls

    errors = [m for m in checks.run_checks() if m.id == "monitoring.E001"]

    assert len(errors) == 1 and problem in errors[0].msg
    settings.ETCD_METRICS_URLS = ["http://{host}:2381/metrics"]
    assert not [m for m in checks.run_checks() if m.id == "monitoring.E001"]
