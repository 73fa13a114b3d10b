"""The HTTP server: gunicorn manages processes, each runs uvicorn's event loop (see README).

Reading requests is asynchronous, so a slow or idle client costs a socket, never a thread; the
Django app still runs on a fixed pool of threads (`etcdmonitor_site.asgi`). Two things differ
from stock uvicorn:

- limits enforced before Django answer in the contract's JSON body (`{"error", "code"}`):
  a request line or header block over `HTTP_MAX_HEADER_BYTES` gets 414 / 431, garbage 400,
  instead of uvicorn's plain-text 400;
- a request head must arrive within `HTTP_REQUEST_TIMEOUT` seconds (408), so slowloris
  connections are closed instead of being held forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys

import h11

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")

from django.conf import settings
from gunicorn.arbiter import Arbiter
from uvicorn import Server
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker

STATUS_REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long"}
STATUS_REASONS[431] = "Request Header Fields Too Large"
LINGER_SECONDS = 2.0


def json_error_bytes(status: int, message: str, code: str) -> bytes:
    """A complete HTTP/1.1 response carrying the contract's error body; the connection closes."""
    body = json.dumps({"error": message, "code": code}).encode()
    head = (
        f"HTTP/1.1 {status} {STATUS_REASONS[status]}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "cache-control: no-store\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with JSON error answers and a deadline for the request head."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._protocol_error: h11.RemoteProtocolError | None = None
        self._line_seen = False  # has the current request's first line ended?
        self._head_deadline = None
        self._answered_error = False
        parse_next_event = self.conn.next_event

        def next_event():
            try:
                event = parse_next_event()
            except h11.RemoteProtocolError as exc:
                self._protocol_error = exc
                raise
            if isinstance(event, h11.Request):
                self._line_seen = False
                self._cancel_head_deadline()
            return event

        self.conn.next_event = next_event

    def connection_made(self, transport) -> None:
        super().connection_made(LingeringTransport(transport, self))
        self._arm_head_deadline()

    def connection_lost(self, exc) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # The server is stopping: live streams say so and end, instead of holding the
        # shutdown until gunicorn's graceful timeout kills the worker.
        from etcdmonitor_site.streams import streams_close_all

        streams_close_all("server_closing")
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self._answered_error:
            return  # draining what the client still sends, so it reads our answer (no RST)
        if self.conn.their_state is h11.IDLE and b"\n" in data:
            self._line_seen = True
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request on this connection gets its own

    def send_400_response(self, msg: str) -> None:
        hint = getattr(self._protocol_error, "error_status_hint", 400)
        if hint == 431 and not self._line_seen:
            response = json_error_bytes(414, "request line too long", "request_line_too_long")
        elif hint == 431:
            response = json_error_bytes(431, "request headers too large", "headers_too_large")
        else:
            response = json_error_bytes(400, "invalid HTTP request", "bad_request")
        self._answer_and_close(response)

    def _answer_and_close(self, response: bytes) -> None:
        self._cancel_head_deadline()
        self.transport.write(response)
        self._linger_and_close()

    def _linger_and_close(self) -> None:
        """End our side and close once the client has had time to read our answer: closing
        with unread input (a refused body, a broken head) resets the connection, and the
        client may never see the answer."""
        if self._answered_error:
            return
        self._answered_error = True
        transport = self.transport.wrapped
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def close_transport(self) -> None:
        if self.conn.their_state is h11.SEND_BODY:  # answered before reading the whole body
            self._linger_and_close()
        elif self.conn.our_state is h11.SEND_BODY:
            # Our response was cut mid-body (a live stream ended for a client that does not
            # read): nothing more can be delivered, and a plain close would wait for ever for
            # the client to read what is still buffered.
            self.transport.wrapped.abort()
        else:
            self.transport.wrapped.close()

    def _arm_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self._head_deadline = self.loop.call_later(
            settings.HTTP_REQUEST_TIMEOUT, self._head_deadline_passed
        )

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_deadline_passed(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE and self._has_partial_request():
            self._answer_and_close(json_error_bytes(408, "request timeout", "request_timeout"))
        else:
            self.transport.close()

    def _has_partial_request(self) -> bool:
        return bool(self.conn.trailing_data[0])


class LingeringTransport:
    """The connection's transport, with `close()` left to the protocol (lingering close)."""

    def __init__(self, transport, protocol: JsonErrorH11Protocol):
        self.wrapped = transport
        self._protocol = protocol

    def __getattr__(self, name):
        return getattr(self.wrapped, name)

    def close(self) -> None:
        self._protocol.close_transport()

    def is_closing(self) -> bool:
        return self._protocol._answered_error or self.wrapped.is_closing()


class OncePerSecondServer(Server):
    """uvicorn's server with its housekeeping loop woken once a second instead of ten times.

    That loop only refreshes the Date header (once a second), notifies gunicorn and checks
    for shutdown; each wake-up of an idle process costs ~0.2 ms of CPU on a VM (measured: a
    bare asyncio loop at 0.1 s used 2.1 CPU ms/s, at 1 s 0.3), so two idle web workers spent
    4 ms/s on it. A shutdown signal wakes the loop at once, so stopping is no slower.
    """

    TICK_SECONDS = 1.0

    async def main_loop(self) -> None:
        self._loop, self._woken = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            # on_tick does its once-a-second work when counter % 10 == 0: every tick here.
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.TICK_SECONDS)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        # A Python signal handler runs between bytecodes: wake the loop out of its wait.
        if getattr(self, "_woken", None) is not None:
            self._loop.call_soon_threadsafe(self._woken.set)


class MonitorWorker(UvicornWorker):
    """gunicorn worker running uvicorn with the protocol above (no lifespan, no proxy headers:
    the app itself decides whom to believe about client addresses, see TRUSTED_PROXIES)."""

    CONFIG_KWARGS = {
        "loop": "asyncio",
        "http": JsonErrorH11Protocol,
        "lifespan": "off",
        "proxy_headers": False,
        "server_header": False,
    }

    def __init__(self, *args, **kwargs) -> None:
        self.CONFIG_KWARGS = {
            **self.CONFIG_KWARGS,
            "h11_max_incomplete_event_size": settings.HTTP_MAX_HEADER_BYTES,
        }
        super().__init__(*args, **kwargs)

    async def _serve(self) -> None:
        # uvicorn_worker's own, with the quieter server.
        self.config.app = self.wsgi
        server = OncePerSecondServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    async def callback_notify(self) -> None:
        # A worker whose arbiter was SIGKILLed is re-parented, and uvicorn's worker never looks:
        # it would keep serving the listening socket for ever. Stop as gunicorn's own workers do.
        if os.getppid() != self.ppid:
            self.log.warning("runmonitor (pid %s) is gone; this worker stops", self.ppid)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        await super().callback_notify()
