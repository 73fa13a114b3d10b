"""A channel's settings: validation per kind, the secrets' encryption, and how they are shown.

Secrets are the webhook / Slack / Alertmanager URL (tokens sit in its userinfo, path or query:
Slack's `/services/T…/B…/…`, `?token=`) and the SMTP password. They are encrypted with the
project's AES-256-GCM key (`clusters.crypto`, `KV_TABS_KEY` or `DATA_DIR/kv_tabs.key`) bound to
the channel id, and never returned.

How a URL is shown (`url_masked`): scheme, host and port stay, so a user can tell channels
apart; userinfo becomes `***@`, any path beyond `/` becomes `/***`, a query `?***`, a fragment is
dropped — e.g. `https://***@hooks.example.com/***?***`. We cannot tell which path segment is a
token, so none is shown. Sending the masked form back (PATCH with the config a GET returned)
keeps the stored URL.
"""

import ipaddress
import json
from urllib.parse import urlsplit

from clusters.crypto import TabDecryptFailed, TabKeyMissing, password_decrypt, password_encrypt
from etcdgateway.egress import is_forbidden_address
from etcdmonitor_site.errors import InternalFailure, InvalidInput
from notifications.models import SECRET_SHOWN, Channel

MASK = SECRET_SHOWN
URL_MAX = 2048
ADDRESSES_MAX = 50
SECURITY_MODES = ("none", "starttls", "ssl")
DEFAULT_SMTP_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
# Alertmanager's default repeat_interval.
DEFAULT_REPEAT_SECONDS = 4 * 3600
# Alertmanager resolves an alert whose endsAt passed: Prometheus re-sends firing alerts every
# minute with endsAt a few re-sends ahead, and so do we (see payloads.alertmanager_alerts).
ALERTMANAGER_REPEAT_SECONDS = 60
REPEAT_MIN, REPEAT_MAX = 10, 7 * 24 * 3600
URL_KINDS = (Channel.Kind.WEBHOOK, Channel.Kind.SLACK, Channel.Kind.ALERTMANAGER)


