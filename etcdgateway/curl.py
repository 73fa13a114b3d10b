"""libcurl handles for the collector's hot paths: `/metrics` fetches and unary gRPC calls.

Why libcurl (pycurl) on these paths and not httpx, urllib3 or grpcio: the collector makes a
`/metrics` fetch and several Status calls per member every cycle, and libcurl does the I/O
and HTTP/2 framing in C with the GIL released (measured per call in docs/PERFORMANCE.md:
a 147 KB gzip scrape ~0.55 ms of CPU against ~1.4 with urllib3; Status ~0.2 ms against ~0.42
with grpcio, whose event-engine threads add their own CPU). The scraper inflates gzip itself
(`etcdgateway.scraper.inflated`), faster than libcurl's zlib.
"""

import errno
import functools
import logging
import os
import selectors
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import unquote

import grpc
import pycurl

from etcdgateway.config import ClusterConfig, split_endpoint

logger = logging.getLogger(__name__)

# Idle handles (each with its connection) kept per origin: a cycle makes one or two calls to a
# member at a time.
IDLE_PER_ORIGIN = 2
# Connections a `Transfers` keeps between rounds: libcurl's default (4 per running transfer)
# would drop most of a fleet's between two rounds.
MAX_KEPT_CONNECTIONS = 1024


@functools.cache
def _system_trust() -> list[tuple[int, str]]:
    """libcurl options naming the system's CA bundle and directory, those that exist."""
    paths = ssl.get_default_verify_paths()
    found = []
    if paths.cafile and os.path.isfile(paths.cafile):
        found.append((pycurl.CAINFO, paths.cafile))
    if paths.capath and os.path.isdir(paths.capath):
        found.append((pycurl.CAPATH, paths.capath))
    return found


TIMEOUT = "timeout"
REFUSED = "refused"
CONNECT_FAILED = "connect"
UNRESOLVED = "unresolved"
TLS = "tls"
OTHER = "other"

_TLS_ERRORS = {
    pycurl.E_SSL_CONNECT_ERROR,
    pycurl.E_SSL_ENGINE_NOTFOUND,
    pycurl.E_SSL_ENGINE_SETFAILED,
    pycurl.E_SSL_CERTPROBLEM,
    pycurl.E_SSL_CIPHER,
    pycurl.E_PEER_FAILED_VERIFICATION,
    pycurl.E_SSL_CACERT_BADFILE,
    pycurl.E_SSL_ISSUER_ERROR,
    pycurl.E_SSL_PINNEDPUBKEYNOTMATCH,
    pycurl.E_SSL_INVALIDCERTSTATUS,
    pycurl.E_SSL_CRL_BADFILE,
    pycurl.E_SSL_SHUTDOWN_FAILED,
}


# libcurl codes pycurl has no names for (CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP2_STREAM).
E_WEIRD_SERVER_REPLY = 8
E_HTTP2_STREAM = 92


def classify(handle: pycurl.Curl, exc: pycurl.error) -> tuple[str, str]:
    """(kind, human reason) of a failed transfer, the kind one of the constants above."""
    code, message = exc.args[0], str(exc.args[1])
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return TIMEOUT, "timed out"
    if code == pycurl.E_COULDNT_CONNECT:
        os_errno = handle.getinfo(pycurl.OS_ERRNO)
        if os_errno == errno.ECONNREFUSED:
            return REFUSED, "connection refused"
        return CONNECT_FAILED, f"connection failed ({errno.errorcode.get(os_errno, os_errno)})"
    if code == pycurl.E_COULDNT_RESOLVE_HOST:
        return UNRESOLVED, "host name does not resolve"
    if code in _TLS_ERRORS or (code == pycurl.E_RECV_ERROR and "SSL" in message):
        # TLS 1.3 servers refuse a client certificate after the handshake: a read error.
        return TLS, f"TLS failed: {message}"
    return OTHER, message


class Body:
    """A response body, refused past `limit` bytes (libcurl aborts the transfer when a write
    returns fewer bytes than it was given)."""

    __slots__ = ("chunks", "limit", "size")

    def __init__(self, limit: int):
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self.limit:
            return 0
        self.chunks.append(chunk)
        return len(chunk)

    @property
    def overflowed(self) -> bool:
        return self.size > self.limit

    def value(self) -> bytes:
        return b"".join(self.chunks)


