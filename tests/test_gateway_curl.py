"""The collector's hot calls over libcurl (`etcdgateway.curl`): Status and LeaseLeases as gRPC
over HTTP/2, `/metrics` over HTTP/1.1, against real members: the same answers as grpcio, and
the true cause when a member is stopped, hung or no gRPC server at all."""

import http.server
import threading
import time
from dataclasses import replace
from pathlib import Path

import pycurl
import pytest
from pyetcd import etcdrpc

from alerts.tests.test_learner import _add_learner
from devtools.localcluster import make_test_certificates
from etcdgateway import (
    ClusterConfig,
    ClusterGateway,
    EtcdError,
    EtcdTimeout,
    EtcdUnavailable,
    Transfers,
)
from etcdgateway import scraper as scraper_module
from etcdgateway.client import decode_status
from etcdgateway.curl import CurlRpcError, NotGrpc, TransferFailed, UnaryCaller, _transfer_error


def _grpcio_status(client):
    return client.call(
        lambda raw: decode_status(
            raw.maintenancestub.Status(etcdrpc.StatusRequest(), 5, metadata=raw.metadata)
        )
    )


def test_status_and_lease_count_over_libcurl_match_grpcio(etcd_cluster_factory):
    cluster = etcd_cluster_factory(size=3, point_settings=False)
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(cluster.client_urls)))
    try:
        # Enough leases that the reply spans several HTTP/2 DATA frames (16 KB each).
        leases = [gateway.lease_grant(600) for _ in range(1500)]
        for url in cluster.client_urls:
            client = gateway.client_for(url, timeout=5)
            over_curl = client.status()
            assert client._caller is not None and not client._caller_refused
            # The backend's sizes move on their own (etcd commits in the background).
            steady = {"db_size": 0, "db_size_in_use": 0}
            assert replace(over_curl, **steady) == replace(_grpcio_status(client), **steady)
            assert client.lease_count() == len(leases)
        assert len({gateway.client_for(u).status().leader_id for u in cluster.client_urls}) == 1
    finally:
        gateway.close()


def test_periodic_calls_to_a_cluster_without_auth_make_no_grpc_channel(etcd_cluster_factory):
    """Without auth the pyetcd client has nothing a libcurl call needs (no token): Status,
    LeaseLeases, MemberList, HashKV and Alarm leave it unbuilt, so a worker watching a fleet
    holds no gRPC channel (nor gRPC's event-engine threads) for its members. Anything else
    builds it as before, and each libcurl call gives grpcio's answer."""
    cluster = etcd_cluster_factory(size=1, point_settings=False)
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(cluster.client_urls)))
    try:
        # Its own timeout: the gateway's lease_grant below uses another client.
        client = gateway.client_for(cluster.client_urls[0], timeout=3)
        status = client.status()
        assert status.member_id and status.is_leader
        gateway.lease_grant(600)
        assert client.lease_count() == 1
        members = client.members()
        assert [m.id_str for m in members] == [str(status.member_id)]
        assert members[0].client_urls == tuple(cluster.client_urls)
        assert client.alarms() == []
        keyspace = client.hashkv(0)
        assert client._raw is None and client._caller is not None

        assert client.get(b"nothing") is None  # a call off the libcurl path builds the channel
        assert client._raw is not None
        # The backend's sizes move on their own (etcd commits in the background).
        steady = {"db_size": 0, "db_size_in_use": 0}
        assert replace(client.status(), **steady) == replace(_grpcio_status(client), **steady)
        listed = _grpcio(client, "clusterstub", "MemberList", etcdrpc.MemberListRequest())
        assert [(m.id, m.name, m.peer_urls, m.client_urls) for m in client.members()] == [
            (m.ID, m.name, tuple(m.peerURLs), tuple(m.clientURLs)) for m in listed.members
        ]
        assert keyspace == client.hashkv(keyspace.revision)
        hashed = _grpcio(client, "maintenancestub", "HashKV", etcdrpc.HashKVRequest(revision=0))
        assert keyspace.hash == hashed.hash
    finally:
        gateway.close()


def _grpcio(client, stub_name, method, request):
    """The same call through grpcio's stub (the fallback path), for comparison."""
    return client.call(lambda raw: getattr(getattr(raw, stub_name), method)(request, 5))


