"""Writes of the KV tabs (reference §4.6): create, update, delete, reorder, connection tests
(of a stored tab or of a dialog's fields), resolving `?tab_id=` for the KV routes, and the
liveness probe. Every write is audited here.

Each tab is one remote etcd cluster of one user. Failures are `ApiError`s carrying the
reference's tab codes (`KV_TAB_*`); another user's tab id behaves exactly like an unknown one.
"""

import contextlib
import hashlib
import logging
import os
import socket
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import audit_record
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
    cluster_gateway,
    forget_gateway,
    normalise_endpoint,
    split_endpoint,
)
from etcdgateway.egress import EndpointNotAllowed, EndpointUnresolvable, pinned_endpoint
from etcdmonitor_site.exceptions import ApiError
from etcdmonitor_site.reuse import ReuseWindow
from kvmanager.models import KvClusterTab
from kvmanager.tab_crypto import (
    TabDecryptFailed,
    TabKeyMissing,
    password_decrypt,
    password_encrypt,
)

logger = logging.getLogger(__name__)

DEFAULT_TAB_ID = "default"
MAX_TABS_PER_USER = 10
TEST_TIMEOUT = 5.0  # the synchronous connection test of create / patch / test
PROBE_TIMEOUT = 10.0
PROBE_WORKERS = 8
FAILURES_BEFORE_ERROR = 2
MEMBER_CACHE_SECONDS = 30.0
MASK = "***"

Status = KvClusterTab.Status


def tab_error(text: str, /, *, status_code: int, code: str, **extra) -> ApiError:
    return ApiError(text, status_code=status_code, code=code, **extra)


def not_found() -> ApiError:
    return tab_error("tab not found", status_code=404, code="KV_TAB_NOT_FOUND")


def default_protected() -> ApiError:
    return tab_error(
        "the default tab cannot be changed or closed",
        status_code=400,
        code="KV_TAB_DEFAULT_PROTECTED",
    )


def key_missing(exc: Exception) -> ApiError:
    return tab_error(
        f"tab credentials unavailable: {exc}; re-enter the password",
        status_code=500,
        code="KV_TAB_KEK_MISSING",
    )


@dataclass(frozen=True)
class TabActor:
    """Who acts on tabs: the owner, and the client IP for the audit log."""

    user: object
    client_ip: str | None = None

    @property
    def username(self) -> str:
        return getattr(self.user, "username", "") or "anonymous"


def _audit(
    operation: str,
    *,
    actor: TabActor,
    target: str,
    params: str,
    result: str = "ok",
    success: bool = True,
    started: float | None = None,
) -> None:
    audit_record(
        operation=operation,
        username=actor.username,
        target=target,
        params=params,
        result=result,
        duration_ms=int((time.monotonic() - started) * 1000) if started else 0,
        success=success,
        client_ip=actor.client_ip,
    )


# --- validation ----------------------------------------------------------------------------------


