"""`/metrics` bodies in gzip (`etcdgateway.scraper`): libcurl hands the raw bytes over and the
scraper inflates them itself. Whatever a server sends (one gzip member or several, a trailer
that lies, a bomb, a torn or corrupt stream, no gzip at all), the text is the server's text or
the error names the cause; never a part of the page taken for the whole."""

import gzip
import http.server
import struct
import threading
import time
import urllib.request
import zlib

import pytest

from etcdgateway import ClusterConfig, ClusterGateway, EtcdError, EtcdUnavailable, Transfers
from etcdgateway import scraper as scraper_module
from etcdgateway.scraper import BodyTooLarge, inflated
from monitoring import metrics

# A page in etcd's own words and size (~150 KB), different on every line.
PAGE = "".join(
    f'etcd_debugging_series_total{{series="{i}"}} {i * 7}\n' for i in range(3500)
).encode()


def _with_trailer(body: bytes, *, crc: int | None = None, size: int | None = None) -> bytes:
    real_crc, real_size = struct.unpack("<II", body[-8:])
    return body[:-8] + struct.pack(
        "<II", real_crc if crc is None else crc, real_size if size is None else size
    )


def test_one_member_inflates_to_the_page():
    assert inflated(gzip.compress(PAGE), limit=len(PAGE)) == PAGE


def test_several_members_give_every_members_text():
    # What an inflate of one member (libdeflate's, say) would cut to the first, silently.
    parts = [PAGE[:1000], PAGE[1000:90_000], PAGE[90_000:]]
    body = b"".join(gzip.compress(part) for part in parts)
    assert inflated(body, limit=len(PAGE)) == PAGE
    # Two members of the same length: the trailer's size would vouch for the first alone.
    twin = gzip.compress(b"a 1\n" * 100) + gzip.compress(b"b 2\n" * 100)
    assert inflated(twin, limit=10_000) == b"a 1\n" * 100 + b"b 2\n" * 100


def test_a_body_past_the_limit_once_inflated_is_refused_by_size():
    bomb = gzip.compress(b"\0" * 5_000_000)  # ~5 KB on the wire
    assert len(bomb) < 10_000
    with pytest.raises(BodyTooLarge):
        inflated(bomb, limit=1_000_000)
    # A trailer claiming little does not get it through either (zlib's bounded path).
    with pytest.raises(BodyTooLarge):
        inflated(_with_trailer(bomb, size=100), limit=1_000_000)
    # Several members each under the limit, together past it.
    with pytest.raises(BodyTooLarge):
        inflated(gzip.compress(b"\0" * 600_000) * 2, limit=1_000_000)
    # Exactly the limit is allowed.
    assert len(inflated(gzip.compress(b"x" * 1000), limit=1000)) == 1000


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(gzip.compress(PAGE)[:-20], id="torn"),
        pytest.param(gzip.compress(PAGE)[:5000], id="cut-early"),
        pytest.param(b"\x1f\x8b\x08\x00" + b"\xff" * 40, id="corrupt"),
        pytest.param(b"\x1f\x8b", id="magic-only"),
        pytest.param(_with_trailer(gzip.compress(PAGE), crc=1), id="crc-lies"),
    ],
)
def test_a_stream_that_is_not_whole_gzip_is_an_error(body):
    with pytest.raises(ValueError):
        inflated(body, limit=len(PAGE) * 2)


class _Pages(http.server.BaseHTTPRequestHandler):
    """Serves `/<name>` from `bodies`: (Content-Encoding or None, raw bytes)."""

    bodies: dict = {}
    seen_encodings: list = []

    def do_GET(self):
        self.seen_encodings.append(self.headers.get("Accept-Encoding", ""))
        encoding, body = self.bodies[self.path.lstrip("/")]
        self.send_response(200)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def pages():
    deflated = zlib.compressobj(wbits=-15)
    bodies = {
        "gzip": ("gzip", gzip.compress(PAGE)),
        "members": ("gzip", gzip.compress(PAGE[:5000]) + gzip.compress(PAGE[5000:])),
        "plain": (None, PAGE),
        "bomb": ("gzip", gzip.compress(b"\0" * 2_000_000)),
        "corrupt": ("gzip", gzip.compress(PAGE)[:-100]),
        # Not asked for: taken as it is, as libcurl took it before (the text parses to nothing).
        "deflate": ("deflate", deflated.compress(PAGE) + deflated.flush()),
    }
    handler = type("Pages", (_Pages,), {"bodies": bodies, "seen_encodings": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    gateway = ClusterGateway(ClusterConfig(endpoints=(url,)))
    yield url, gateway, handler
    gateway.close()
    server.shutdown()
    server.server_close()


def _fetch_in_a_round(gateway, url: str, path: str):
    outcome = []
    transfers = Transfers()
    try:
        gateway.scraper(timeout=5).start_fetch(
            transfers, endpoint=url, path=path, done=outcome.append
        )
        deadline = time.monotonic() + 10
        while not outcome and time.monotonic() < deadline:
            transfers.run(deadline, early=True)
    finally:
        transfers.close()
    assert outcome, f"{path}: the round's fetch never ended"
    return outcome[0]


def test_every_server_page_reads_as_its_text_both_ways(pages):
    url, gateway, handler = pages
    scraper = gateway.scraper(timeout=5)
    for name in ("gzip", "members", "plain"):
        assert scraper.fetch(url, f"/{name}") == PAGE.decode(), name
        assert _fetch_in_a_round(gateway, url, f"/{name}") == PAGE.decode(), name
    assert set(handler.seen_encodings) == {"gzip"}


def test_a_bomb_or_a_torn_body_from_a_server_names_the_cause(pages, monkeypatch):
    url, gateway, _ = pages
    monkeypatch.setattr(scraper_module, "MAX_BODY_BYTES", 1_000_000)
    scraper = gateway.scraper(timeout=5)
    with pytest.raises(EtcdError, match="/bomb is larger than 1000000 bytes") as raised:
        scraper.fetch(url, "/bomb")
    assert not isinstance(raised.value, EtcdUnavailable)  # the server answered: not down
    with pytest.raises(EtcdError, match="gzip body that does not inflate") as raised:
        scraper.fetch(url, "/corrupt")
    assert not isinstance(raised.value, EtcdUnavailable)
    outcome = _fetch_in_a_round(gateway, url, "/bomb")
    assert isinstance(outcome, EtcdError) and "larger than" in outcome.message
    # A page in an encoding nobody asked for is no metrics text: it parses to nothing.
    assert metrics.parse_metrics(scraper.fetch(url, "/deflate")) == {}


def _families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_a_real_members_page_is_asked_in_gzip_and_reads_whole(etcd_cluster, monkeypatch):
    url = etcd_cluster.client_urls[0]
    gateway = ClusterGateway(ClusterConfig(endpoints=tuple(etcd_cluster.client_urls)))
    try:
        text = gateway.scraper(timeout=5).fetch(url, "/metrics")
        # The same families as the page asked for without gzip: nothing cut off anywhere.
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            assert response.headers.get("Content-Encoding") is None
            plain = response.read().decode()
        assert _families(text) == _families(plain)
        assert len(_families(text)) > 100
        assert "etcd_server_has_leader" in metrics.parse_metrics(text)
        # Inflated, the page is past a limit its gzip body is well under: refused by size.
        monkeypatch.setattr(scraper_module, "MAX_BODY_BYTES", 40_000)
        with pytest.raises(EtcdError, match="larger than 40000 bytes"):
            gateway.scraper(timeout=5).fetch(url, "/metrics")
    finally:
        gateway.close()
