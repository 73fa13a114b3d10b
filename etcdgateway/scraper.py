"""Fetching members' `/metrics` pages for the collector, over libcurl (`etcdgateway.curl`
says why: about a third of urllib3's CPU per scrape, the body inflated in C)."""

import logging
from urllib.parse import urlsplit

import pycurl

from etcdgateway import curl
from etcdgateway.config import ClusterConfig
from etcdgateway.errors import EtcdError, EtcdTimeout, EtcdUnavailable

logger = logging.getLogger(__name__)

# A member (or whatever answers on its URL) sending more than this is cut off: /metrics of a
# real etcd is 100-300 KB.
MAX_BODY_BYTES = 32 * 1024 * 1024


class MetricsScraper:
    """A thread-safe, connection-keeping GET client with the cluster's TLS and credentials."""

    def __init__(self, config: ClusterConfig, *, timeout: float):
        if config.insecure_skip_verify:
            logger.warning("TLS verification is skipped for %s", ", ".join(config.endpoints))
        self._config = config
        self._handles = curl.CurlPool(config, timeout=timeout)

    def fetch(self, endpoint: str, path: str) -> str:
        """The text of `endpoint` + `path`; EtcdTimeout / EtcdUnavailable / EtcdError on failure."""
        url, connect_to = curl.target_url(endpoint, path, self._config)
        return self._get(url, endpoint, path, connect_to=connect_to, credentials=True)

    def fetch_url(self, url: str) -> str:
        """The text of a metrics listener of its own (ETCD_METRICS_URLS), without the etcd
        credentials: that port needs none, and it is usually plain HTTP."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        return self._get(url, origin, parts.path or "/", connect_to=[], credentials=False)

    def _get(
        self, url: str, endpoint: str, path: str, *, connect_to: list[str], credentials: bool
    ) -> str:
        def setup(handle: pycurl.Curl) -> curl.Body:
            body = curl.Body(MAX_BODY_BYTES)
            handle.setopt(pycurl.URL, url)
            handle.setopt(pycurl.CONNECT_TO, connect_to)
            handle.setopt(pycurl.ACCEPT_ENCODING, "gzip")
            handle.setopt(pycurl.WRITEFUNCTION, body.write)
            if credentials and self._config.has_auth:
                handle.setopt(pycurl.HTTPAUTH, pycurl.HTTPAUTH_BASIC)
                handle.setopt(pycurl.USERNAME, self._config.username)
                handle.setopt(pycurl.PASSWORD, self._config.password)
            return body

        try:
            status, body = self._handles.perform((endpoint, credentials), setup)
        except curl.TransferFailed as failed:
            if failed.kind == curl.TIMEOUT:
                raise EtcdTimeout(endpoint=endpoint) from None
            if failed.overflowed:
                message = f"{path} is larger than {MAX_BODY_BYTES} bytes"
                raise EtcdError(message, endpoint=endpoint) from None
            raise EtcdUnavailable(f"{endpoint}: {failed.reason}", endpoint=endpoint) from None
        logger.debug("GET %s: HTTP %s, %d bytes", url, status, body.size)
        if status != 200:
            raise EtcdError(f"{path} answered HTTP {status}", endpoint=endpoint)
        return body.value().decode("utf-8", "replace")

    def close(self) -> None:
        self._handles.close()
