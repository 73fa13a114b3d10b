"""What differs between etcd versions, against the running etcd (3.4 under `make test`, 3.5
under `make test-etcd35`): metric names a version does not export are named, never a silently
blank chart; the /metrics content type; health endpoints; etcd 3.6's Status quota."""

import time
import urllib.error
import urllib.request

import pytest
from pyetcd import etcdrpc

from etcdgateway import cluster_gateway
from etcdgateway.client import decode_status
from monitoring import metrics, services
from monitoring.models import Member
from monitoring.panels import CARD_METRICS, dashboard_registry
from monitoring.tests.expected_keys import stored_key_names
from tests.test_status_decoding import _field_bytes, _field_varint, _known_part

pytestmark = pytest.mark.usefixtures("fresh_slot_cache")

# panel id → the stored metric names its chart asks /api/range for, as the page gets them.
PANEL_METRICS = {
    panel["id"]: [series["metric"] for series in panel["series"]]
    for panel in dashboard_registry()["panels"]
}
ALL_PANEL_METRICS = sorted(
    {name for names in PANEL_METRICS.values() for name in names}
    | {metric for metric, _ in CARD_METRICS.values() if metric}
)


def _two_cycles():
    services.collect_cluster()
    time.sleep(1.1)  # sample timestamps are whole seconds
    services.collect_cluster()


def _range(api, names, member_id=""):
    query = {"metrics": ",".join(names), "range": "10m"}
    if member_id:
        query["member_id"] = member_id
    response = api.get("/api/range", query)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_a_three_member_cluster_exports_every_name_a_panel_or_card_reads(api, etcd_cluster):
    _two_cycles()

    for member in Member.objects.all():
        body = _range(api, ALL_PANEL_METRICS, member.member_id)
        # A renamed or dropped name in a new etcd fails here, naming the series.
        assert body["not_exported"] == {}, member.etcd_version
    blank = [
        panel
        for panel, names in PANEL_METRICS.items()
        if not any(body["metrics"].get(name) for name in names)
    ]
    # Quiet-cluster panels (defrag, snapshots, compaction) may be empty, never the core ones.
    assert not {"chartRaftProposals", "chartDBSize", "chartMemory", "chartGC", "chartCPU"} & set(
        blank
    )


def _strip(text: str, prefix: str) -> str:
    return "\n".join(line for line in text.splitlines() if prefix not in line) + "\n"


@pytest.mark.django_db
def test_a_panel_whose_names_this_etcd_lacks_says_which(api, etcd_cluster):
    # The real scrape of a member minus the go_memstats_* families: what a Go runtime that
    # stopped exporting them (as 3.5's newer Go dropped go_memstats_lookups_total) sends.
    _two_cycles()
    member = Member.objects.get(is_default=True)
    text = urllib.request.urlopen(f"{member.scrape_url}/metrics", timeout=5).read().decode()
    result = services.MemberResult(member=member, text=_strip(text, "go_memstats_"))
    services._store_success(result, ts=int(time.time()) + 5, lease_count=None)

    memory = PANEL_METRICS["chartMemory"] + PANEL_METRICS["chartMemSys"]
    body = _range(api, [*memory, "go_goroutines"])

    assert body["not_exported"] == {
        "go_memstats_alloc_bytes": ["go_memstats_alloc_bytes"],
        "go_memstats_sys_bytes": ["go_memstats_sys_bytes"],
    }
    assert "go_goroutines" not in body["not_exported"] and body["metrics"]["go_goroutines"]


@pytest.mark.django_db
def test_a_lone_member_without_peers_is_not_said_to_lack_peer_metrics(api, etcd_cluster_factory):
    # etcd creates per-peer series on first use: absent is "nothing yet", not "not exported".
    etcd_cluster_factory(size=1)
    _two_cycles()

    body = _range(api, PANEL_METRICS["chartPeerRTT"] + PANEL_METRICS["chartPeerTraffic"])

    assert body["not_exported"] == {}


def test_a_renamed_name_counts_as_exported_under_either_name():
    old = metrics.parse_metrics("etcd_debugging_mvcc_keys_total 5\n", only=metrics.SOURCE_NAMES)
    new = metrics.parse_metrics("etcd_mvcc_keys_total 5\n", only=metrics.SOURCE_NAMES)
    neither = metrics.parse_metrics("go_goroutines 5\n", only=metrics.SOURCE_NAMES)

    for samples in (old, new):
        assert (
            metrics.not_exported(["etcd_mvcc_keys_total"], metrics.unexported_sources(samples))
            == {}
        )
    assert metrics.not_exported(
        ["etcd_mvcc_keys_total", "raft_term", "go_goroutines"],
        metrics.unexported_sources(neither),
    ) == {"etcd_mvcc_keys_total": ["etcd_debugging_mvcc_keys_total", "etcd_mvcc_keys_total"]}


def test_every_stored_key_but_the_rpc_ones_knows_its_sources():
    without = [key for key in stored_key_names() if not metrics.sources_of(key)]

    assert without == ["collector_up", "raft_term", "raft_index", "etcd_lease_count"]


def test_the_metrics_page_of_the_running_etcd_parses_whatever_its_content_type(
    etcd_cluster, etcd_server_version
):
    url = etcd_cluster.client_urls[0]
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()

    # 3.5 built with a newer client_golang adds `escaping=underscores`: still the 0.0.4 text.
    assert content_type.startswith("text/plain; version=0.0.4")
    if etcd_server_version.startswith("3.5"):
        assert "escaping=underscores" in content_type
    snapshot = metrics.derive_snapshot(metrics.parse_metrics(text), timestamp=1.0)
    for key in ("go_goroutines", "go_memstats_alloc_bytes", "etcd_mvcc_db_total_size_in_bytes"):
        assert key in snapshot.values


def test_health_comes_from_status_and_health_not_livez(etcd_cluster, etcd_server_version):
    url = etcd_cluster.client_urls[0]
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        assert response.status == 200
    # With --enable-v2, etcd 3.5 answers 404 on /livez and /readyz (3.4 has neither): a
    # probe built on them would call a healthy member dead. Ours uses the Status RPC.
    for path in ("/livez", "/readyz"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{url}{path}", timeout=5)
        assert caught.value.code == 404
    assert all(h.healthy for h in cluster_gateway().probe().values())


@pytest.mark.django_db
def test_a_status_quota_wins_over_the_metric_and_the_storage_version_is_shown(api, etcd_cluster):
    _two_cycles()
    member = Member.objects.get(is_default=True)
    metric_quota = member.latest["etcd_server_quota_backend_bytes"]
    assert member.storage_version == "", "3.4 and 3.5 report no storage version"
    # What a 3.6 member's Status adds, on top of the real scrape of this member.
    wire = (
        _known_part("3.6.4") + _field_bytes(11, b"3.6.0") + _field_varint(12, metric_quota + 4096)
    )
    result = services.MemberResult(
        member=member,
        text=urllib.request.urlopen(f"{member.scrape_url}/metrics", timeout=5).read().decode(),
        status=decode_status(etcdrpc.StatusResponse.FromString(wire)),
    )

    services._store_success(result, ts=int(time.time()) + 5, lease_count=None)

    member.refresh_from_db()
    assert member.latest["etcd_server_quota_backend_bytes"] == metric_quota + 4096
    assert member.storage_version == "3.6.0"
    status = api.get("/api/status").json()
    assert (status["etcd_version"], status["storage_version"]) == ("3.6.4", "3.6.0")
