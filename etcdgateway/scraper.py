"""Fetching members' `/metrics` pages for the collector, over libcurl (`etcdgateway.curl`
says why: about a third of urllib3's CPU per scrape), the gzip body inflated by ISA-L."""

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import pycurl
from isal import isal_zlib

from etcdgateway import curl
from etcdgateway.config import ClusterConfig
from etcdgateway.errors import EtcdError, EtcdTimeout, EtcdUnavailable

logger = logging.getLogger(__name__)

# A member (or whatever answers on its URL) sending more than this is cut off: /metrics of a
# real etcd is 100-300 KB. It bounds the inflated text as well as the bytes on the wire.
MAX_BODY_BYTES = 32 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


class BodyTooLarge(Exception):
    """The inflated body would pass the limit (a gzip bomb, or just a huge page)."""


def inflated(raw: bytes, *, limit: int) -> bytes:
    """The bytes of a gzip body, every member of it, at most `limit` of them (BodyTooLarge
    past it; ValueError when it is no whole gzip stream).

    ISA-L's inflate (`isal`, zlib's interface) takes under half of zlib's time, and inflating
    was the largest share of a scrape's CPU while libcurl did it with zlib
    (docs/PERFORMANCE.md); it stops at `limit` instead of trusting the size the trailer
    claims."""
    parts, size = [], 0
    while raw:
        stream = isal_zlib.decompressobj(wbits=31)  # one gzip member
        try:
            part = stream.decompress(raw, limit - size + 1)
        except isal_zlib.error as exc:
            raise ValueError(str(exc)) from None
        size += len(part)
        if size > limit:
            raise BodyTooLarge
        if not stream.eof:
            raise ValueError("the gzip stream ends early")
        parts.append(part)
        raw = stream.unused_data
    return b"".join(parts)


class MetricsScraper:
    """A thread-safe, connection-keeping GET client with the cluster's TLS and credentials."""

    def __init__(self, config: ClusterConfig, *, timeout: float):
        if config.insecure_skip_verify:
            logger.warning("TLS verification is skipped for %s", ", ".join(config.endpoints))
        self._config = config
        self._handles = curl.CurlPool(config, timeout=timeout)

    def fetch(self, endpoint: str, path: str) -> str:
        """The text of `endpoint` + `path`; EtcdTimeout / EtcdUnavailable / EtcdError on failure."""
        return self._handles.perform(*self._request_to(endpoint, path))

    def fetch_url(self, url: str) -> str:
        """The text of a metrics listener of its own (ETCD_METRICS_URLS), without the etcd
        credentials: that port needs none, and it is usually plain HTTP."""
        return self._handles.perform(*self._request_url(url))

    def start_fetch(
        self,
        transfers: curl.Transfers,
        *,
        endpoint: str = "",
        path: str = "",
        url: str = "",
        done: Callable[[str | Exception], None],
    ) -> None:
        """`fetch(endpoint, path)`, or `fetch_url(url)` when `url` is given, started on
        `transfers`: `done` gets the text or the error from the thread that runs them."""
        key, setup, finish = self._request_url(url) if url else self._request_to(endpoint, path)
        transfers.start(self._handles, key, setup, finish, done)

    def _request_to(self, endpoint: str, path: str):
        url, connect_to = curl.target_url(endpoint, path, self._config)
        return self._request(url, endpoint, path, connect_to=connect_to, credentials=True)

    def _request_url(self, url: str):
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        return self._request(url, origin, parts.path or "/", connect_to=[], credentials=False)

    def _request(
        self, url: str, endpoint: str, path: str, *, connect_to: list[str], credentials: bool
    ):
        """(handle key, setup, finish) of one GET: `finish(status, body or TransferFailed)`
        returns the text or raises what the fetch methods raise."""

        def setup(handle: pycurl.Curl) -> curl.Body:
            body = curl.Body(MAX_BODY_BYTES)
            handle.setopt(pycurl.URL, url)
            handle.setopt(pycurl.CONNECT_TO, connect_to)
            handle.setopt(pycurl.ACCEPT_ENCODING, "gzip")
            handle.setopt(pycurl.HTTP_CONTENT_DECODING, 0)  # the raw body: `inflated`
            handle.setopt(pycurl.WRITEFUNCTION, body.write)
            if credentials and self._config.has_auth:
                handle.setopt(pycurl.HTTPAUTH, pycurl.HTTPAUTH_BASIC)
                handle.setopt(pycurl.USERNAME, self._config.username)
                handle.setopt(pycurl.PASSWORD, self._config.password)
            return body

        def finish(status, outcome) -> str:
            if isinstance(outcome, curl.TransferFailed):
                if outcome.kind == curl.TIMEOUT:
                    raise EtcdTimeout(endpoint=endpoint)
                if outcome.overflowed:
                    message = f"{path} is larger than {MAX_BODY_BYTES} bytes"
                    raise EtcdError(message, endpoint=endpoint)
                raise EtcdUnavailable(f"{endpoint}: {outcome.reason}", endpoint=endpoint)
            logger.debug("GET %s: HTTP %s, %d bytes", url, status, outcome.size)
            if status != 200:
                raise EtcdError(f"{path} answered HTTP {status}", endpoint=endpoint)
            body = outcome.value()
            # No metrics text starts with these two bytes: a gzip body, whatever the headers
            # said (reading them would cost a callback per header line).
            if body.startswith(GZIP_MAGIC):
                try:
                    body = inflated(body, limit=MAX_BODY_BYTES)
                except BodyTooLarge:
                    message = f"{path} is larger than {MAX_BODY_BYTES} bytes"
                    raise EtcdError(message, endpoint=endpoint) from None
                except ValueError as exc:
                    message = f"{path} answered a gzip body that does not inflate: {exc}"
                    raise EtcdError(message, endpoint=endpoint) from None
            return body.decode("utf-8", "replace")

        return (endpoint, credentials), setup, finish

    def close(self) -> None:
        self._handles.close()