def test_member_list_over_libcurl_tells_a_learner(etcd_cluster_factory):
    """isLearner is not in pyetcd's protos: it is read from the reply's unknown fields, which
    the libcurl path keeps as grpcio's did."""
    cluster = etcd_cluster_factory(size=1, point_settings=False)
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(cluster.client_urls)))
    try:
        _, learner_id = _add_learner(cluster, name="learner")
        client = gateway.client_for(cluster.client_urls[0])
        listed = {m.id_str: m.is_learner for m in client.members()}
        assert client._raw is None  # it came over libcurl
        assert listed == {learner_id: True, str(client.status().member_id): False}
    finally:
        gateway.close()


def test_member_list_started_in_a_round_is_the_calls_own_answer(etcd_cluster_factory):
    """MemberList started on `Transfers` (a collection round's member discovery) settles to
    what a call of its own answers, a learner included; to a stopped member it is refused."""
    cluster = etcd_cluster_factory(size=1, point_settings=False)
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(cluster.client_urls)))
    transfers = Transfers()
    try:
        _, learner_id = _add_learner(cluster, name="learner")
        client = gateway.client_for(cluster.client_urls[0], timeout=2)
        heard = []
        client.start_members(transfers, done=heard.append, timeout=2)
        transfers.run(time.monotonic() + 10, early=False)
        assert not client.settling_calls(heard[0])
        listed = client.members_settled(heard[0], timeout=2)
        assert listed == client.members() and len(listed) == 2
        assert {m.id_str for m in listed if m.is_learner} == {learner_id}
        cluster.kill_member(cluster.members[0])
        client.start_members(transfers, done=heard.append, timeout=2)
        transfers.run(time.monotonic() + 10, early=False)
        with pytest.raises(EtcdUnavailable, match="connection refused"):
            client.members_settled(heard[1], timeout=2)
    finally:
        transfers.close()
        gateway.close()


def test_a_stopped_member_is_refused_and_a_hung_one_times_out(etcd_cluster_factory):
    cluster = etcd_cluster_factory(size=3, point_settings=False)
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(cluster.client_urls)))
    stopped, hung = cluster.members[1], cluster.members[2]
    try:
        for member in (stopped, hung):  # connections open before the failure, as in a fleet
            gateway.client_for(member.client_url, timeout=1).status()
        cluster.kill_member(stopped)
        cluster.pause_member(hung)

        with pytest.raises(EtcdUnavailable, match="connection refused"):
            gateway.client_for(stopped.client_url, timeout=1).status()
        with pytest.raises(EtcdUnavailable, match="connection refused"):
            gateway.client_for(stopped.client_url, timeout=1).members()
        started = time.monotonic()
        try:
            answered = gateway.client_for(hung.client_url, timeout=1).lease_count()
        except EtcdTimeout:
            pass
        else:  # say what answered (seen once in CI; not reproduced): which process, its state
            state = Path(f"/proc/{hung.process.pid}/stat").read_text()
            pytest.fail(f"a stopped member answered {answered} leases; its /proc stat: {state}")
        assert 0.9 <= time.monotonic() - started < 3
        with pytest.raises(EtcdTimeout):
            gateway.scraper(timeout=1).fetch(hung.client_url, "/metrics")
        assert gateway.client_for(cluster.client_urls[0], timeout=5).status().version
    finally:
        cluster.resume_member(hung)
        gateway.close()


class _PlainHttp(http.server.BaseHTTPRequestHandler):
    """An HTTP/1 server that is no etcd (a proxy or a wrong port, as a user may configure)."""

    def do_GET(self):
        body = b"not metrics\n" * 64
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def plain_http_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PlainHttp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_endpoint_that_is_no_grpc_server_is_unavailable_not_misread(plain_http_url):
    gateway = ClusterGateway(ClusterConfig(endpoints=(plain_http_url,)))
    try:
        client = gateway.client_for(plain_http_url, timeout=2)
        with pytest.raises(EtcdUnavailable):
            client.status()
        # libcurl saw no gRPC server: later calls go to grpcio, which says the same.
        assert client._caller_refused
        with pytest.raises(EtcdUnavailable):
            client.lease_count()
        # /metrics from it is text, whatever it says; the collector parses nothing out of it.
        assert gateway.scraper(timeout=2).fetch(plain_http_url, "/metrics").startswith("not")
    finally:
        gateway.close()


def test_no_http2_is_told_apart_whichever_way_libcurl_reports_it():
    """The first bytes back were no HTTP/2: libcurl says so under CURLE_HTTP2, or under
    CURLE_SEND_ERROR when its send was still going (8 in 300 against the server above).
    Both mean "no gRPC server here", never a member that went away."""
    words = "Remote peer returned unexpected data while we expected SETTINGS frame."
    for code in (pycurl.E_HTTP2, pycurl.E_SEND_ERROR):
        failed = TransferFailed(code, "other", words, overflowed=False)
        assert isinstance(_transfer_error(failed), NotGrpc)
    reset = TransferFailed(
        pycurl.E_SEND_ERROR, "other", "Send failure: Broken pipe", overflowed=False
    )
    assert isinstance(_transfer_error(reset), CurlRpcError)


