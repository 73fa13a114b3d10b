"""Endpoint health and failover across the configured endpoints of one cluster."""

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pyetcd

from etcdgateway.client import EtcdClient, MemberInfo, MemberStatus
from etcdgateway.config import ClusterConfig, normalise_endpoint
from etcdgateway.errors import (
    EtcdAuthFailed,
    EtcdError,
    EtcdPermissionDenied,
    EtcdServerTimeout,
    EtcdUnavailable,
)
from etcdgateway.kv import Deletion, KeyValue, RangePage
from etcdgateway.scraper import MetricsScraper
from etcdgateway.watch import Watch

logger = logging.getLogger(__name__)

T = TypeVar("T")

HEALTH_MAX_AGE = 15.0  # seconds a probe result is trusted (the reference re-probes every 15 s)
PROBE_TIMEOUT = 3.0


@dataclass
class EndpointHealth:
    healthy: bool | None = None  # None: never probed
    checked_at: float = 0.0
    error: str = ""


class ClusterGateway:
    """Clients for one cluster: one per endpoint, reused, with health-ordered failover."""

    def __init__(self, config: ClusterConfig):
        self.config = config
        self._clients: dict[tuple[str, float], EtcdClient] = {}
        self._health = {endpoint: EndpointHealth() for endpoint in config.endpoints}
        self._lock = threading.Lock()
        self._scrapers: dict[float, MetricsScraper] = {}

    # --- clients ------------------------------------------------------------------------------

    def client_for(self, endpoint: str, *, timeout: float | None = None) -> EtcdClient:
        """A client bound to one endpoint (a configured one or a member's advertised URL)."""
        endpoint = normalise_endpoint(endpoint)
        key = (endpoint, timeout if timeout is not None else self.config.request_timeout)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = EtcdClient(endpoint, self.config, timeout=key[1])
        return client

    def member_client(self, member: MemberInfo, *, timeout: float | None = None) -> EtcdClient:
        """A client bound to one member: its first client URL, which must not fail over."""
        if not member.client_urls:
            raise EtcdUnavailable(f"member {member.name or member.id_str} has no client URL")
        return self.client_for(member.client_urls[0], timeout=timeout)

    # --- health -------------------------------------------------------------------------------

    def _probe_one(self, endpoint: str) -> EndpointHealth:
        client = self.client_for(endpoint)
        try:
            client.status(timeout=min(PROBE_TIMEOUT, self.config.connect_timeout))
            return EndpointHealth(healthy=True, checked_at=time.monotonic())
        except EtcdAuthFailed as exc:
            return EndpointHealth(healthy=False, checked_at=time.monotonic(), error=exc.message)
        except EtcdPermissionDenied:
            # etcd 3.5 answers Status to root only: a logged-in user's denial is still an
            # answer from a live, serving member.
            return EndpointHealth(healthy=True, checked_at=time.monotonic())
        except EtcdError as exc:
            return EndpointHealth(healthy=False, checked_at=time.monotonic(), error=exc.message)

    def probe(self) -> dict[str, EndpointHealth]:
        """Probe every configured endpoint concurrently (Status RPC) and log transitions."""
        with ThreadPoolExecutor(max_workers=len(self.config.endpoints)) as pool:
            results = dict(
                zip(
                    self.config.endpoints,
                    pool.map(self._probe_one, self.config.endpoints),
                    strict=True,
                )
            )
        for endpoint, result in results.items():
            previous = self._health[endpoint].healthy
            if previous is not None and previous != result.healthy:
                if result.healthy:
                    logger.info("etcd endpoint recovered: %s", endpoint)
                else:
                    logger.warning(
                        "etcd endpoint became unhealthy: %s (%s)", endpoint, result.error
                    )
            self._health[endpoint] = result
        return dict(results)

    def health(self, *, max_age: float = HEALTH_MAX_AGE) -> dict[str, EndpointHealth]:
        """Health of each endpoint, re-probed when the last probe is older than `max_age`."""
        now = time.monotonic()
        if any(h.healthy is None or now - h.checked_at > max_age for h in self._health.values()):
            return self.probe()
        return dict(self._health)

    def is_available(self, *, max_age: float = HEALTH_MAX_AGE) -> bool:
        return any(h.healthy for h in self.health(max_age=max_age).values())

    def _mark(self, endpoint: str, healthy: bool, error: str = "") -> None:
        self._health[endpoint] = EndpointHealth(healthy, time.monotonic(), error)

    def report_unavailable(self, endpoint: str, reason: str) -> None:
        """A caller found `endpoint` unusable outside `call` (e.g. a watch stream that went
        silent): the next calls try the other endpoints first."""
        endpoint = normalise_endpoint(endpoint)
        if endpoint in self._health:
            self._mark(endpoint, False, reason)

    def _endpoints_in_order(self) -> list[str]:
        # Known-healthy first, then unknown, then known-bad, each in configured order.
        rank = {True: 0, None: 1, False: 2}
        return sorted(self.config.endpoints, key=lambda e: rank[self._health[e].healthy])

    def preferred_endpoint(self) -> str:
        """The endpoint `call` tries first (known-healthy before unknown before known-bad)."""
        return self._endpoints_in_order()[0]

    def call(self, operation: Callable[[EtcdClient], T]) -> T:
        """Run `operation(client)` on the first endpoint that answers.

        Fails over only on "unavailable" (nothing reached the server, so retrying is safe even
        for writes); any other error, timeouts included, is the answer.
        """
        failures = []
        for endpoint in self._endpoints_in_order():
            client = self.client_for(endpoint)
            try:
                result = operation(client)
            except EtcdUnavailable as exc:
                self.note_outcome(endpoint, exc)
                failures.append(exc.message.removeprefix("etcd unavailable: "))
                continue
            except EtcdError as exc:
                self.note_outcome(endpoint, exc)
                raise
            self.note_outcome(endpoint)
            return result
        raise EtcdUnavailable("; ".join(failures) or "no endpoint configured")

    def note_outcome(self, endpoint: str, error: EtcdError | None = None) -> None:
        """What a call to `endpoint` told of its health (an answer, or `error`), as `call`
        records it; for calls made outside `call` (a fleet round's)."""
        if error is None:
            if self._health[endpoint].healthy is not True:
                self._mark(endpoint, True)
        elif isinstance(error, EtcdUnavailable) or (
            # Our deadline passed without an answer; etcd's own timeout is an answer.
            error.status_code == 504 and not isinstance(error, EtcdServerTimeout)
        ):
            self._mark(endpoint, False, error.message)

    # --- calls used across apps ---------------------------------------------------------------

    def members(self, *, timeout: float | None = None) -> list[MemberInfo]:
        return self.call(lambda client: client.members(timeout=timeout))

    def status(self) -> MemberStatus:
        """Status of whichever member answers first."""
        return self.call(lambda client: client.status())

    def alarms(self, *, timeout: float | None = None) -> list[tuple[int, str]]:
        """The cluster's active alarms as (member id, alarm name) pairs."""
        return self.call(lambda client: client.alarms(timeout=timeout))

    def alarm_disarm(self, member_id: int, alarm: str, *, timeout: float | None = None) -> None:
        """Deactivate alarm `alarm` ("NOSPACE", "CORRUPT") of member `member_id`."""
        self.call(lambda client: client.alarm_disarm(member_id, alarm, timeout=timeout))

    def range_page(self, start: bytes, end: bytes = b"", **options) -> RangePage:
        """One Range over [start, end) on the first endpoint that answers; `options` (limit,
        keys_only, count_only, revision) as `EtcdClient.range_page` takes them."""
        return self.call(lambda client: client.range_page(start, end, **options))

    def range_count(self, start: bytes, end: bytes, *, revision: int = 0) -> int:
        """How many keys [start, end) holds, none transferred."""
        return self.call(lambda client: client.range_count(start, end, revision=revision))

    def get(self, key: bytes, *, revision: int = 0) -> KeyValue | None:
        """The key with its value and revisions as of `revision` (0: the newest), None when
        absent then; a compacted `revision` raises `EtcdRevisionCompacted`."""
        return self.call(lambda client: client.get(key, revision=revision))

    def put(
        self,
        key: bytes,
        value: bytes,
        *,
        ttl: int | None,
        expected_mod_revision: int | None = None,
    ) -> int:
        """Put `value`: `ttl` None keeps the key's lease, 0 detaches it, N > 0 sets a new one.
        With `expected_mod_revision` a compare-and-swap (0: create only) that raises
        `EtcdRevisionConflict` carrying the current key. Returns the revision after the put."""
        return self.call(
            lambda client: client.put(
                key, value, ttl=ttl, expected_mod_revision=expected_mod_revision
            )
        )

    def watch(
        self, start: bytes, end: bytes = b"", *, start_revision: int = 0, prev_kv: bool = False
    ) -> Watch:
        """A watch (see `EtcdClient.watch`) on the first endpoint that connects."""
        return self.call(
            lambda client: client.watch(start, end, start_revision=start_revision, prev_kv=prev_kv)
        )

    def put_all(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Put every (key, value) in one transaction."""
        items = list(items)  # a retry on the next endpoint must see them all again
        self.call(lambda client: client.put_all(items))

    def delete(self, key: bytes, *, prefix: bytes | None = None) -> int:
        """Delete `key` and, with `prefix`, every key under it, in one transaction; how many."""
        return self.call(lambda client: client.delete(key, prefix=prefix))

    def remove(self, key: bytes, *, prefix: bytes | None = None) -> Deletion:
        """`delete`, with the store's revision after it."""
        return self.call(lambda client: client.remove(key, prefix=prefix))

    def lease_grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id."""
        return self.call(lambda client: client.lease_grant(ttl))

    def lease_ttl(self, lease_id: int) -> int:
        """Seconds the lease has left (-1 for a lease that expired or never was)."""
        return self.call(lambda client: client.lease_ttl(lease_id))

    def compact(self, revision: int, *, physical: bool, timeout: float | None = None) -> None:
        """Compact the history below `revision`."""
        self.call(lambda client: client.compact(revision, physical=physical, timeout=timeout))

    def auth_enabled(self) -> bool:
        """Whether etcd's own auth is on (an anonymous UserList, first endpoint that answers)."""
        return self.call(lambda client: client.auth_enabled())

    def server_version(self) -> str:
        """`etcdserver` of GET /version (served without etcd auth), first endpoint that answers."""

        def fetch(client: EtcdClient) -> str:
            try:
                with self.http_client() as http:
                    response = http.get(f"{client.endpoint}/version")
            except httpx.ConnectError as exc:
                raise EtcdUnavailable(
                    f"{client.endpoint}: {exc}", endpoint=client.endpoint
                ) from exc
            except httpx.HTTPError as exc:
                raise EtcdError(f"/version failed: {exc}", endpoint=client.endpoint) from exc
            try:
                return str(response.json().get("etcdserver", ""))
            except (ValueError, AttributeError):
                return ""

        return self.call(fetch)

    def kv(self, operation: Callable[[pyetcd.MultiEndpointEtcd3Client], T]) -> T:
        """Run a pyetcd call with failover, e.g. `gateway.kv(lambda c: c.get(key))`."""
        return self.call(lambda client: client.call(operation))

    def http_client(self, *, timeout: float | None = None) -> httpx.Client:
        """An httpx client for /health and v2 with this cluster's TLS and credentials.

        trust_env=False: the machine's REQUESTS_CA_BUNDLE/proxy variables must not override the
        cluster's CA (a measured pitfall). The caller closes it (use it as a context manager).
        """
        auth = (
            httpx.BasicAuth(self.config.username, self.config.password)
            if self.config.has_auth
            else None
        )
        return httpx.Client(
            timeout=httpx.Timeout(
                timeout or self.config.request_timeout, connect=self.config.connect_timeout
            ),
            # Built once per config: loading the CA bundle costs ~70 ms, on every cycle.
            verify=self.config.ssl_context,
            auth=auth,
            trust_env=False,
        )

    def scraper(self, *, timeout: float | None = None) -> MetricsScraper:
        """The collector's long-lived /metrics client (thread-safe; closed with the gateway).

        Kept across cycles so its connections are: reconnecting to every member on every cycle
        showed up in the collector's CPU profile.
        """
        key = timeout or self.config.request_timeout
        with self._lock:
            scraper = self._scrapers.get(key)
            if scraper is None:
                scraper = self._scrapers[key] = MetricsScraper(self.config, timeout=key)
        return scraper

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            for scraper in self._scrapers.values():
                scraper.close()
            self._scrapers.clear()