def endpoint_validate(endpoint: str) -> str:
    """Exactly one `http(s)://host[:port]` URL, normalised; else 400 KV_TAB_INVALID_SCHEME."""
    raw = endpoint.strip()
    invalid = tab_error(
        "endpoint must start with http:// or https:// and name a host",
        status_code=400,
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


def ca_cert_validate(pem: str) -> str:
    """An optional PEM CA bundle; 400 BAD_REQUEST when it holds no certificate."""
    pem = pem.strip()
    if not pem:
        return ""
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise tab_error(
            "ca_cert is not a PEM certificate bundle", status_code=400, code="BAD_REQUEST"
        ) from exc
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


def endpoint_not_allowed(exc: EndpointNotAllowed) -> ApiError:
    return tab_error(exc.message, status_code=400, code="KV_TAB_ENDPOINT_NOT_ALLOWED")


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
        text = _message(exc).lower()
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
        for pem in KvClusterTab.objects.exclude(ca_cert="").values_list("ca_cert", flat=True)
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
    if "authentication is not enabled" in _message(exc):
        return "auth_failed"  # credentials given to a cluster without auth: wrong settings
    if isinstance(exc, EtcdAuthFailed | EtcdPermissionDenied | TabDecryptFailed | TabKeyMissing):
        return "auth_failed"
    return "unknown_error"


def _message(exc: Exception) -> str:
    return getattr(exc, "message", "") or str(exc) or type(exc).__name__


def _credentials_validate(username: str, password: str) -> None:
    if password and not username:
        raise tab_error("a password needs a username", status_code=400, code="BAD_REQUEST")


# --- gateways ------------------------------------------------------------------------------------


def tab_config(
    *,
    endpoint: str,
    username: str,
    password: str,
    ca_cert: str,
    insecure_skip_verify: bool,
    timeout: float | None = None,
    transient_ca: bool = False,
) -> ClusterConfig:
    """How to reach a tab's cluster. https verifies against the system CAs or `ca_cert` unless
    the tab explicitly opted into skipping verification."""
    connect = (
        settings.KV_CONNECT_TIMEOUT
        if timeout is None
        else min(settings.KV_CONNECT_TIMEOUT, timeout)
    )
    # Checked (link-local, allowlist) and resolved once; every connection of this config goes
    # to that address, TLS still verifies the name the user typed.
    try:
        pinned = pinned_endpoint(endpoint)
    except EndpointNotAllowed as exc:
        raise endpoint_not_allowed(exc) from None
    return ClusterConfig(
        endpoints=(pinned.url,),
        server_name=pinned.server_name,
        # etcd has no password-less logins (3.4): without a password, go anonymous.
        username=username if password else "",
        password=password,
        ca_cert=_ca_file(ca_cert, transient=transient_ca),
        insecure_skip_verify=insecure_skip_verify,
        connect_timeout=connect,
        request_timeout=settings.KV_REQUEST_TIMEOUT if timeout is None else timeout,
    )


def _stored_config(tab: KvClusterTab, **overrides) -> ClusterConfig:
    fields = {
        "endpoint": tab.endpoint,
        "username": tab.username,
        "ca_cert": tab.ca_cert,
        "insecure_skip_verify": tab.insecure_skip_verify,
    }
    fields.update(overrides)
    if "password" not in fields:
        fields["password"] = password_decrypt(tab.password_cipher, tab_id=str(tab.id))
    return tab_config(**fields)


def tab_gateway(tab: KvClusterTab) -> ClusterGateway:
    """The shared gateway of a tab (raises TabKeyMissing / TabDecryptFailed)."""
    return cluster_gateway(_stored_config(tab))


def _tab_gateway_forget(tab: KvClusterTab) -> None:
    """Close this process's cached gateway of the tab as stored now (before it changes or goes).

    Other processes keep theirs until they restart; their key (the old config) is never used
    again, so that costs idle channels, never wrong answers.
    """
    # Nothing usable was ever cached under a config we cannot rebuild.
    with contextlib.suppress(TabKeyMissing, TabDecryptFailed, ApiError, EndpointUnresolvable):
        forget_gateway(_stored_config(tab))


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


def _checked_config(
    *, endpoint: str, username: str, password: str, ca_cert: str, insecure_skip_verify: bool
) -> tuple[str, ClusterConfig]:
    """(validated CA bundle, the config to test with) for a create or a pre-create test."""
    ca_cert = ca_cert_validate(ca_cert)
    _credentials_validate(username, password)
    try:
        config = tab_config(
            endpoint=endpoint,
            username=username,
            password=password,
            ca_cert=ca_cert,
            insecure_skip_verify=insecure_skip_verify,
            timeout=TEST_TIMEOUT,
            transient_ca=True,
        )
    except EndpointUnresolvable:
        raise _test_failed(ConnectionTestFailed("unresolvable")) from None
    return ca_cert, config


def _test_or_raise(config: ClusterConfig) -> list[MemberInfo]:
    try:
        return connection_test(config)
    except ConnectionTestFailed as exc:
        raise _test_failed(exc) from exc


def _test_failed(exc: ConnectionTestFailed) -> ApiError:
    code = "KV_TAB_AUTH_FAILED" if exc.status == "auth_failed" else "KV_TAB_UNREACHABLE"
    # 400, not 401: the dashboard must not take a remote cluster's refusal as a logout.
    return tab_error(exc.message, status_code=400, code=code, status=exc.status, cause=exc.cause)


_default_urls = ReuseWindow(max_entries=1)  # by ETCD_ENDPOINTS: a new setting asks again


def default_cluster_urls() -> tuple[frozenset[str], bool]:
    """Normalised client URLs of the default cluster's members (cached 30 s) and whether the
    answer is degraded (MemberList failed: the configured endpoints only)."""
    configured = tuple(settings.ETCD_ENDPOINTS)
    cached = _default_urls.get(configured, MEMBER_CACHE_SECONDS)
    if cached is not None:
        return cached, False
    try:
        members = cluster_gateway().members()
    except EtcdError:
        return frozenset(normalise_endpoint(url) for url in configured), True
    urls = frozenset(
        normalise_endpoint(url) for member in members for url in member.client_urls
    ) | frozenset(normalise_endpoint(url) for url in configured)
    _default_urls.put(configured, urls)
    return urls, False


def _default_member_check(endpoint: str, members: list[MemberInfo]) -> str:
    """Refuse a tab that is the default cluster; "" or the `degraded_member_check` warning.

    Besides the tab's own URL, its cluster's member URLs are compared, so a different member of
    the default cluster is caught even when the default cluster's MemberList is unavailable.
    """
    default_urls, degraded = default_cluster_urls()
    candidates = [endpoint, *(normalise_endpoint(u) for m in members for u in m.client_urls)]
    matched = next((url for url in candidates if url in default_urls), None)
    if matched:
        raise tab_error(
            "endpoint belongs to the default cluster",
            status_code=409,
            code="KV_TAB_BELONGS_TO_DEFAULT",
            matched_member_url=matched,
            message=f"{endpoint} is part of the default cluster (member {matched}); "
            "use the default tab instead",
        )
    return "degraded_member_check" if degraded else ""


# --- reads that resolve ids ----------------------------------------------------------------------


def tab_for_user(*, actor: TabActor, tab_id: str, route: str) -> KvClusterTab:
    """The actor's tab `tab_id`, or 404 KV_TAB_NOT_FOUND. Another user's id answers exactly like
    an unknown one and is audited as `kv_tab_cross_user_attempt`."""
    if tab_id == DEFAULT_TAB_ID:
        raise default_protected()
    try:
        key = uuid.UUID(tab_id)
    except (ValueError, TypeError):
        raise not_found() from None
    tab = KvClusterTab.objects.filter(pk=key).first()
    if tab is None:
        raise not_found()
    if tab.owner_id != actor.user.pk:
        _audit_cross_user(actor=actor, ids=[str(key)], route=route)
        raise not_found()
    return tab


def _audit_cross_user(*, actor: TabActor, ids: list[str], route: str) -> None:
    logger.warning("user %s tried another user's KV tab(s) %s", actor.username, ",".join(ids))
    _audit(
        "kv_tab_cross_user_attempt",
        actor=actor,
        target=",".join(ids),
        params=f"route={route}",
        result="forbidden",
        success=False,
    )


# --- writes --------------------------------------------------------------------------------------


def _scheme(endpoint: str) -> str:
    return endpoint.split("://", 1)[0].lower() if "://" in endpoint else ""


def _lock_owner(user) -> None:
    # Serialises one user's creates so that the limit and sort_order hold under concurrency.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def tab_create(
    *,
    actor: TabActor,
    endpoint: str,
    name: str = "",
    username: str = "",
    password: str = "",
    ca_cert: str = "",
    insecure_skip_verify: bool = False,
) -> tuple[KvClusterTab, str]:
    """Validate (scheme, limit, live connection test, not the default cluster), encrypt the
    password and store the tab at the end of the user's order. Returns (tab, warning)."""
    started = time.monotonic()
    scheme = _scheme(endpoint.strip())
    masked = f"scheme={scheme} username={username} password={MASK if password else ''}"

    def fail(exc: ApiError, result: str, params: str = masked) -> ApiError:
        _audit(
            "kv_tab_create",
            actor=actor,
            target=endpoint.strip()[:512],
            params=params,
            result=result,
            success=False,
            started=started,
        )
        return exc

    try:
        endpoint = endpoint_validate(endpoint)
    except ApiError as exc:
        raise fail(exc, "invalid_scheme") from None
    limit = tab_error(
        f"at most {MAX_TABS_PER_USER} tabs per user",
        status_code=409,
        code="KV_TAB_LIMIT_EXCEEDED",
    )
    if KvClusterTab.objects.filter(owner=actor.user).count() >= MAX_TABS_PER_USER:
        raise fail(limit, "limit_exceeded", "per-user limit reached")
    try:
        ca_cert, config = _checked_config(
            endpoint=endpoint,
            username=username,
            password=password,
            ca_cert=ca_cert,
            insecure_skip_verify=insecure_skip_verify,
        )
    except ApiError as exc:
        raise fail(exc, f"{exc.extra.get('status', 'bad_request')}: {exc.message}") from None
    try:
        members = _test_or_raise(config)
    except ApiError as exc:
        raise fail(exc, f"{exc.extra['status']}: {exc.message}") from None
    try:
        warning = _default_member_check(endpoint, members)
    except ApiError as exc:
        matched = exc.extra["matched_member_url"]
        raise fail(exc, "belongs_to_default", f"scheme={scheme} matched={matched}") from None

    tab_id = uuid.uuid4()
    try:
        cipher = password_encrypt(password, tab_id=str(tab_id))
    except TabKeyMissing as exc:
        error = tab_error(
            f"cannot encrypt the password: {exc}", status_code=500, code="ENCRYPT_FAILED"
        )
        raise fail(error, "encrypt_failed") from None
    now = timezone.now()
    with transaction.atomic():
        _lock_owner(actor.user)
        owned = KvClusterTab.objects.filter(owner=actor.user)
        tab = None
        if owned.count() < MAX_TABS_PER_USER:
            tab = KvClusterTab.objects.create(
                id=tab_id,
                owner=actor.user,
                name=(name.strip() or urlsplit(endpoint).hostname or endpoint)[:200],
                endpoint=endpoint,
                username=username,
                password_cipher=cipher,
                ca_cert=ca_cert,
                insecure_skip_verify=insecure_skip_verify,
                sort_order=(owned.aggregate(top=Max("sort_order"))["top"] or 0) + 1,
                last_status=Status.OK,
                last_checked_at=now,
                created_at=now,
                updated_at=now,
            )
    if tab is None:  # another request of this user took the last slot meanwhile
        raise fail(limit, "limit_exceeded", "per-user limit reached")
    _audit(
        "kv_tab_create",
        actor=actor,
        target=str(tab.id),
        params=f"scheme={scheme} endpoint={endpoint} username={username} "
        f"password={MASK if password else ''}",
        started=started,
    )
    return tab, warning