# A kept connection the member closed meanwhile (it restarted, or was killed) fails the next
# transfer this way before any reply: one retry on a new connection tells the true cause.
_STALE_CONNECTION = {pycurl.E_SEND_ERROR, pycurl.E_RECV_ERROR, pycurl.E_GOT_NOTHING, pycurl.E_HTTP2}


class TransferFailed(Exception):
    """A transfer that ended without a reply: libcurl's code, `classify`'s kind and reason,
    and whether the body outgrew its limit."""

    def __init__(self, code: int, kind: str, reason: str, *, overflowed: bool):
        super().__init__(reason)
        self.code, self.kind, self.reason, self.overflowed = code, kind, reason, overflowed


class CurlPool:
    """Configured libcurl handles for one cluster's TLS settings, kept idle per origin.

    A handle serves one transfer at a time (`perform`): an idle one is taken with its
    connection still open, or a new one made, and kept again afterwards unless the transfer
    failed. Safe across threads; a forked child starts with none.
    """

    def __init__(self, config: ClusterConfig, *, timeout: float, http2: bool = False):
        self._config = config
        self._timeout = timeout
        self._http2 = http2
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[pycurl.Curl]] = {}
        self._closed = False
        self._pid = os.getpid()

    def take(self, key: tuple) -> pycurl.Curl:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not share the parent's sockets (nor close them).
                self._idle, self._pid = {}, os.getpid()
            idle = self._idle.get(key)
            if idle:
                return idle.pop()
        return self._new_handle()

    def give_back(self, key: tuple, handle: pycurl.Curl) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if not self._closed and self._pid == os.getpid() and len(idle) < IDLE_PER_ORIGIN:
                idle.append(handle)
                return
        handle.close()

    def perform(self, key: tuple, setup, finish):
        """What `finish(status, collected)` makes of one transfer's reply (`collected` is what
        `setup(handle)` returned to collect it), or of `finish(None, TransferFailed)` when it
        ended without one (read-only requests only: a stale kept connection is retried once)."""
        for attempt in (1, 2):
            handle = self.take(key)
            collected = setup(handle)
            try:
                handle.perform()
            except pycurl.error as exc:
                failed = self.failed(handle, exc, collected, attempt)
            else:
                status = handle.getinfo(pycurl.RESPONSE_CODE)
                self.give_back(key, handle)
                return finish(status, collected)
            if failed is not None:
                return finish(None, failed)
        raise AssertionError("unreachable")

    def failed(
        self, handle: pycurl.Curl, error: pycurl.error, collected, attempt: int
    ) -> "TransferFailed | None":
        """Close a failed transfer's handle (its connection is never kept) and say why it
        failed; None when it is to be made again: the first attempt, on a kept connection
        that the peer closed meanwhile (it restarted, or was killed)."""
        reused = handle.getinfo(pycurl.NUM_CONNECTS) == 0
        kind, reason = classify(handle, error)
        handle.close()
        if attempt == 1 and reused and error.args[0] in _STALE_CONNECTION:
            return None
        overflowed = isinstance(collected, Body) and collected.overflowed
        return TransferFailed(error.args[0], kind, reason, overflowed=overflowed)

    def _new_handle(self) -> pycurl.Curl:
        config = self._config
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)  # timeouts without SIGALRM: we run on threads
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        # No proxy from the environment: /metrics went direct before (urllib3's PoolManager
        # ignores it), and gRPC calls meant for a proxy never come here (`grpc_proxied`).
        handle.setopt(pycurl.PROXY, "")
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, int(config.connect_timeout * 1000))
        handle.setopt(pycurl.TIMEOUT_MS, int(self._timeout * 1000))
        if self._http2:
            # Plain http: gRPC's h2c without an upgrade; https: h2 by ALPN.
            handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
        else:
            # Said, not left to the default: in one `Transfers` libcurl would otherwise send a
            # GET over a gRPC call's HTTP/2 connection to the same port, which etcd's gRPC
            # server resets (PROTOCOL_ERROR); etcd serves /metrics over HTTP/1 there.
            handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        if config.ca_cert:
            handle.setopt(pycurl.CAINFO, config.ca_cert)
        else:
            # The wheel's libcurl was built for another distribution's CA paths: use the
            # ones Python's ssl module (and so the other HTTP clients here) trusts.
            for option, path in _system_trust():
                handle.setopt(option, path)
        if config.insecure_skip_verify:
            handle.setopt(pycurl.SSL_VERIFYPEER, 0)
            handle.setopt(pycurl.SSL_VERIFYHOST, 0)
        if config.client_cert:
            handle.setopt(pycurl.SSLCERT, config.client_cert)
            handle.setopt(pycurl.SSLKEY, config.client_key)
        return handle

    def close(self) -> None:
        with self._lock:
            self._closed = True
            handles = [handle for idle in self._idle.values() for handle in idle]
            self._idle.clear()
        for handle in handles:
            handle.close()


