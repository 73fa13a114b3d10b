"""Watches on asyncio: many long-lived watch streams served by one event loop, no thread each.

The sync `Watch` costs a reader thread per stream, and grpc's sync streaming wakes that thread
every 0.1 s while it waits (measured: ~0.7 ms CPU per second per idle stream). A `grpc.aio`
stream costs nothing while etcd is silent, so the journal follows all of its clusters from one
loop (`journal.worker`). The semantics are the sync watch's: the same `WatchBatch`es (the
created reply and progress replies as empty batches), `EtcdWatchCompacted` when etcd cancels for
compaction, `EtcdError` for another cancellation, `EtcdUnavailable` for a lost member.

`AsyncGateway` holds one aio channel per endpoint of a cluster (channels belong to the loop
that made them, so it is made and closed inside that loop) and fails over across the endpoints
in the sync gateway's health order, marking the health there as `ClusterGateway.call` does.
"""

import asyncio

import grpc
from pyetcd import etcdrpc

from etcdgateway.client import channel_settings
from etcdgateway.cluster import ClusterGateway
from etcdgateway.errors import (
    INVALID_TOKEN_MARKERS,
    EtcdPermissionDenied,
    EtcdUnavailable,
    is_invalid_token,
    translate,
)
from etcdgateway.kv import WatchBatch
from etcdgateway.watch import REQUIRE_LEADER, batch_of

_PROGRESS = etcdrpc.WatchRequest(progress_request=etcdrpc.WatchProgressRequest())


class AsyncWatch:
    """One open watch stream on the running loop: `await watch.next()` (or `async for`) for
    `WatchBatch`es, `await watch.request_progress()`, `watch.close()` from the loop."""

    def __init__(self, call, endpoint: str, first):
        self.endpoint = endpoint
        self._call = call
        self._first = first  # the created reply, read while opening
        self._closed = False

    async def request_progress(self) -> None:
        """Ask etcd for a progress notification (an empty batch carrying the current revision):
        a reply proves the stream is alive even when nothing changes."""
        try:
            await self._call.write(_PROGRESS)
        except (grpc.RpcError, asyncio.InvalidStateError) as exc:
            # The stream already failed: its next read says how.
            if not self._closed and isinstance(exc, grpc.RpcError):
                raise translate(exc, endpoint=self.endpoint) from exc

    async def next(self) -> WatchBatch:
        """The next batch; raises as the class docstring says, `StopAsyncIteration` only after
        `close()`."""
        if self._first is not None:
            response, self._first = self._first, None
        else:
            try:
                response = await self._call.read()
            except grpc.RpcError as exc:
                if self._closed:
                    raise StopAsyncIteration from None
                raise translate(exc, endpoint=self.endpoint) from exc
            except asyncio.CancelledError:
                # The call cancelled by `close()` ends the iteration; the task's own
                # cancellation must stay one.
                if self._closed and not asyncio.current_task().cancelling():
                    raise StopAsyncIteration from None
                raise
            if response is grpc.aio.EOF:
                if self._closed:
                    raise StopAsyncIteration
                raise EtcdUnavailable(
                    f"{self.endpoint}: the watch stream ended", endpoint=self.endpoint
                )
        return batch_of(response, endpoint=self.endpoint)

    def __aiter__(self) -> "AsyncWatch":
        return self

    async def __anext__(self) -> WatchBatch:
        return await self.next()

    def close(self) -> None:
        """End the stream; a read in progress stops without an error."""
        self._closed = True
        self._call.cancel()


class _Endpoint:
    """One aio channel to one endpoint, with its auth token."""

    def __init__(self, endpoint: str, channel: grpc.aio.Channel):
        self.endpoint = endpoint
        self.channel = channel
        self.metadata: tuple = ()


