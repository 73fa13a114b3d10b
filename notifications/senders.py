"""Delivery of one payload to one channel: HTTP for webhook, Slack and Alertmanager, SMTP for
email. A failure raises `DeliveryFailed` whose reason is safe to store and show: it never holds
the URL, its token or the SMTP password, nor the receiver's response body.
"""

import functools
import ipaddress
import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from etcdgateway.egress import is_forbidden_address

logger = logging.getLogger(__name__)

MAX_SAME_HOST_REDIRECTS = 3
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


class DeliveryFailed(Exception):
    """The receiver did not take the message; `reason` is fit for clients and the audit log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HttpTarget:
    """A URL split into what is requested and its Basic credentials (from the userinfo)."""

    url: str
    auth: tuple[str, str] | None
    origin: tuple[str, str, int]

    @classmethod
    def parse(cls, url: str) -> "HttpTarget":
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        auth = None
        if parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
        clean = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        return cls(clean, auth, (parts.scheme, host.lower(), port))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Built once: a new context per send (loading the CA bundle) cost more than the send.
    return ssl.create_default_context()


def _refuse_link_local(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise DeliveryFailed("host name does not resolve") from None
    for info in infos:
        if is_forbidden_address(ipaddress.ip_address(info[4][0].split("%", 1)[0])):
            raise DeliveryFailed("target is a link-local address, which is never allowed")


def _http_error(exc: httpx.HTTPError) -> DeliveryFailed:
    if isinstance(exc, httpx.TimeoutException):
        return DeliveryFailed("timed out")
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text:
            return DeliveryFailed("connection refused")
        if "ssl" in text or "certificate" in text:
            return DeliveryFailed("TLS handshake failed")
        return DeliveryFailed("connection failed")
    return DeliveryFailed(f"HTTP request failed ({type(exc).__name__})")


def post_json(url: str, body, *, idempotency_key: str = "") -> int:
    """POST `body` as JSON to `url` and return the status; DeliveryFailed unless it is 2xx.

    Redirects are followed only when they keep the method (307/308) and stay on the same
    scheme, host and port, at most three times: a receiver cannot bounce our payload (and its
    Basic credentials) to another host.
    """
    target = HttpTarget.parse(url)
    _refuse_link_local(target.origin[1], target.origin[2])
    headers = {"User-Agent": f"etcdmonitor/{settings.APP_VERSION}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    timeout = httpx.Timeout(settings.NOTIFICATIONS_SEND_TIMEOUT, connect=5.0)
    request_url = target.url
    with httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls_context()
    ) as client:
        for _ in range(MAX_SAME_HOST_REDIRECTS + 1):
            try:
                response = client.post(request_url, json=body, headers=headers, auth=target.auth)
            except httpx.HTTPError as exc:
                raise _http_error(exc) from None
            if response.status_code not in (307, 308):
                break
            location = response.headers.get("location", "")
            following = HttpTarget.parse(str(response.url.join(location)))
            if following.origin != target.origin or following.auth is not None:
                raise DeliveryFailed(
                    f"HTTP {response.status_code}: redirect to another host refused"
                )
            request_url = following.url
        else:
            raise DeliveryFailed("too many redirects")
    if 300 <= response.status_code < 400:
        raise DeliveryFailed(f"HTTP {response.status_code}: redirect not followed")
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code} from the receiver")
    return response.status_code


def send_email(config: dict, password: str, *, subject: str, body: str, message_key: str) -> None:
    """Send one plain-text message through the channel's own SMTP server.

    `message_key` becomes the Message-ID's left part, the same on every retry of one outbox
    row, so a mail system (or a person) can recognise a duplicate.
    """
    security = config.get("security", "starttls")
    connection = get_connection(
        SMTP_BACKEND,
        host=config["host"],
        port=config["port"],
        username=config.get("username") or None,
        password=password or None,
        use_tls=security == "starttls",
        use_ssl=security == "ssl",
        timeout=settings.NOTIFICATIONS_SEND_TIMEOUT,
        fail_silently=False,
    )
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=config["from"],
        to=list(config["to"]),
        connection=connection,
        headers={"Message-ID": f"<{message_key}@etcdmonitor>"},
    )
    try:
        message.send()
    except smtplib.SMTPAuthenticationError:
        raise DeliveryFailed("SMTP authentication failed") from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryFailed("SMTP server refused the recipients") from None
    except smtplib.SMTPSenderRefused:
        raise DeliveryFailed("SMTP server refused the sender") from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryFailed(
            "SMTP server does not support what the channel asks (STARTTLS/AUTH)"
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed(f"SMTP error {exc.smtp_code}") from None
    except TimeoutError:
        raise DeliveryFailed("timed out") from None
    except ConnectionRefusedError:
        raise DeliveryFailed("connection refused") from None
    except ssl.SSLError:
        raise DeliveryFailed("TLS handshake failed") from None
    except (smtplib.SMTPException, OSError) as exc:
        logger.info("SMTP delivery failed: %s", type(exc).__name__)
        raise DeliveryFailed(f"SMTP delivery failed ({type(exc).__name__})") from None
