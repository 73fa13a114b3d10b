"""How the clusters app reaches a cluster record's etcd: endpoint and TLS validation, the private
CA files the gateway reads, the gateway config and shared gateway of a record (`cluster_gateway`),
connection tests that name a generic cause, and the check that a tab is not the default cluster
under another name.

Refusals are `InvalidInput` / `Conflict` carrying the reference's tab codes (`KV_TAB_*`).
"""

import contextlib
import hashlib
import ipaddress
import os
import socket
import ssl
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from clusters.crypto import TabDecryptFailed, TabKeyMissing, password_decrypt
from clusters.models import Cluster
from etcdgateway import (
    ClusterConfig,
    ClusterGateway,
    EtcdAuthFailed,
    EtcdClient,
    EtcdError,
    EtcdPermissionDenied,
    EtcdTimeout,
    EtcdUnavailable,
    MemberInfo,
    forget_gateway,
    normalise_endpoint,
    split_endpoint,
)
from etcdgateway import cluster_gateway as shared_gateway
from etcdgateway.egress import EndpointNotAllowed, EndpointUnresolvable, pinned_endpoint
from etcdmonitor_site.errors import Conflict, DomainError, InvalidInput
from etcdmonitor_site.reuse import ReuseWindow

TEST_TIMEOUT = 5.0  # the synchronous connection test of create / patch / test
MEMBER_CACHE_SECONDS = 30.0


# --- validation ----------------------------------------------------------------------------------


def endpoint_validate(endpoint: str) -> str:
    """Exactly one `http(s)://host[:port]` URL, normalised; else 400 KV_TAB_INVALID_SCHEME."""
    raw = endpoint.strip()
    invalid = InvalidInput(
        "endpoint must start with http:// or https:// and name a host",
        code="KV_TAB_INVALID_SCHEME",
    )
    if (
        not raw.lower().startswith(("http://", "https://"))
        or "," in raw
        or any(c.isspace() for c in raw)
    ):
        raise invalid
    parts = urlsplit(raw)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if not parts.hostname or not port_ok or parts.username or parts.query or parts.fragment:
        raise invalid
    if parts.path.strip("/"):
        raise invalid
    return normalise_endpoint(raw)


MAX_ENDPOINTS = 16
SERVER_NAMES_DIFFER = (
    "https endpoints of one cluster must share one host name or be IP addresses "
    "(TLS verifies one name)"
)


def endpoints_validate(endpoints: list[str] | str) -> list[str]:
    """A record's endpoints: a list of URLs or one comma-separated string, each checked like a
    tab's (`endpoint_validate`), duplicates dropped, one scheme for all and at most one TLS host
    name (a config verifies one name). Else 400 KV_TAB_INVALID_SCHEME."""
    raw = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    raw = [item for item in raw if item.strip()]
    if not raw or len(raw) > MAX_ENDPOINTS:
        raise InvalidInput(
            f"endpoints must name 1 to {MAX_ENDPOINTS} URLs", code="KV_TAB_INVALID_SCHEME"
        )
    valid = list(dict.fromkeys(endpoint_validate(item) for item in raw))
    if len({url.split("://", 1)[0] for url in valid}) > 1:
        raise InvalidInput("endpoints must all use the same scheme", code="KV_TAB_INVALID_SCHEME")
    hosts = {urlsplit(url).hostname for url in valid if url.startswith("https://")}
    if len({host for host in hosts if not _is_address(host)}) > 1:
        raise InvalidInput(SERVER_NAMES_DIFFER, code="KV_TAB_INVALID_SCHEME")
    return valid


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def ca_cert_validate(pem: str) -> str:
    """An optional PEM CA bundle; 400 BAD_REQUEST when it holds no certificate."""
    pem = pem.strip()
    if not pem:
        return ""
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidInput("ca_cert is not a PEM certificate bundle", code="BAD_REQUEST") from exc
    return pem + "\n"


TRANSIENT_CA_PREFIX = ".test-"


def _ca_directory() -> Path:
    directory = Path(settings.DATA_DIR) / "kv-tab-ca"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def _ca_name(pem: str) -> str:
    return f"{hashlib.sha256(pem.encode()).hexdigest()}.pem"


def _ca_file(pem: str, *, transient: bool = False) -> str:
    """A private file holding `pem` (the gateway takes CA bundles as paths). A stored tab's is
    named by content and shared; a `transient` one (a bundle not stored yet, for a connection
    test) has a name of its own and is removed by `connection_test` when it ends."""
    if not pem:
        return ""
    directory = _ca_directory()
    if transient:
        path = directory / f"{TRANSIENT_CA_PREFIX}{uuid.uuid4().hex}.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(pem)
        return str(path)
    path = directory / _ca_name(pem)
    if not path.exists():
        temporary = directory / f".{uuid.uuid4().hex}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(pem)
        os.replace(temporary, path)
    return str(path)


