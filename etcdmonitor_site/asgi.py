"""ASGI entry point: what `runmonitor` serves (uvicorn in gunicorn-managed processes).

Django runs as a WSGI app on a fixed pool of threads (a2wsgi), so sync views keep persistent
database connections and request handling costs what it did under gunicorn's gthread workers,
while the event loop in front reads requests: a slow client holds a socket, never a thread.
`RequestBodyLimit` reads each body completely (bounded in size and time) before a thread is
taken, and refuses oversized ones with the contract's JSON error. Long-lived responses (live
watches) leave Django's threads as soon as their view answered: `StreamHandoff` runs them on the
event loop (etcdmonitor_site/streams.py).
"""

import asyncio
import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")

from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.core.wsgi import get_wsgi_application

from etcdmonitor_site.streams import StreamHandoff


async def send_json_error(send, status: int, message: str, code: str) -> None:
    body = json.dumps({"error": message, "code": code}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


class RequestBodyLimit:
    """Reads the whole request body before the app runs: at most `max_bytes` (413 beyond,
    judged by Content-Length when given), within `timeout` seconds (408)."""

    def __init__(self, app, *, max_bytes: int, timeout: float):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await send_json_error(send, 413, "request body too large", "body_too_large")
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.timeout)
        except BodyTooLarge:
            return await send_json_error(send, 413, "request body too large", "body_too_large")
        except TimeoutError:
            return await send_json_error(send, 408, "request timeout", "request_timeout")
        except ClientGone:
            return None
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        return await self.app(scope, replay, send)

    async def _read_body(self, receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def build_application(*, threads: int | None = None):
    """The ASGI app: body limits in front of Django's WSGI app on `threads` threads."""
    django_app = WSGIMiddleware(get_wsgi_application(), workers=threads or settings.WEB_THREADS)
    return RequestBodyLimit(
        StreamHandoff(django_app),
        max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        timeout=settings.HTTP_REQUEST_TIMEOUT,
    )


application = build_application()