CONNECTION_FIELDS = ("username", "password", "clear_password", "ca_cert", "insecure_skip_verify")
IDENTITY_FIELDS = ("username", "ca_cert", "insecure_skip_verify")


def tab_update(*, actor: TabActor, tab: KvClusterTab, changes: dict) -> tuple[KvClusterTab, str]:
    """Apply a PATCH. A changed endpoint is re-validated like a create (scheme, connection test
    with the new or stored credentials, default-cluster check) and resets the status to ok.
    Credential or TLS changes alone reset it to unknown for the next probe. `password` "" keeps
    the stored one (reference); `clear_password: true` removes it. A change of endpoint, scheme,
    TLS fields or username drops the stored password unless `password` gives a new one (it
    must never reach another host). Returns (tab, warning)."""
    started = time.monotonic()
    fields: dict = {}
    warning = ""
    if "name" in changes and changes["name"].strip():
        fields["name"] = changes["name"].strip()[:200]
    for field in ("username", "insecure_skip_verify"):
        if field in changes and changes[field] != getattr(tab, field):
            fields[field] = changes[field]
    if "ca_cert" in changes:
        ca_cert = ca_cert_validate(changes["ca_cert"])
        if ca_cert != tab.ca_cert:
            fields["ca_cert"] = ca_cert
    new_password = None
    if changes.get("clear_password"):
        new_password = ""
    elif changes.get("password"):
        new_password = changes["password"]

    endpoint = changes.get("endpoint")
    if endpoint is not None:
        endpoint = endpoint_validate(endpoint)
    moved = endpoint is not None and endpoint != tab.endpoint
    # The stored password was given for one host, user and TLS identity: a PATCH that changes
    # any of them (the scheme is part of the endpoint) must not send it anywhere else, so it
    # is dropped unless this request brings a password of its own.
    identity_changed = moved or any(key in fields for key in IDENTITY_FIELDS)
    if new_password is None and identity_changed and tab.password_cipher:
        new_password = ""
    _credentials_validate(
        fields.get("username", tab.username),
        new_password if new_password is not None else bool(tab.password_cipher),
    )
    if moved:
        overrides = {
            key: fields[key]
            for key in ("username", "ca_cert", "insecure_skip_verify")
            if key in fields
        }
        if new_password is not None:
            overrides["password"] = new_password
        try:
            config = _stored_config(
                tab, endpoint=endpoint, timeout=TEST_TIMEOUT, transient_ca=True, **overrides
            )
        except (TabKeyMissing, TabDecryptFailed) as exc:
            raise key_missing(exc) from None
        except EndpointUnresolvable:
            raise _test_failed(ConnectionTestFailed("unresolvable")) from None
        warning = _default_member_check(endpoint, _test_or_raise(config))
        fields.update(
            endpoint=endpoint,
            last_status=Status.OK,
            last_error="",
            failure_count=0,
            last_checked_at=timezone.now(),
        )
    elif any(key in fields for key in CONNECTION_FIELDS) or new_password is not None:
        fields.update(last_status=Status.UNKNOWN, last_error="", failure_count=0)

    if new_password is not None:
        try:
            fields["password_cipher"] = password_encrypt(new_password, tab_id=str(tab.id))
        except TabKeyMissing as exc:
            raise key_missing(exc) from None
    if fields:
        if any(key in fields for key in (*CONNECTION_FIELDS, "endpoint", "password_cipher")):
            _tab_gateway_forget(tab)
        fields["updated_at"] = timezone.now()
        for field, value in fields.items():
            setattr(tab, field, value)
        tab.save(update_fields=list(fields))
        if "ca_cert" in fields:
            ca_files_prune()
    changed = sorted(f for f in fields if f not in ("updated_at", "last_checked_at"))
    _audit(
        "kv_tab_update",
        actor=actor,
        target=str(tab.id),
        params=f"fields={','.join(changed)} password="
        f"{'(cleared)' if new_password == '' else MASK if new_password else ''}",
        started=started,
    )
    return tab, warning