def endpoint_not_allowed(exc: EndpointNotAllowed) -> InvalidInput:
    return InvalidInput(exc.message, code="KV_TAB_ENDPOINT_NOT_ALLOWED")


# What a failed connection test may say: a fixed set, never the target's own bytes (an error
# that quoted them made the test a port scanner telling Redis from PostgreSQL from HTTP).
CAUSES = {
    "unresolvable": "host name does not resolve",
    "refused": "connection refused",
    "unreachable": "host unreachable",
    "timeout": "connection timed out",
    "tls_failed": "TLS handshake failed",
    "not_etcd": "not an etcd endpoint",
    "auth_failed": "authentication failed",
}


class ConnectionTestFailed(Exception):
    """A connection test failed for `cause` (a key of CAUSES)."""

    def __init__(self, cause: str):
        self.cause = cause
        self.status = "auth_failed" if cause == "auth_failed" else "unreachable"
        self.message = f"connection test failed: {CAUSES[cause]}"
        super().__init__(self.message)


def failure_text(exc: Exception) -> str:
    """A generic description of a failure on an established tab (probe, KV request): the
    classes of `classify` plus the transport cause, never etcd's or the target's own text."""
    status = classify(exc)
    if status == "auth_failed":
        return CAUSES["auth_failed"]
    if isinstance(exc, EndpointUnresolvable):
        return CAUSES["unresolvable"]
    if isinstance(exc, EtcdTimeout):
        return CAUSES["timeout"]
    if isinstance(exc, EtcdUnavailable):
        text = error_text(exc).lower()
        if "refused" in text:
            return CAUSES["refused"]
        if "handshake" in text or "ssl" in text:
            return CAUSES["tls_failed"]
        return "connection failed"
    return "etcd request failed"


def ca_files_prune() -> int:
    """Remove the content-named CA files no stored tab uses any more (after a tab's bundle
    changed or the tab went); returns how many. Transient files belong to running tests."""
    directory = Path(settings.DATA_DIR) / "kv-tab-ca"
    if not directory.exists():
        return 0
    used = {
        _ca_name(pem)
        for pem in Cluster.objects.exclude(ca_cert="").values_list("ca_cert", flat=True)
    }
    removed = 0
    for path in directory.glob("*.pem"):
        if path.name.startswith(".") or path.name in used:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def classify(exc: Exception) -> str:
    """`unreachable` / `auth_failed` / `unknown_error`, for statuses and test results."""
    if isinstance(exc, EtcdUnavailable | EtcdTimeout):
        return "unreachable"
    if "authentication is not enabled" in error_text(exc):
        return "auth_failed"  # credentials given to a cluster without auth: wrong settings
    if isinstance(exc, EtcdAuthFailed | EtcdPermissionDenied | TabDecryptFailed | TabKeyMissing):
        return "auth_failed"
    return "unknown_error"


def error_text(exc: Exception) -> str:
    return getattr(exc, "message", "") or str(exc) or type(exc).__name__


def credentials_validate(username: str, password: str) -> None:
    if password and not username:
        raise InvalidInput("a password needs a username", code="BAD_REQUEST")


# --- gateways ------------------------------------------------------------------------------------


def tab_config(*, endpoint: str, **fields) -> ClusterConfig:
    """How to reach a tab's (one endpoint's) cluster: `cluster_config` with that endpoint."""
    return cluster_config(endpoints=[endpoint], **fields)


def cluster_config(
    *,
    endpoints: list[str],
    username: str,
    password: str,
    ca_cert: str,
    insecure_skip_verify: bool,
    timeout: float | None = None,
    transient_ca: bool = False,
) -> ClusterConfig:
    """How to reach a record's cluster. https verifies against the system CAs or `ca_cert`
    unless the record explicitly opted into skipping verification."""
    connect = (
        settings.KV_CONNECT_TIMEOUT
        if timeout is None
        else min(settings.KV_CONNECT_TIMEOUT, timeout)
    )
    # Checked (link-local, allowlist) and resolved once; every connection of this config goes
    # to that address, TLS still verifies the name the user typed.
    try:
        pinned = [pinned_endpoint(endpoint) for endpoint in endpoints]
    except EndpointNotAllowed as exc:
        raise endpoint_not_allowed(exc) from None
    names = {endpoint.server_name for endpoint in pinned} - {""}
    if len(names) > 1:
        # One config verifies one TLS name (endpoints_validate refuses this on input).
        raise InvalidInput(SERVER_NAMES_DIFFER, code="KV_TAB_INVALID_SCHEME")
    return ClusterConfig(
        endpoints=tuple(endpoint.url for endpoint in pinned),
        server_name=next(iter(names), ""),
        # etcd has no password-less logins (3.4): without a password, go anonymous.
        username=username if password else "",
        password=password,
        ca_cert=_ca_file(ca_cert, transient=transient_ca),
        insecure_skip_verify=insecure_skip_verify,
        connect_timeout=connect,
        request_timeout=settings.KV_REQUEST_TIMEOUT if timeout is None else timeout,
    )


