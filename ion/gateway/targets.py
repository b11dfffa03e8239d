"""Which webhook targets a subscription may name.

A target is an C{http} or C{https} URL with a host. Addresses that are not
public (loopback, private, link-local, shared, multicast, unspecified,
reserved, documentation; IPv4 and IPv6, IPv4-mapped IPv6 read as the IPv4
inside) are refused unless inside one of the CIDRs of C{gateway.allow_targets}:
a subscription must not reach into the system's own network.

L{check_target} needs no network: it judges IP literals (also the old IPv4
forms like C{127.1} or C{2130706433}) and the name C{localhost}. A name can
resolve to anything, and change, so L{check_target_resolved} resolves it (in a
thread: C{getaddrinfo} blocks) and judges every address when a subscription
names it; a delivery's post connects only to an address it resolved and judged
for that connection (L{allowed_addresses}; L{ion.gateway.webhook}), so a name
that changes in between (DNS rebinding) reaches nothing it may not.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.threads import deferToThreadPool

from ion.gateway.web import HttpError

FIELD = "target_url"
MAX_URL = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Networks = Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]


def _bad(message: str) -> HttpError:
    return HttpError(400, FIELD, message)


def check_target(url: Any, allow_targets: Networks = ()) -> None:
    """Refuse C{url} unless it is an http(s) URL whose host may be reached.

    @raise HttpError: 400, field C{target_url}, saying why.
    """
    host = _host(url)
    address = _literal(host)
    if address is not None:
        _judge(address, allow_targets)
    elif host == "localhost" or host.endswith(".localhost"):
        # (RFC 6761: always the loopback interface, whatever a resolver says)
        _judge(ipaddress.ip_address("127.0.0.1"), allow_targets)


async def check_target_resolved(
    url: Any, allow_targets: Networks, reactor: Any, *, allow_unresolved: bool = False
) -> None:
    """L{check_target}, then every address C{url}'s host resolves to.

    @param allow_unresolved: a name that does not resolve passes (a subscription
        may name a target before it exists; each post's connection is judged again).
    @raise HttpError: 400, field C{target_url}: refused, or the name does not resolve.
    """
    try:
        await allowed_addresses(_host(url), allow_targets, reactor)
    except Unresolved:
        if not allow_unresolved:
            raise


class Unresolved(HttpError):
    """A target's name does not resolve."""


async def allowed_addresses(
    host: str, allow: Networks, reactor: Any, resolve: Any = None
) -> list[IPAddress]:
    """The addresses C{host} (a name or an IP literal) stands for, every one of
    them allowed: resolved once (in a thread: C{getaddrinfo} blocks), so a
    connection made to one of them goes where was judged.

    @param resolve: C{getaddrinfo}'s signature (None: C{socket.getaddrinfo}).
    @raise Unresolved: the name does not resolve.
    @raise HttpError: 400, field C{target_url}: an address is refused.
    """
    allow = tuple(allow)
    address = _literal(host)
    if address is not None:
        _judge(address, allow)
        return [address]
    if host == "localhost" or host.endswith(".localhost"):
        _judge(ipaddress.ip_address("127.0.0.1"), allow)  # (whatever a resolver says)
    try:
        lookup = resolve or socket.getaddrinfo
        infos = await deferToThreadPool(reactor, reactor.getThreadPool(), lookup, host, None)
    except (OSError, UnicodeError) as e:
        raise Unresolved(400, FIELD, f"the host {host!r} does not resolve ({e})") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        _judge(address, allow, host)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolved(400, FIELD, f"the host {host!r} resolves to no address")
    return addresses


def _host(url: Any) -> str:
    if not isinstance(url, str):
        raise _bad("expected a string")
    if len(url) > MAX_URL:
        raise _bad(f"longer than {MAX_URL} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise _bad("a URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as e:
        raise _bad(f"not a URL: {e}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _bad("expected an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise _bad("credentials do not belong in the URL: use auth")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _bad("the URL has no host")
    return host


def _literal(host: str) -> IPAddress | None:
    """The address C{host} spells, if it is an IP literal (any IPv4 form)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            # (inet_aton reads what resolvers read: 127.1, 0x7f.0.0.1, 2130706433)
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _judge(address: IPAddress, allow: Networks, name: str | None = None) -> None:
    if any(address in net for net in allow if net.version == address.version):
        return
    inner = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if inner is not None:
        if any(inner in net for net in allow if net.version == 4):
            return
        address = inner
    if address.is_global and not address.is_multicast:
        return
    where = f"{name} resolves to {address}" if name else f"{address}"
    raise _bad(f"{where}, which is not a public address (allow it with gateway.allow_targets)")
