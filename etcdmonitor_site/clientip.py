"""Who is asking: the client's address as every app records it (audit, lockout, sessions)."""

import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def _parse_ip(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _is_trusted_proxy(address) -> bool:
    for entry in settings.TRUSTED_PROXIES:
        try:
            if address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            logger.warning("TRUSTED_PROXIES entry %r is not an IP or network", entry)
    return False


def client_ip(request) -> str | None:
    """The client's IP: REMOTE_ADDR, unless that peer is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is walked from the right and the first address that
    is not itself a trusted proxy is the client (left-most entries are client-controlled).
    """
    remote = _parse_ip(request.META.get("REMOTE_ADDR", ""))
    if remote is None:
        return None
    if not _is_trusted_proxy(remote):
        return str(remote)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _parse_ip(hop)
        if address is None:
            break  # garbage in the chain: trust nothing further left
        if not _is_trusted_proxy(address):
            return str(address)
    return str(remote)