def tab_delete(*, actor: TabActor, tab: KvClusterTab) -> None:
    """Remove the tab (its encrypted password goes with the row)."""
    started = time.monotonic()
    tab_id = str(tab.id)
    _tab_gateway_forget(tab)
    tab.delete()
    ca_files_prune()
    _audit(
        "kv_tab_delete",
        actor=actor,
        target=tab_id,
        params=f"endpoint={tab.endpoint}",
        started=started,
    )


def connection_fields_test(
    *,
    endpoint: str,
    username: str = "",
    password: str = "",
    ca_cert: str = "",
    insecure_skip_verify: bool = False,
) -> tuple[int, str]:
    """Try a tab's connection fields before the tab exists: the checks of a create (scheme,
    credentials, CA bundle, live test, not the default cluster) without the limit, storing
    or auditing anything. Returns (member count, warning); failures raise like a create's.

    Not audited, like testing a stored tab: nothing changes. The endpoint is the user's own
    choice, the same outbound exposure a create already gives.
    """
    endpoint = endpoint_validate(endpoint)
    _, config = _checked_config(
        endpoint=endpoint,
        username=username,
        password=password,
        ca_cert=ca_cert,
        insecure_skip_verify=insecure_skip_verify,
    )
    members = _test_or_raise(config)
    return len(members), _default_member_check(endpoint, members)