def test_a_grpc_error_status_keeps_etcds_words(etcd_cluster_factory):
    cluster = etcd_cluster_factory(size=1, point_settings=False)
    caller = UnaryCaller(
        cluster.client_urls[0], ClusterConfig(endpoints=tuple(cluster.client_urls)), timeout=5
    )
    try:
        # A method etcd does not have: its status and message, as grpcio would report them.
        with pytest.raises(CurlRpcError) as raised:
            caller.call("/etcdserverpb.Lease/NoSuchMethod", b"", timeout=5)
        assert raised.value.code().name == "UNIMPLEMENTED"
        assert "NoSuchMethod" in raised.value.details()
    finally:
        caller.close()


def test_a_metrics_page_past_the_limit_is_refused_by_size(etcd_cluster, monkeypatch):
    monkeypatch.setattr(scraper_module, "MAX_BODY_BYTES", 4096)
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(etcd_cluster.client_urls)))
    try:
        with pytest.raises(EtcdError, match="larger than") as raised:
            gateway.scraper(timeout=5).fetch(etcd_cluster.client_urls[0], "/metrics")
        assert not isinstance(raised.value, EtcdUnavailable)
    finally:
        gateway.close()


def test_hot_calls_over_libcurl_speak_mtls_and_check_the_server_name(
    etcd_cluster_factory, tmp_path
):
    files = make_test_certificates(tmp_path / "pki")
    cluster = etcd_cluster_factory(size=1, point_settings=False, tls=files)
    url = cluster.client_urls[0]
    common = dict(
        endpoints=(url,),
        ca_cert=str(files.ca),
        client_cert=str(files.client_cert),
        client_key=str(files.client_key),
    )
    named = ClusterGateway(ClusterConfig(**common, server_name="localhost"))
    wrong = ClusterGateway(ClusterConfig(**common, server_name="wrong.example"))
    try:
        client = named.client_for(url, timeout=5)
        assert client.status().version.startswith("3.")
        assert client.lease_count() == 0
        assert client._caller is not None and not client._caller_refused
        assert "etcd_server_has_leader" in named.scraper(timeout=5).fetch(url, "/metrics")
        with pytest.raises(EtcdUnavailable, match="TLS failed"):
            wrong.client_for(url, timeout=5).status()
        with pytest.raises(EtcdUnavailable, match="TLS failed"):
            wrong.scraper(timeout=5).fetch(url, "/metrics")
    finally:
        named.close()
        wrong.close()


def test_calls_meant_for_a_proxy_stay_on_grpcio(etcd_cluster, monkeypatch):
    url = etcd_cluster.client_urls[0]
    for name in ("grpc_proxy", "https_proxy", "HTTPS_PROXY", "no_grpc_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    # grpcio honours http_proxy: a proxy nobody runs makes its calls fail, libcurl's would not.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "example.invalid")
    proxied = ClusterGateway(ClusterConfig(endpoints=(url,)))
    try:
        client = proxied.client_for(url, timeout=2)
        assert client._caller_refused
        with pytest.raises(EtcdUnavailable):
            client.status()
    finally:
        proxied.close()

    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    exempt = ClusterGateway(ClusterConfig(endpoints=(url,)))
    try:
        direct = exempt.client_for(url, timeout=2)
        assert direct.status().version.startswith("3.")
        assert direct._caller is not None and not direct._caller_refused
    finally:
        exempt.close()


# --- many Status calls at once on one thread (`Transfers`) ----------------------------------------


def _round(transfers, clients, *, timeout):
    """Status of every client started at once on `transfers` and run to the end: per client its
    outcome's answer (or EtcdError), how long it took, and the thread that heard it."""
    started = time.monotonic()
    heard = {}
    for index, client in enumerate(clients):
        assert client.can_start()

        def done(outcome, index=index):
            heard[index] = (outcome, time.monotonic() - started, threading.get_ident())

        client.start_status(transfers, done=done, timeout=timeout)
    while len(transfers):
        transfers.run(time.monotonic() + 30, early=False)
    answers = []
    for index, client in enumerate(clients):
        outcome, took, thread = heard[index]
        assert thread == threading.get_ident()  # heard on the thread that ran them
        assert not client.settling_calls(outcome)
        try:
            answers.append((client.status_settled(outcome, timeout=timeout), took))
        except EtcdError as exc:
            answers.append((exc, took))
    return answers


def test_a_round_of_status_calls_on_one_thread_tells_each_member_truly(etcd_cluster_factory):
    """A stopped member is refused at once, a hung one times out, and neither holds back the
    answers of the live ones, which are what each member says to a call of its own."""
    cluster = etcd_cluster_factory(size=3, point_settings=False)
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(cluster.client_urls)))
    transfers = Transfers()
    stopped, hung = cluster.members[1:]
    clients = [gateway.client_for(m.client_url, timeout=2) for m in cluster.members]
    try:
        first = _round(transfers, clients, timeout=2)
        for (status, _), client in zip(first, clients, strict=True):
            assert status.member_id == client.status().member_id
            assert status.leader_id == first[0][0].leader_id
        cluster.kill_member(stopped)
        cluster.pause_member(hung)

        answered, refused, timed_out = _round(transfers, clients, timeout=2)
        assert answered[0].member_id == first[0][0].member_id and answered[0].version
        assert isinstance(refused[0], EtcdUnavailable) and "connection refused" in str(refused[0])
        assert isinstance(timed_out[0], EtcdTimeout)
        assert timed_out[1] >= 1.9
        # Not held back by the hung member: each ended most of its timeout sooner (a gap, not
        # a wall time, so a stalled test process cannot fail it).
        assert timed_out[1] - max(answered[1], refused[1]) >= 1.5
        assert len(transfers) == 0
    finally:
        cluster.resume_member(hung)
        transfers.close()
        gateway.close()


