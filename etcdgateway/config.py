"""How to reach one etcd cluster: endpoints, credentials, TLS and timeouts."""

import functools
import ssl
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

from django.conf import settings


# Both cached: every round builds each monitored cluster's config again (every 5 s for the
# health probes), and parsing its URLs showed in a health round's profile.
@functools.lru_cache(maxsize=4096)
def normalise_endpoint(url: str) -> str:
    """`HTTP://Host:2379/` → `http://host:2379`; a bare `host:port` is taken as http."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


@functools.lru_cache(maxsize=4096)
def split_endpoint(url: str) -> tuple[str, int, bool]:
    """(host, port, secure) of a client URL; the port defaults to 2379."""
    parts = urlsplit(normalise_endpoint(url))
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported etcd endpoint scheme: {parts.scheme!r}")
    return parts.hostname or "127.0.0.1", parts.port or 2379, parts.scheme == "https"


_HOST_MARK = "member-host.invalid"


def metrics_urls_problem(urls: list[str] | tuple[str, ...]) -> str | None:
    """Why ETCD_METRICS_URLS cannot work as given, or None (a start-up system check)."""
    if any("{host}" in url for url in urls) and len(urls) > 1:
        return "a {host} template must be the only entry"
    for url in urls:
        filled = url.replace("{host}", _HOST_MARK)
        if "{" in filled or "}" in filled:
            return f"{url!r}: the only placeholder is {{host}}"
        try:
            parts = urlsplit(filled)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            return f"{url!r} is not a URL ({exc})"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{url!r} is not an http(s) URL"
        if "{host}" in url and parts.hostname != _HOST_MARK:
            return f"{url!r}: {{host}} must be the whole host part"
    return None


def metrics_url_for_host(template: str, host: str) -> str:
    """`http://{host}:2381/metrics` for one member's host (IPv6 in brackets)."""
    return template.replace("{host}", f"[{host}]" if ":" in host else host)


@dataclass(frozen=True)
class ClusterConfig:
    """Connection settings of one cluster. Hashable: gateways are cached per config."""

    endpoints: tuple[str, ...]
    username: str = ""
    password: str = field(default="", repr=False)
    ca_cert: str = ""
    client_cert: str = ""
    client_key: str = ""
    insecure_skip_verify: bool = False
    server_name: str = ""
    connect_timeout: float = 5.0
    request_timeout: float = 30.0
    metrics_path: str = "/metrics"
    # ETCD_METRICS_URLS: metrics listeners of their own (matched to members by host), or one
    # template with {host}; empty = each member's client URL + metrics_path.
    metrics_urls: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.endpoints:
            raise ValueError("a cluster needs at least one endpoint")
        object.__setattr__(self, "endpoints", tuple(normalise_endpoint(e) for e in self.endpoints))
        for endpoint in self.endpoints:
            split_endpoint(endpoint)
        if bool(self.client_cert) != bool(self.client_key):
            raise ValueError("ETCD_TLS_CERT and ETCD_TLS_KEY must be set together")

    @classmethod
    def from_settings(cls) -> "ClusterConfig":
        """The monitored cluster, from the ETCD_* / KV_* settings."""
        return cls(
            endpoints=tuple(settings.ETCD_ENDPOINTS),
            username=settings.ETCD_USERNAME,
            password=settings.ETCD_PASSWORD,
            ca_cert=settings.ETCD_TLS_CA_CERT,
            client_cert=settings.ETCD_TLS_CERT,
            client_key=settings.ETCD_TLS_KEY,
            insecure_skip_verify=settings.ETCD_TLS_INSECURE_SKIP_VERIFY,
            server_name=settings.ETCD_TLS_SERVER_NAME,
            connect_timeout=settings.KV_CONNECT_TIMEOUT,
            request_timeout=settings.KV_REQUEST_TIMEOUT,
            metrics_path=settings.ETCD_METRICS_PATH,
            metrics_urls=tuple(settings.ETCD_METRICS_URLS),
        )

    @property
    def has_auth(self) -> bool:
        return bool(self.username)

    def read_tls_files(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """(CA bundle, client key, client cert chain) as bytes, for gRPC channel credentials."""

        def read(path: str) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as handle:
                return handle.read()

        return read(self.ca_cert), read(self.client_key), read(self.client_cert)

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """TLS context for plain-HTTP calls (/metrics, /health, v2) to https endpoints."""
        context = ssl.create_default_context(cafile=self.ca_cert or None)
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context