def url_masked(url: str) -> str:
    """`url` as shown to clients: no userinfo, path, query or fragment (see the module doc)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    if parts.username is not None or parts.password is not None:
        netloc = f"{MASK}@{netloc}"
    path = "" if parts.path in ("", "/") else f"/{MASK}"
    shown = f"{parts.scheme}://{netloc}{parts.path if path == '' else path}"
    return f"{shown}?{MASK}" if parts.query else shown


def _url_checked(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("config.url: is required")
    if len(value) > URL_MAX or any(ch.isspace() for ch in value):
        raise InvalidInput("config.url: must be a URL without spaces, at most 2048 characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput("config.url: is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("config.url: must be an http:// or https:// URL with a host")
    try:
        literal = ipaddress.ip_address(parts.hostname.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None and is_forbidden_address(literal):
        raise InvalidInput("config.url: link-local addresses are never allowed")
    return value


def _repeat(config: dict, kind: str) -> int:
    default = (
        ALERTMANAGER_REPEAT_SECONDS if kind == Channel.Kind.ALERTMANAGER else DEFAULT_REPEAT_SECONDS
    )
    value = config.get("repeat_interval", default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("config.repeat_interval: must be an integer (seconds)")
    if not REPEAT_MIN <= value <= REPEAT_MAX:
        raise InvalidInput(f"config.repeat_interval: must be {REPEAT_MIN}..{REPEAT_MAX} seconds")
    return value


def _string(config: dict, name: str, *, required: bool = False, max_length: int = 255) -> str:
    value = config.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"config.{name}: must be a string")
    if required and not value.strip():
        raise InvalidInput(f"config.{name}: is required")
    if len(value) > max_length or "\n" in value or "\r" in value:
        raise InvalidInput(f"config.{name}: must be one line of at most {max_length} characters")
    return value.strip()


def _address(value: str, field: str) -> str:
    local, _, domain = value.rpartition("@")
    if not local or not domain or " " in value:
        raise InvalidInput(f"config.{field}: {value!r} is not an email address")
    return value


def _recipients(config: dict) -> list[str]:
    value = config.get("to")
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput("config.to: must be a non-empty list of email addresses")
    if len(value) > ADDRESSES_MAX:
        raise InvalidInput(f"config.to: at most {ADDRESSES_MAX} addresses")
    return [_address(v.strip(), "to") for v in value]


def _port(config: dict, security: str) -> int:
    value = config.get("port", DEFAULT_SMTP_PORTS[security])
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput("config.port: must be an integer 1..65535")
    return value


def config_checked(kind: str, config) -> tuple[dict, dict]:
    """`(shown, secrets)` for a complete config of `kind`: what `Channel.config` stores (URL
    masked, no password) and what is encrypted (`url` or `password`). InvalidInput names the
    first wrong field. Unknown fields are refused so a typo never passes silently."""
    if not isinstance(config, dict):
        raise InvalidInput("config: must be an object")
    if kind in URL_KINDS:
        unknown = set(config) - {"url", "repeat_interval"}
        if unknown:
            raise InvalidInput(f"config.{sorted(unknown)[0]}: unknown field for {kind}")
        url = _url_checked(config.get("url"))
        shown = {"url": url_masked(url), "repeat_interval": _repeat(config, kind)}
        return shown, {"url": url}
    fields = {"host", "port", "username", "password", "security", "from", "to", "repeat_interval"}
    unknown = set(config) - fields
    if unknown:
        raise InvalidInput(f"config.{sorted(unknown)[0]}: unknown field for email")
    security = config.get("security", "starttls")
    if security not in SECURITY_MODES:
        raise InvalidInput("config.security: must be one of none, starttls, ssl")
    password = config.get("password", "")
    if not isinstance(password, str) or len(password) > 1024:
        raise InvalidInput("config.password: must be a string of at most 1024 characters")
    shown = {
        "host": _string(config, "host", required=True),
        "port": _port(config, security),
        "security": security,
        "username": _string(config, "username"),
        "from": _address(_string(config, "from", required=True), "from"),
        "to": _recipients(config),
        "repeat_interval": _repeat(config, kind),
    }
    return shown, {"password": password} if password else {}


def config_merged(channel: Channel, changes: dict, current_secrets: dict) -> dict:
    """The complete config a PATCH asks for: the stored one with `changes` on top.

    A masked URL sent back keeps the stored URL; an email password absent or "***" keeps the
    stored one, except when the host or username changes (a password is never carried to
    another server or account unless the same request gives it); "" clears it.
    """
    if not isinstance(changes, dict):
        raise InvalidInput("config: must be an object")
    merged = {**channel.config, **current_secrets, **changes}
    if channel.kind in URL_KINDS:
        if changes.get("url") == channel.config.get("url"):
            merged["url"] = current_secrets.get("url", "")
        return merged
    merged.pop("password", None)
    given = changes.get("password", MASK)
    moved = any(
        name in changes and changes[name] != channel.config.get(name)
        for name in ("host", "username")
    )
    if given != MASK:
        merged["password"] = given
    elif not moved and current_secrets.get("password"):
        merged["password"] = current_secrets["password"]
    return merged


def _aad(channel_id: int) -> str:
    return f"notifications.channel:{channel_id}"


def secrets_encrypt(secrets: dict, *, channel_id: int) -> bytes:
    """The blob stored for `secrets` of channel `channel_id` (b"" for none)."""
    if not secrets:
        return b""
    try:
        return password_encrypt(json.dumps(secrets), tab_id=_aad(channel_id))
    except TabKeyMissing as exc:
        raise InternalFailure("the encryption key is unavailable") from exc


def secrets_decrypt(channel: Channel) -> dict:
    """The channel's decrypted secrets (InternalFailure when the key or blob is wrong)."""
    try:
        plain = password_decrypt(channel.secret_cipher, tab_id=_aad(channel.pk))
    except (TabKeyMissing, TabDecryptFailed) as exc:
        raise InternalFailure("the channel's stored secrets cannot be decrypted") from exc
    return json.loads(plain) if plain else {}