def stored_config(cluster: Cluster, **overrides) -> ClusterConfig:
    """The config of a stored record, with `overrides` (`endpoint` or `endpoints`, credentials,
    TLS fields, timeout) in place of its stored values; the password is decrypted unless given."""
    fields = {
        "endpoints": list(cluster.endpoints),
        "username": cluster.username,
        "ca_cert": cluster.ca_cert,
        "insecure_skip_verify": cluster.insecure_skip_verify,
    }
    if "endpoint" in overrides:
        overrides["endpoints"] = [overrides.pop("endpoint")]
    fields.update(overrides)
    if "password" not in fields:
        fields["password"] = password_decrypt(cluster.password_cipher, tab_id=str(cluster.pk))
    return cluster_config(**fields)


def cluster_gateway(cluster: Cluster) -> ClusterGateway:
    """The shared etcdgateway ClusterGateway of any record: `default` is the one the ETCD_*
    settings configure, any other is built from the record (its password decrypted; raises
    TabKeyMissing / TabDecryptFailed, or InvalidInput when its endpoint is no longer allowed).
    Cached per config, so every caller of one record shares its channels."""
    if cluster.is_default:
        return shared_gateway()
    return shared_gateway(stored_config(cluster))


tab_gateway = cluster_gateway  # the name the KV tab code knew it by


def tab_gateway_forget(tab: Cluster) -> None:
    """Close this process's cached gateway of the record as stored now (before it changes or
    goes).

    Other processes keep theirs until they restart; their key (the old config) is never used
    again, so that costs idle channels, never wrong answers.
    """
    if tab.is_default:
        return
    # Nothing usable was ever cached under a config we cannot rebuild.
    with contextlib.suppress(TabKeyMissing, TabDecryptFailed, DomainError, EndpointUnresolvable):
        forget_gateway(stored_config(tab))