class _Running:
    """A transfer in a `Transfers`: where its handle came from and who hears its end."""

    __slots__ = ("attempt", "collected", "done", "finish", "key", "pool", "setup")

    def __init__(self, pool: CurlPool, key: tuple, setup, finish, done, attempt: int):
        self.pool, self.key, self.setup, self.finish, self.done = pool, key, setup, finish, done
        self.collected = None
        self.attempt = attempt


class Transfers:
    """Many transfers at once, driven by the thread that calls `run` (libcurl's multi
    interface, its sockets watched with epoll).

    Why: a round of calls to many members on one thread wakes that thread as replies come,
    instead of waking a pool thread per call and the waiting thread per reply (each wake-up
    or hand-off costs 60-160 us of CPU on a VM: docs/PERFORMANCE.md). Not thread-safe: one
    thread at a time. Its connection cache keeps the members' connections between rounds.
    """

    def __init__(self):
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_MAXCONNECTS, MAX_KEPT_CONNECTIONS)
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._selector = selectors.DefaultSelector()
        self._watched: dict[int, int] = {}
        self._timer_at: float | None = None
        self._running: dict[pycurl.Curl, _Running] = {}

    def __len__(self) -> int:
        return len(self._running)

    def start(
        self, pool: CurlPool, key: tuple, setup, finish, done: Callable, *, attempt: int = 1
    ) -> None:
        """`pool.perform(key, setup, finish)`, started here: when the transfer has ended,
        `run` calls `done(outcome)` with what `finish` returned, or the exception it raised."""
        handle = pool.take(key)
        running = _Running(pool, key, setup, finish, done, attempt)
        running.collected = setup(handle)
        self._running[handle] = running
        self._multi.add_handle(handle)  # libcurl asks for a timer at once: `run` starts it

    def run(self, until: float, *, early: bool = True) -> int:
        """Drive the transfers until the monotonic time `until`, or (`early`) until at least
        one ended; returns how many ended. Returns at once when none is running."""
        ended = 0
        while self._running:
            now = time.monotonic()
            if self._timer_at is not None and self._timer_at <= now:
                self._timer_at = None
                self._multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
            else:
                if now >= until:
                    break
                wait = until - now
                if self._timer_at is not None:
                    wait = min(wait, self._timer_at - now)
                for key, mask in self._selector.select(max(0.0, wait)):
                    flags = (pycurl.CSELECT_IN if mask & selectors.EVENT_READ else 0) | (
                        pycurl.CSELECT_OUT if mask & selectors.EVENT_WRITE else 0
                    )
                    self._multi.socket_action(key.fd, flags)
            ended += self._harvest()
            if ended and early:
                break
        return ended

    def _harvest(self) -> int:
        ended = 0
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for handle in succeeded:
                ended += self._end(handle, None)
            for handle, code, message in failed:
                ended += self._end(handle, pycurl.error(code, message))
            if not queued:
                return ended

    def _end(self, handle: pycurl.Curl, error: pycurl.error | None) -> int:
        running = self._running.pop(handle)
        self._multi.remove_handle(handle)
        if error is None:
            status = handle.getinfo(pycurl.RESPONSE_CODE)
            running.pool.give_back(running.key, handle)
            self._tell(running, status, running.collected)
            return 1
        failed = running.pool.failed(handle, error, running.collected, running.attempt)
        if failed is None:
            pool, key, setup, finish, done = (
                running.pool,
                running.key,
                running.setup,
                running.finish,
                running.done,
            )
            self.start(pool, key, setup, finish, done, attempt=2)
            return 0
        self._tell(running, None, failed)
        return 1

    @staticmethod
    def _tell(running: _Running, status, collected) -> None:
        try:
            outcome = running.finish(status, collected)
        except Exception as exc:  # noqa: BLE001 - the outcome the caller hears
            outcome = exc
        try:
            running.done(outcome)
        except Exception:  # one caller's bug must not stop the others' transfers
            logger.exception("a transfer's completion failed")

    def _on_socket(self, what: int, fd: int, multi, socketp) -> None:
        events = {
            pycurl.POLL_IN: selectors.EVENT_READ,
            pycurl.POLL_OUT: selectors.EVENT_WRITE,
            pycurl.POLL_INOUT: selectors.EVENT_READ | selectors.EVENT_WRITE,
        }.get(what, 0)
        if not events:  # POLL_REMOVE, or POLL_NONE: nothing to wait for on it now
            if self._watched.pop(fd, None) is not None:
                self._selector.unregister(fd)
            return
        if fd in self._watched:
            self._selector.modify(fd, events)
        else:
            self._selector.register(fd, events)
        self._watched[fd] = events

    def _on_timer(self, timeout_ms: int) -> None:
        self._timer_at = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000

    def close(self) -> None:
        """End every running transfer unheard and close the connections kept."""
        for handle in list(self._running):
            self._multi.remove_handle(handle)
            handle.close()
        self._running.clear()
        self._multi.close()
        self._selector.close()