def tab_test(
    *, tab: KvClusterTab, username: str | None = None, password: str | None = None
) -> tuple[str, str]:
    """Try the tab's cluster with the given or stored credentials: (status, error message)."""
    overrides = {}
    if username is not None:
        overrides["username"] = username
    if password:
        overrides["password"] = password
    try:
        config = _stored_config(tab, timeout=TEST_TIMEOUT, **overrides)
    except (TabKeyMissing, TabDecryptFailed) as exc:
        raise key_missing(exc) from None
    except EndpointUnresolvable:
        failure = ConnectionTestFailed("unresolvable")
        return failure.status, failure.message
    try:
        connection_test(config)
    except ConnectionTestFailed as exc:
        return exc.status, exc.message
    return "ok", ""


def tabs_reorder(*, actor: TabActor, ids: list[str], route: str) -> None:
    """Store the user's tab order: `ids` starts with "default", names each of the user's tabs
    exactly once (duplicates are refused, unlike the reference), in one transaction."""
    started = time.monotonic()
    if not ids or ids[0] != DEFAULT_TAB_ID:
        raise tab_error(
            "the default tab must come first",
            status_code=400,
            code="KV_TAB_DEFAULT_FIRST_REQUIRED",
        )
    rest = [str(i) for i in ids[1:]]
    if len(set(rest)) != len(rest) or DEFAULT_TAB_ID in rest:
        raise tab_error(
            "each tab may appear only once", status_code=400, code="KV_TAB_ORDER_DUPLICATE"
        )
    with transaction.atomic():
        tabs = {
            str(tab.id): tab
            for tab in KvClusterTab.objects.select_for_update().filter(owner=actor.user)
        }
        if len(rest) != len(tabs):
            raise tab_error(
                f"expected {len(tabs)} tab ids after default, got {len(rest)}",
                status_code=409,
                code="KV_TAB_ORDER_MISMATCH",
            )
        unknown = [i for i in rest if i not in tabs]
        if not unknown:
            for position, tab_id in enumerate(rest, start=1):
                tabs[tab_id].sort_order = position
            KvClusterTab.objects.bulk_update(tabs.values(), ["sort_order"])
    if unknown:  # audited outside the transaction, which a raise would roll back
        foreign = _foreign_ids(unknown, owner=actor.user)
        if foreign:
            _audit_cross_user(actor=actor, ids=foreign, route=route)
        raise tab_error("tab not found", status_code=400, code="KV_TAB_NOT_FOUND")
    _audit(
        "kv_tab_reorder",
        actor=actor,
        target=str(actor.user.pk),
        params=f"ids={','.join(ids)}",
        started=started,
    )