def connection_test(config: ClusterConfig) -> list[MemberInfo]:
    """Status + MemberList on the tab's endpoint within TEST_TIMEOUT; returns its members or
    raises ConnectionTestFailed with a generic cause.

    A TCP connect (and TLS handshake for https) first tells refused / timeout / TLS apart; once
    those passed, anything but etcd's answer is "not an etcd endpoint", whatever the service
    sent or how it closed. A private gateway, closed afterwards: credentials of a failed
    attempt must not stay cached.
    """
    try:
        return _connection_test(config)
    finally:
        if Path(config.ca_cert).name.startswith(TRANSIENT_CA_PREFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(config.ca_cert)


def _connection_test(config: ClusterConfig) -> list[MemberInfo]:
    _preflight(config)
    gateway = ClusterGateway(config)
    try:
        client = gateway.client_for(config.endpoints[0], timeout=TEST_TIMEOUT)
        endpoint_check(client, timeout=TEST_TIMEOUT)
        return client.members(timeout=TEST_TIMEOUT)
    except EtcdError as exc:
        if classify(exc) == "auth_failed":
            raise ConnectionTestFailed("auth_failed") from exc
        if isinstance(exc, EtcdTimeout):
            raise ConnectionTestFailed("timeout") from exc
        raise ConnectionTestFailed("not_etcd") from exc
    finally:
        gateway.close()


def _preflight(config: ClusterConfig) -> None:
    """Connect (and for https shake hands) once with the test's timeout, to name the cause."""
    host, port, secure = split_endpoint(config.endpoints[0])
    timeout = min(TEST_TIMEOUT, config.connect_timeout)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise ConnectionTestFailed("timeout") from None
    except ConnectionRefusedError:
        raise ConnectionTestFailed("refused") from None
    except OSError:
        raise ConnectionTestFailed("unreachable") from None
    with sock:
        if not secure:
            return
        if config.insecure_skip_verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = config.ssl_context
        try:
            with context.wrap_socket(sock, server_hostname=config.server_name or host):
                pass
        except (ssl.SSLError, OSError):
            # A service that never answers the ClientHello (Redis waits for a newline) failed
            # the handshake too: every non-TLS service gets this same answer.
            raise ConnectionTestFailed("tls_failed") from None


def endpoint_check(client: EtcdClient, *, timeout: float) -> None:
    """Status, then a one-key read: Status and MemberList answer without credentials even when
    etcd auth is on, a Range does not. Permission denied on that key still proves the
    credentials (a user limited to a prefix); a refused login raises EtcdAuthFailed. etcd 3.5
    answers Status to root only: a denied Status of a logged-in user is an answer too."""
    try:
        client.status(timeout=timeout)
    except EtcdAuthFailed:
        raise
    except EtcdPermissionDenied:
        pass
    try:
        client.range_page(b"\0", limit=1, keys_only=True, serializable=True, timeout=timeout)
    except EtcdAuthFailed:
        raise
    except EtcdPermissionDenied:
        pass


def connection_tried(
    *,
    endpoint: str = "",
    endpoints: list[str] | None = None,
    username: str,
    password: str,
    ca_cert: str,
    insecure_skip_verify: bool,
) -> tuple[str, list[MemberInfo]]:
    """Validate a new record's connection fields (CA bundle, credentials, allowed endpoints) and
    test each endpoint (concurrently): (the validated CA bundle, the members the first one
    found). The endpoints are validated already; a refusal or a failed test of any endpoint is
    a 400 with the tab codes (naming the endpoint when there are several)."""
    ca_cert = ca_cert_validate(ca_cert)
    credentials_validate(username, password)
    endpoints = endpoints or [endpoint]
    fields = {
        "username": username,
        "password": password,
        "ca_cert": ca_cert,
        "insecure_skip_verify": insecure_skip_verify,
    }
    if len(endpoints) == 1:
        return ca_cert, _endpoint_tried(endpoints[0], fields)
    with ThreadPoolExecutor(max_workers=min(8, len(endpoints))) as pool:
        outcomes = list(pool.map(lambda url: _endpoint_outcome(url, fields), endpoints))
    for url, outcome in zip(endpoints, outcomes, strict=True):
        if isinstance(outcome, InvalidInput):
            outcome.message = f"{url}: {outcome.message}"
            outcome.args = (outcome.message,)
            outcome.extra["endpoint"] = url
            raise outcome
    return ca_cert, outcomes[0]


def _endpoint_tried(endpoint: str, fields: dict) -> list[MemberInfo]:
    try:
        config = tab_config(endpoint=endpoint, timeout=TEST_TIMEOUT, transient_ca=True, **fields)
    except EndpointUnresolvable:
        raise connection_refusal(ConnectionTestFailed("unresolvable")) from None
    return connection_verified(config)


def _endpoint_outcome(endpoint: str, fields: dict) -> list[MemberInfo] | InvalidInput:
    try:
        return _endpoint_tried(endpoint, fields)
    except InvalidInput as exc:
        return exc


def connection_verified(config: ClusterConfig) -> list[MemberInfo]:
    """The members a connection test found, or the test's failure as a 400 refusal."""
    try:
        return connection_test(config)
    except ConnectionTestFailed as exc:
        raise connection_refusal(exc) from exc


def connection_refusal(exc: ConnectionTestFailed) -> InvalidInput:
    code = "KV_TAB_AUTH_FAILED" if exc.status == "auth_failed" else "KV_TAB_UNREACHABLE"
    # 400, not 401: the dashboard must not take a remote cluster's refusal as a logout.
    return InvalidInput(exc.message, code=code, status=exc.status, cause=exc.cause)


_default_urls = ReuseWindow(max_entries=1)  # by ETCD_ENDPOINTS: a new setting asks again


def default_cluster_urls() -> tuple[frozenset[str], bool]:
    """Normalised client URLs of the default cluster's members (cached 30 s) and whether the
    answer is degraded (MemberList failed: the configured endpoints only)."""
    configured = tuple(settings.ETCD_ENDPOINTS)
    cached = _default_urls.get(configured, MEMBER_CACHE_SECONDS)
    if cached is not None:
        return cached, False
    try:
        members = shared_gateway().members()
    except EtcdError:
        return frozenset(normalise_endpoint(url) for url in configured), True
    urls = frozenset(
        normalise_endpoint(url) for member in members for url in member.client_urls
    ) | frozenset(normalise_endpoint(url) for url in configured)
    _default_urls.put(configured, urls)
    return urls, False


def default_member_check(endpoint: str, members: list[MemberInfo]) -> str:
    """Refuse a tab that is the default cluster; "" or the `degraded_member_check` warning.

    Besides the tab's own URL, its cluster's member URLs are compared, so a different member of
    the default cluster is caught even when the default cluster's MemberList is unavailable.
    """
    default_urls, degraded = default_cluster_urls()
    candidates = [endpoint, *(normalise_endpoint(u) for m in members for u in m.client_urls)]
    matched = next((url for url in candidates if url in default_urls), None)
    if matched:
        raise Conflict(
            "endpoint belongs to the default cluster",
            code="KV_TAB_BELONGS_TO_DEFAULT",
            matched_member_url=matched,
            message=f"{endpoint} is part of the default cluster (member {matched}); "
            "use the default tab instead",
        )
    return "degraded_member_check" if degraded else ""
