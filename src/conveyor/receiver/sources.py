"""Where deliveries may come from: ``conveyor serve --hook-source CIDR`` (GitLab's addresses).

A token proves which project a delivery is for. It cannot stop anyone from sending one. GitLab.com
publishes the addresses its webhooks come from, and a self-managed GitLab has its own. When
sources are given, a ``POST /hooks/gitlab`` from any other address is answered 403 and its
connection closed as soon as its head is in: none of its body is read, scanned or parsed. The
other paths (``/healthz``, ``/metrics``, the dashboard) are not restricted by this setting.

The address checked is the TCP peer's. When the peer is a proxy that uvicorn trusts
(``FORWARDED_ALLOW_IPS``, by default ``127.0.0.1,::1``), it is the client that proxy names in
``X-Forwarded-For`` (uvicorn's ``ProxyHeadersMiddleware``). An IPv4 client seen on a dual-stack
socket as ``::ffff:a.b.c.d`` is matched as ``a.b.c.d``. A request with no client address (a Unix
socket) is refused whenever sources are set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from conveyor.errors import ConfigError

SOURCES_ENV = "CONVEYOR_HOOK_SOURCES"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_sources(values: Iterable[str], *, origin: str = "--hook-source") -> tuple[Network, ...]:
    """Networks from ``values`` (``10.0.0.0/8``, ``2001:db8::/32``, or a single address).

    Each value may hold several, split on commas or whitespace. A network with host bits set
    (``10.0.0.1/8``) is refused rather than guessed at."""
    networks: list[Network] = []
    for value in values:
        for item in value.replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(item, strict=True))
            except ValueError as exc:
                raise ConfigError(
                    f"{origin} {item[:100]!r}: {exc}",
                    hint="an address or a network in CIDR form: 203.0.113.7, 10.0.0.0/8, "
                    "2001:db8::/32",
                ) from None
    return tuple(dict.fromkeys(networks))


def source_allowed(client: Sequence[Any] | None, sources: Sequence[Network]) -> bool:
    """Whether the ASGI ``scope["client"]`` (``(host, port)``) is in one of ``sources``."""
    if not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False  # not an address (a proxy's X-Forwarded-For naming something else)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in sources)