def _foreign_ids(ids: list[str], *, owner) -> list[str]:
    keys = []
    for value in ids:
        try:
            keys.append(uuid.UUID(value))
        except ValueError:
            continue
    found = (
        KvClusterTab.objects.filter(pk__in=keys).exclude(owner=owner).values_list("pk", flat=True)
    )
    return sorted(str(pk) for pk in found)


# --- health --------------------------------------------------------------------------------------


def tab_mark_used(*, tab: KvClusterTab, error: Exception | None) -> None:
    """After a KV request on a tab: success proves it healthy; a connection or credential
    failure marks it `error` at once (other errors, e.g. a missing key, say nothing)."""
    now = timezone.now()
    if error is None:
        if tab.last_status != Status.OK or tab.failure_count:
            KvClusterTab.objects.filter(pk=tab.pk).update(
                last_status=Status.OK, last_error="", failure_count=0, last_checked_at=now
            )
        return
    # A key outside the user's etcd role is the user's business, not the tab's health.
    if not isinstance(error, EtcdUnavailable | EtcdTimeout | EtcdAuthFailed):
        return
    status = classify(error)
    KvClusterTab.objects.filter(pk=tab.pk).update(
        last_status=Status.ERROR,
        last_error=f"{status}: {failure_text(error)}"[:2000],
        last_checked_at=now,
    )