def test_a_kept_connection_to_a_restarted_member_is_retried_not_reported(etcd_cluster_factory):
    """Transfers keeps connections between rounds; a member restarted meanwhile closed its end,
    and the next round's call is made again on a new connection, not reported as a failure."""
    cluster = etcd_cluster_factory(size=1, point_settings=False)
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(cluster.client_urls)))
    transfers = Transfers()
    client = gateway.client_for(cluster.client_urls[0], timeout=2)
    try:
        before = _round(transfers, [client], timeout=2)[0][0]
        member = cluster.members[0]
        cluster.kill_member(member)
        cluster.start_member(member)
        cluster.wait_healthy()
        after = _round(transfers, [client], timeout=2)[0][0]
        assert not isinstance(after, EtcdError), after
        assert after.member_id == before.member_id
    finally:
        transfers.close()
        gateway.close()


def test_a_round_call_to_no_grpc_server_settles_on_grpcio(plain_http_url):
    """The started call sees no gRPC server: settling it makes grpcio's call (so it may wait,
    and says so), which tells the same unavailability as a call of its own."""
    gateway = ClusterGateway(ClusterConfig(endpoints=(plain_http_url,)))
    transfers = Transfers()
    try:
        client = gateway.client_for(plain_http_url, timeout=2)
        heard = []
        client.start_status(transfers, done=heard.append, timeout=2)
        transfers.run(time.monotonic() + 10, early=False)
        assert isinstance(heard[0], NotGrpc) and client.settling_calls(heard[0])
        with pytest.raises(EtcdUnavailable):
            client.status_settled(heard[0], timeout=2)
        assert client._caller_refused and not client.can_start()
    finally:
        transfers.close()
        gateway.close()


def test_metrics_and_grpc_calls_to_one_port_in_one_round_each_keep_their_protocol(
    etcd_cluster_factory,
):
    """etcd serves /metrics over HTTP/1 and gRPC over HTTP/2 on the same port; in one
    `Transfers` libcurl could send the GET over the gRPC call's HTTP/2 connection, which etcd
    resets (PROTOCOL_ERROR). Round after round, both answer, each on its own connection."""
    cluster = etcd_cluster_factory(size=1, point_settings=False)
    url = cluster.client_urls[0]
    gateway = ClusterGateway(ClusterConfig(endpoints=(url,)))
    transfers = Transfers()
    client, scraper = gateway.client_for(url, timeout=2), gateway.scraper(timeout=5)
    try:
        for _ in range(10):
            heard = []
            client.start_status(transfers, done=heard.append, timeout=2)
            scraper.start_fetch(transfers, endpoint=url, path="/metrics", done=heard.append)
            transfers.run(time.monotonic() + 10, early=False)
            status, text = heard if isinstance(heard[0], bytes) else reversed(heard)
            assert isinstance(text, str) and "etcd_server_has_leader" in text, text
            assert client.status_settled(status, timeout=2).member_id
    finally:
        transfers.close()
        gateway.close()
