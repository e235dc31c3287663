"""Who a request comes from: the client's address, with ``X-Forwarded-For`` believed only from trusted proxies.

The one rule, applied once per request where it enters the app (``CodeConnectApp.__call__`` rewrites the ASGI
scope's ``client``, as a proxy-headers middleware would): if the TCP peer is in ``CODECONNECT_TRUSTED_PROXIES``,
the client is the right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy; otherwise the peer.
Everything that counts per client reads the result: the REST rate limits, the sandbox's run rate, the access log.

uvicorn's own ``--proxy-headers`` is turned off (see ``server.py``): it trusts 127.0.0.1 and ::1 by default, so any
process on the host could choose the address it is counted under, and its list would be a second one to keep in
step with ours. Here nothing is trusted unless the operator lists it.

Why the right-most untrusted hop: each proxy appends the address it received the request from, so everything to
the right of the last trusted proxy's entry was written by trusted proxies, and the entry that proxy wrote is the
address of whoever talked to it. Everything further left came from the client and could be anything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, MutableMapping
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Where the peer is unknown (not an IP connection); all such requests share one budget.
UNKNOWN = "unknown"


def parse_address(text: str) -> IPAddress | None:
    """An IP address from an ``X-Forwarded-For`` entry or a peer name: bare (``10.0.0.1``, ``2001:db8::1``), with a
    port (``10.0.0.1:5678``, ``[2001:db8::1]:5678``), quoted; IPv4-mapped IPv6 is the IPv4 address and a zone is
    dropped. None for anything else (``unknown``, a host name, garbage)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; IPv6 has at least two colons
        text = text.partition(":")[0]
    text = text.partition("%")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The networks whose ``X-Forwarded-For`` is believed (``CODECONNECT_TRUSTED_PROXIES``)."""

    __slots__ = ("networks",)

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = tuple(networks)

    @classmethod
    def parse(cls, value: str) -> TrustedProxies:
        """From a comma-separated list of addresses and networks; ValueError naming the first entry that is not."""
        networks: list[IPNetwork] = []
        for entry in value.split(","):
            entry = entry.strip()
            if not entry:
                continue
            try:
                # Not strict: 10.1.2.3/8 means 10.0.0.0/8, as in nginx's set_real_ip_from.
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network: list addresses and CIDR networks, e.g. "
                    "10.0.0.5, 10.0.0.0/8, fd00::/8"
                ) from None
            if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
                mapped = network.network_address.ipv4_mapped
                if mapped is not None:  # ::ffff:10.0.0.5 is how a dual-stack socket names 10.0.0.5
                    network = ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")
            networks.append(network)
        return cls(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        if isinstance(address, str):
            address = parse_address(address)
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return any(address in network for network in self.networks)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: TrustedProxies) -> str | None:
    """The client's address (normalised: ``str`` of the parsed address) for a request from ``peer`` carrying the
    ``X-Forwarded-For`` header values ``forwarded_for`` (every header, in order).

    An untrusted peer is the client, whatever it sends. A trusted peer's header is walked from the right, past
    every trusted hop, to the first address that is not trusted. If that place holds no address (``unknown``,
    garbage), the trusted hop that wrote it is the client: nothing to its left can be believed. If every hop is
    trusted, the left-most is. A peer that is not an IP address (None, a Unix socket) is returned as it is."""
    parsed = parse_address(peer) if peer is not None else None
    if parsed is None:
        return peer
    if parsed not in trusted:
        return str(parsed)
    client = parsed
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        if not hop.strip():
            continue  # "a, , b" or a trailing comma: formatting, not an address
        address = parse_address(hop)
        if address is None:
            break
        client = address
        if address not in trusted:
            break
    return str(client)


def resolve_client(scope: MutableMapping[str, Any], trusted: TrustedProxies) -> None:
    """Replace the ASGI scope's ``client`` by the client's address when the peer is a trusted proxy (the port is
    unknown then: 0). Costs one lookup per request from anyone else."""
    client = scope.get("client")
    if not client or client[0] not in trusted:
        return
    values = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
    if values:
        address = client_address(client[0], values, trusted)
        if address is not None and address != client[0]:
            scope["client"] = (address, 0)


def rate_key(address: str | None) -> str:
    """The key an address's rates are counted under: the address, or for IPv6 its /64, the block a single
    subscriber is usually given (counting each of its 2^64 addresses apart would be no limit at all)."""
    parsed = parse_address(address) if address is not None else None
    if parsed is None:
        return address or UNKNOWN
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