def target_url(endpoint: str, path: str, config: ClusterConfig) -> tuple[str, list[str]]:
    """(URL, CONNECT_TO entries) for `endpoint` + `path`: with a TLS server name override the
    URL names that host (SNI and verification use it) and libcurl connects to the endpoint."""
    host, port, secure = split_endpoint(endpoint)
    if secure and config.server_name:
        connect_host = f"[{host}]" if ":" in host else host
        return f"https://{config.server_name}:{port}{path}", [
            f"{config.server_name}:{port}:{connect_host}:{port}"
        ]
    return f"{endpoint}{path}", []


# --- unary gRPC calls over HTTP/2 -----------------------------------------------------------------

# As grpcio is told (client.GRPC_OPTIONS): the largest reply we accept.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def grpc_proxied(endpoint: str) -> bool:
    """Whether grpcio would reach `endpoint` through a proxy from the environment (grpc_proxy,
    https_proxy or http_proxy, unless no_grpc_proxy / no_proxy names the host): such calls
    stay on grpcio, which tunnels through it."""
    environ = {name.lower(): value for name, value in os.environ.items() if value}
    if not any(environ.get(name) for name in ("grpc_proxy", "https_proxy", "http_proxy")):
        return False
    host = split_endpoint(endpoint)[0].lower()
    exempt = environ.get("no_grpc_proxy") or environ.get("no_proxy") or ""
    for entry in (e.strip().lower() for e in exempt.split(",")):
        if entry == "*" or (
            entry and (host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")))
        ):
            return False
    return True


class CurlRpcError(grpc.RpcError):
    """A gRPC status a libcurl unary call ended with (from the server's trailers, or ours for a
    transport failure), shaped like grpcio's errors so `errors.translate` maps both alike."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class NotGrpc(Exception):
    """The peer did not answer as a gRPC server over HTTP/2 (a proxy, an HTTP/1-only front):
    the caller falls back to grpcio for this endpoint."""


class UnaryCaller:
    """Unary gRPC calls to one endpoint over libcurl: the request framed by hand (one
    uncompressed message), the reply's message returned as bytes for the caller's protobuf
    class, the call's status read from the trailers. Only for the read-only calls periodic jobs
    make (`EtcdClient._unary`); writes, streams and everything else stay on grpcio."""

    def __init__(self, endpoint: str, config: ClusterConfig, *, timeout: float):
        self._endpoint = endpoint
        self._config = config
        self._handles = CurlPool(config, timeout=timeout, http2=True)

    def _setup(self, method: str, request: bytes, timeout: float, metadata):
        url, connect_to = target_url(self._endpoint, method, self._config)
        headers = [
            "content-type: application/grpc",
            "te: trailers",
            f"grpc-timeout: {max(1, int(timeout * 1000))}m",
            "expect:",
            *(f"{name}: {value}" for name, value in metadata or ()),
        ]
        framed = len(request).to_bytes(5, "big") + request

        def setup(handle: pycurl.Curl) -> tuple[Body, list[bytes]]:
            body = Body(MAX_RESPONSE_BYTES + 5)
            received: list[bytes] = []
            handle.setopt(pycurl.URL, url)
            handle.setopt(pycurl.CONNECT_TO, connect_to)
            handle.setopt(pycurl.HTTPHEADER, headers)
            # pycurl keeps a reference to the bytes for the transfer (and sets their size).
            handle.setopt(pycurl.POSTFIELDS, framed)
            handle.setopt(pycurl.TIMEOUT_MS, max(1, int(timeout * 1000)))
            handle.setopt(pycurl.WRITEFUNCTION, body.write)
            handle.setopt(pycurl.HEADERFUNCTION, received.append)
            return body, received

        return setup

    def call(self, method: str, request: bytes, *, timeout: float, metadata=()) -> bytes:
        """The serialized reply of `method` ("/package.Service/Method"); CurlRpcError on a
        non-OK status or a failed transfer, NotGrpc when the peer is no gRPC server."""
        setup = self._setup(method, request, timeout, metadata)
        return self._handles.perform((), setup, _finish_call)

    def start(
        self,
        transfers: Transfers,
        method: str,
        request: bytes,
        *,
        timeout: float,
        metadata=(),
        done: Callable[[bytes | Exception], None],
    ) -> None:
        """`call`, started on `transfers`: `done` gets the reply, or the error `call` would
        raise, from the thread that runs them."""
        setup = self._setup(method, request, timeout, metadata)
        transfers.start(self._handles, (), setup, _finish_call, done)

    def close(self) -> None:
        self._handles.close()


NOT_HTTP2 = "expected SETTINGS frame"


def _finish_call(status, outcome) -> bytes:
    """The reply's message of a finished call (`outcome` as `UnaryCaller._setup` collects it),
    or the error its failed transfer means."""
    if isinstance(outcome, TransferFailed):
        raise _transfer_error(outcome)
    body, received = outcome
    return _reply(received, body.value())


def _transfer_error(failed: TransferFailed) -> Exception:
    if failed.kind == TIMEOUT:
        return CurlRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    if failed.overflowed:
        return CurlRpcError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"received message larger than max ({MAX_RESPONSE_BYTES})",
        )
    if failed.code == E_HTTP2_STREAM:
        # The server reset the stream (grpc-go does so with CANCEL at an expired deadline).
        return CurlRpcError(grpc.StatusCode.CANCELLED, "Stream removed")
    if (
        failed.code in (pycurl.E_HTTP2, pycurl.E_UNSUPPORTED_PROTOCOL, E_WEIRD_SERVER_REPLY)
        # libcurl's words when the first bytes back are no HTTP/2; a send still going at that
        # moment fails with them under CURLE_SEND_ERROR (8 times in 300 tries, measured).
        or NOT_HTTP2 in failed.reason
    ):
        return NotGrpc(failed.reason)
    return CurlRpcError(grpc.StatusCode.UNAVAILABLE, failed.reason)


def _reply(received: list[bytes], data: bytes) -> bytes:
    """The message of a finished call, from its header and trailer lines and its body."""
    status_line = received[0].decode("latin-1").split() if received else []
    if len(status_line) < 2 or status_line[0] != "HTTP/2" or status_line[1] != "200":
        raise NotGrpc(f"answered {' '.join(status_line[:2]) or 'nothing'}")
    fields = {}
    for line in received[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    if not fields.get("content-type", "").startswith("application/grpc"):
        raise NotGrpc(f"answered content-type {fields.get('content-type', 'none')!r}")
    if "grpc-status" not in fields:
        raise CurlRpcError(grpc.StatusCode.INTERNAL, "the stream ended without a status")
    code = _CODES.get(int(fields["grpc-status"]), grpc.StatusCode.UNKNOWN)
    if code is not grpc.StatusCode.OK:
        raise CurlRpcError(code, unquote(fields.get("grpc-message", "")))
    if len(data) < 5 or data[0] != 0 or int.from_bytes(data[1:5], "big") != len(data) - 5:
        raise CurlRpcError(grpc.StatusCode.INTERNAL, "malformed reply message")
    return data[5:]
