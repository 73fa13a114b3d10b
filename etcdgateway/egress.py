"""Where user-supplied etcd endpoints (KV tabs, later cluster records) may point.

A user who types an endpoint makes the server connect somewhere: link-local addresses (cloud
metadata services) are never allowed, and `CLUSTER_ENDPOINT_ALLOWLIST` (CIDRs and host names,
empty = everything else) narrows the rest. A host name is resolved once here and the caller
connects to the address that was checked (`pinned_endpoint`), so a second DNS answer cannot
move the connection elsewhere; TLS keeps verifying against the original name.
"""

import functools
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from etcdgateway.errors import EtcdUnavailable

# 169.254.0.0/16 and fe80::/10 are `is_link_local`; AWS's IPv6 metadata address is not.
_ALWAYS_REFUSED = (ipaddress.ip_network("fd00:ec2::254/128"),)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointNotAllowed(Exception):
    """The endpoint points somewhere this server must not connect to (checked before any
    connection); the message never names the resolved addresses."""

    def __init__(self, message: str = "endpoint is not allowed"):
        self.message = message
        super().__init__(message)


class EndpointUnresolvable(EtcdUnavailable):
    """The endpoint's host name does not resolve: unreachable, not forbidden."""

    def __init__(self, host: str = ""):
        super().__init__("endpoint host name does not resolve", endpoint=host)


@dataclass(frozen=True)
class Allowlist:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    names: frozenset[str] = frozenset()

    @property
    def allows_all(self) -> bool:
        return not self.networks and not self.names


def parse_allowlist(entries) -> Allowlist:
    """`["10.0.0.0/8", "etcd.internal", "192.0.2.7"]` → Allowlist; ValueError on a bad CIDR.

    Accepts a list or a comma-separated string. A bare address is a one-address network; any
    other entry without a slash is a host name (matched exactly, case-insensitive).
    """
    if isinstance(entries, str):
        entries = entries.split(",")
    networks, names = [], set()
    for entry in (e.strip() for e in entries or ()):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            if "/" in entry or ":" in entry:
                raise ValueError(f"not a CIDR or host name: {entry!r}") from None
        names.add(entry.lower().rstrip("."))
    return Allowlist(tuple(networks), frozenset(names))


def configured_allowlist() -> Allowlist:
    """The setting's allowlist; an invalid one allows nothing (the system check names it)."""
    entries = getattr(settings, "CLUSTER_ENDPOINT_ALLOWLIST", ()) or ()
    try:
        return _parsed_allowlist(entries if isinstance(entries, str) else tuple(entries))
    except ValueError:
        raise EndpointNotAllowed("CLUSTER_ENDPOINT_ALLOWLIST is invalid") from None


@functools.lru_cache(maxsize=8)
def _parsed_allowlist(entries: str | tuple[str, ...]) -> Allowlist:
    # Every monitored cluster's gateway checks its endpoints each round: parse the setting
    # once per value, not once per cluster per round.
    return parse_allowlist(entries)


def check_allowlist_setting(app_configs=None, **kwargs) -> list:
    """System check etcdgateway.E001: every CLUSTER_ENDPOINT_ALLOWLIST entry parses."""
    from django.core import checks

    try:
        parse_allowlist(getattr(settings, "CLUSTER_ENDPOINT_ALLOWLIST", ()))
    except ValueError as exc:
        return [
            checks.Error(
                f"CLUSTER_ENDPOINT_ALLOWLIST: {exc}",
                hint="use CIDRs (10.0.0.0/8), addresses or host names, comma-separated",
                id="etcdgateway.E001",
            )
        ]
    return []


def _plain(address: Address) -> Address:
    # ::ffff:169.254.169.254 reaches the IPv4 address: judge the IPv4 address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_forbidden_address(address: Address) -> bool:
    """Link-local (169.254.0.0/16, fe80::/10) or a known metadata address: never connected to."""
    address = _plain(address)
    return address.is_link_local or any(address in network for network in _ALWAYS_REFUSED)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def needs_lookup(endpoint: str) -> bool:
    """Whether checking `endpoint` (`pinned_endpoint`) resolves a name, and so may wait."""
    return _literal(urlsplit(endpoint).hostname or "") is None


def resolve_checked(host: str, port: int, *, allowlist: Allowlist | None = None) -> list[Address]:
    """The addresses of `host` (resolved once), all checked; IPv4 first.

    EndpointUnresolvable (an EtcdUnavailable) when the name does not resolve;
    EndpointNotAllowed when any address is link-local or outside the allowlist (a name that
    resolves to an allowed and a forbidden address is refused as a whole).
    """
    allowlist = configured_allowlist() if allowlist is None else allowlist
    literal = _literal(host)
    name = host.lower().rstrip(".")
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise EndpointUnresolvable(name) from None
        addresses = []
        for info in infos:
            address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise EndpointUnresolvable(name)
    if any(is_forbidden_address(address) for address in addresses):
        raise EndpointNotAllowed("endpoint is a link-local address, which is never allowed")
    if not allowlist.allows_all:
        named = literal is None and name in allowlist.names
        for address in addresses:
            if not named and not any(_plain(address) in net for net in allowlist.networks):
                raise EndpointNotAllowed("endpoint is not in CLUSTER_ENDPOINT_ALLOWLIST")
    return sorted(addresses, key=lambda a: a.version)


@dataclass(frozen=True)
class PinnedEndpoint:
    """`endpoint` rewritten to the checked address, and the name TLS must verify."""

    url: str
    server_name: str  # "" for a literal address (or plain http)
    address: Address
    port: int


def pinned_endpoint(endpoint: str, *, allowlist: Allowlist | None = None) -> PinnedEndpoint:
    """Check `http(s)://host[:port]` and rewrite it to connect to the checked address.

    A host name is resolved and checked on every call; an address literal's answer depends
    only on the endpoint and the allowlist, so it is remembered per pair (a refusal is not).
    """
    allowlist = configured_allowlist() if allowlist is None else allowlist
    pinned = _pinned_literal(endpoint, allowlist)
    return pinned if pinned is not None else _pinned(endpoint, allowlist)


@functools.lru_cache(maxsize=4096)
def _pinned_literal(endpoint: str, allowlist: Allowlist) -> PinnedEndpoint | None:
    # Every monitored cluster's endpoints are pinned again each round (every 5 s for the
    # health probes): parsing and checking the same addresses showed in the workers' profile.
    if _literal(urlsplit(endpoint).hostname or "") is None:
        return None
    return _pinned(endpoint, allowlist)


def _pinned(endpoint: str, allowlist: Allowlist) -> PinnedEndpoint:
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or 2379
    address = resolve_checked(host, port, allowlist=allowlist)[0]
    shown = f"[{address}]" if address.version == 6 else str(address)
    literal = _literal(host) is not None
    server_name = "" if literal or parts.scheme != "https" else host
    return PinnedEndpoint(f"{parts.scheme}://{shown}:{port}", server_name, address, port)