@contextlib.contextmanager
def tab_usage(*, tab: KvClusterTab):
    """Around a KV request on a tab: marks the tab by what the request found (tab_mark_used);
    an error that is not etcd's (bad input, a value too large) says nothing about the tab."""
    try:
        yield
    except EtcdError as exc:
        tab_mark_used(tab=tab, error=exc)
        raise
    tab_mark_used(tab=tab, error=None)


def _probe_one(tab: KvClusterTab, timeout: float) -> tuple[str, str] | None:
    """None when the tab's endpoint answered Status, else (class, message). No database use:
    this runs in the probe's worker threads."""
    try:
        gateway = tab_gateway(tab)
        client = gateway.client_for(gateway.config.endpoints[0], timeout=timeout)
        endpoint_check(client, timeout=timeout)
    except ApiError as exc:  # the endpoint is no longer allowed (link-local, allowlist)
        return "unreachable", exc.message
    except (TabKeyMissing, TabDecryptFailed) as exc:
        return classify(exc), _message(exc)
    except EtcdError as exc:
        return classify(exc), failure_text(exc)
    except Exception as exc:  # one broken tab must not stop the round
        logger.exception("probe of KV tab %s failed unexpectedly", tab.pk)
        return "unknown_error", type(exc).__name__
    return None


def tabs_probe(*, workers: int = PROBE_WORKERS, timeout: float = PROBE_TIMEOUT) -> dict:
    """One liveness round over every tab of every user: one query to load them, Status on each
    concurrently (at most `workers` at a time, `timeout` each), one bulk update. A tab turns
    `error` only after FAILURES_BEFORE_ERROR consecutive failures; one success clears it."""
    tabs = list(
        KvClusterTab.objects.only(
            "id",
            "endpoint",
            "username",
            "password_cipher",
            "ca_cert",
            "insecure_skip_verify",
            "last_status",
            "last_error",
            "failure_count",
        )
    )
    if not tabs:
        return {"probed": 0, "ok": 0, "failing": 0, "error": 0}
    with ThreadPoolExecutor(max_workers=min(workers, len(tabs))) as pool:
        results = list(pool.map(lambda tab: _probe_one(tab, timeout), tabs))
    now = timezone.now()
    counts = {"probed": len(tabs), "ok": 0, "failing": 0, "error": 0}
    for tab, failure in zip(tabs, results, strict=True):
        tab.last_checked_at = now
        if failure is None:
            tab.last_status, tab.last_error, tab.failure_count = Status.OK, "", 0
            counts["ok"] += 1
            continue
        tab.failure_count += 1
        if tab.failure_count >= FAILURES_BEFORE_ERROR:
            if tab.last_status != Status.ERROR:
                logger.warning("KV tab %s (%s) is failing: %s", tab.pk, tab.endpoint, failure[1])
            tab.last_status = Status.ERROR
            tab.last_error = f"{failure[0]}: {failure[1]}"[:2000]
            counts["error"] += 1
        else:
            counts["failing"] += 1
    KvClusterTab.objects.bulk_update(
        tabs, ["last_status", "last_error", "last_checked_at", "failure_count"], batch_size=500
    )
    return counts