class AsyncGateway:
    """Asyncio calls for one cluster (`gateway`'s config and endpoint health); make it, use it
    and `await close()` it on one event loop."""

    def __init__(self, gateway: ClusterGateway):
        self.gateway = gateway
        self.config = gateway.config
        self._endpoints: dict[str, _Endpoint] = {}

    async def _connect(self, endpoint: str) -> _Endpoint:
        known = self._endpoints.get(endpoint)
        if known is not None:
            return known
        if self.config.insecure_skip_verify:
            # Fetching the presented certificate is a blocking handshake: off the loop.
            settings = await asyncio.to_thread(channel_settings, endpoint, self.config)
        else:
            settings = channel_settings(endpoint, self.config)
        host, port, credentials, options = settings
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if credentials is None:
            channel = grpc.aio.insecure_channel(target, options=options)
        else:
            channel = grpc.aio.secure_channel(target, credentials, options=options)
        connected = _Endpoint(endpoint, channel)
        try:
            async with asyncio.timeout(self.config.connect_timeout):  # never drops a cancel
                await channel.channel_ready()
            if self.config.has_auth:
                await self._authenticate(connected)
        except BaseException as exc:
            await channel.close()
            if isinstance(exc, TimeoutError):
                raise EtcdUnavailable(
                    f"{endpoint}: not connected within {self.config.connect_timeout:g} s",
                    endpoint=endpoint,
                ) from None
            if isinstance(exc, grpc.RpcError):
                raise translate(exc, endpoint=endpoint) from exc
            raise
        self._endpoints[endpoint] = connected
        return connected

    async def _authenticate(self, connected: _Endpoint) -> None:
        request = etcdrpc.AuthenticateRequest(
            name=self.config.username, password=self.config.password
        )
        stub = etcdrpc.AuthStub(connected.channel)
        response = await stub.Authenticate(request, timeout=self.config.connect_timeout)
        connected.metadata = (("token", response.token),)

    async def _drop(self, endpoint: str) -> None:
        # A channel in reconnect backoff keeps failing after the member is back; a fresh one
        # connects at once (as the sync client does).
        connected = self._endpoints.pop(endpoint, None)
        if connected is not None:
            await connected.channel.close()

    async def _call(self, operation):
        """`await operation(connected)` on the first endpoint that answers, in health order;
        fails over only on "unavailable", renews an invalid token once per endpoint."""
        failures = []
        for endpoint in self.gateway._endpoints_in_order():
            try:
                connected = await self._connect(endpoint)
                try:
                    result = await operation(connected)
                except _InvalidToken:
                    await self._authenticate(connected)
                    try:
                        result = await operation(connected)
                    except _InvalidToken as exc:
                        raise EtcdPermissionDenied(
                            "etcd refused a freshly issued token", endpoint=endpoint
                        ) from exc
            except EtcdUnavailable as exc:
                await self._drop(endpoint)
                self.gateway._mark(endpoint, False, exc.message)
                failures.append(exc.message.removeprefix("etcd unavailable: "))
                continue
            except grpc.RpcError as exc:
                error = translate(exc, endpoint=endpoint)
                if isinstance(error, EtcdUnavailable):
                    await self._drop(endpoint)
                    self.gateway._mark(endpoint, False, error.message)
                    failures.append(error.message.removeprefix("etcd unavailable: "))
                    continue
                raise error from exc
            if self.gateway._health[endpoint].healthy is not True:
                self.gateway._mark(endpoint, True)
            return result
        raise EtcdUnavailable("; ".join(failures) or "no endpoint configured")

    async def revision(self) -> int:
        """etcd's current revision: the header of a one-key range (no Status: that needs
        root)."""

        async def one_key(connected: _Endpoint) -> int:
            request = etcdrpc.RangeRequest(key=b"\x00", limit=1, keys_only=True)
            stub = etcdrpc.KVStub(connected.channel)
            try:
                response = await stub.Range(
                    request, timeout=self.config.request_timeout, metadata=connected.metadata
                )
            except grpc.RpcError as exc:
                if self.config.has_auth and is_invalid_token(exc):
                    raise _InvalidToken from exc
                raise
            return response.header.revision

        return await self._call(one_key)

    async def watch(
        self, start: bytes, end: bytes = b"", *, start_revision: int = 0, prev_kv: bool = False
    ) -> AsyncWatch:
        """A watch over [start, end) from `start_revision` on the first endpoint that answers
        (see `EtcdClient.watch`), returned once etcd confirmed it (its created reply, within
        the connect timeout)."""
        create = etcdrpc.WatchCreateRequest(
            key=start, range_end=end, start_revision=start_revision, prev_kv=prev_kv
        )

        async def open_stream(connected: _Endpoint) -> AsyncWatch:
            metadata = (*connected.metadata, REQUIRE_LEADER)
            call = etcdrpc.WatchStub(connected.channel).Watch(metadata=metadata)
            try:
                await call.write(etcdrpc.WatchRequest(create_request=create))
                async with asyncio.timeout(self.config.connect_timeout):
                    first = await call.read()
            except TimeoutError:
                call.cancel()
                raise EtcdUnavailable(
                    f"{connected.endpoint}: the watch was not confirmed within "
                    f"{self.config.connect_timeout:g} s",
                    endpoint=connected.endpoint,
                ) from None
            except grpc.RpcError as exc:
                call.cancel()
                if self.config.has_auth and is_invalid_token(exc):
                    raise _InvalidToken from exc
                raise
            if first is grpc.aio.EOF:
                raise EtcdUnavailable(
                    f"{connected.endpoint}: the watch stream ended", endpoint=connected.endpoint
                )
            reason = first.cancel_reason or ""
            if first.canceled and self.config.has_auth and _invalid_token_reason(reason):
                # etcd refuses a watch of an expired token by cancelling it: renew it once.
                call.cancel()
                raise _InvalidToken
            return AsyncWatch(call, connected.endpoint, first)

        return await self._call(open_stream)

    async def close(self) -> None:
        """Close every channel (on the loop that made them)."""
        for endpoint in list(self._endpoints):
            await self._drop(endpoint)


def _invalid_token_reason(reason: str) -> bool:
    return any(marker in reason for marker in INVALID_TOKEN_MARKERS)


class _InvalidToken(Exception):
    """etcd rejected the token: authenticate again and retry once."""
