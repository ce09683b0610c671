"""Who a socket's client is, for per-client limits and a fair turn queue.

The client is the peer address of the connection, or, when the peer is one of the
trusted proxies (SUPERORCH_TRUSTED_PROXIES, CIDRs), the address that proxy names in
`X-Forwarded-For`: walked from the right, the first address that is not itself a
trusted proxy. A client that sends its own `X-Forwarded-For` to a server that trusts
no proxy changes nothing: the header is read only from a trusted peer.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"  # no peer address (a test client, a Unix socket): one shared key


@dataclass(frozen=True)
class ClientLimits:
    sockets: int  # open at once in one process (0: no limit)
    new_conversations: str  # the limits library's syntax, e.g. "10/minute"
    messages: str


def client_limits() -> ClientLimits:
    """The per-client limits, from settings (docs/security.md)."""
    return ClientLimits(
        sockets=settings.SUPERORCH_CLIENT_MAX_SOCKETS,
        new_conversations=settings.SUPERORCH_CLIENT_NEW_CONVERSATION_RATE,
        messages=settings.SUPERORCH_CLIENT_MESSAGE_RATE,
    )


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: Any, proxies: Iterable[Network]) -> bool:
    return address is not None and any(address in net for net in proxies)


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    values = [v.decode("latin-1") for k, v in headers if k.lower() == b"x-forwarded-for"]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def client_address(scope: Mapping[str, Any], proxies: Iterable[Network] | None = None) -> str:
    """The client's address as text (`UNKNOWN` when the connection has none)."""
    proxies = list(settings.SUPERORCH_TRUSTED_PROXIES if proxies is None else proxies)
    peer = scope.get("client") or (None, None)
    address = _address(str(peer[0])) if peer[0] else None
    if address is None:
        return UNKNOWN
    if not _trusted(address, proxies):
        return str(address)
    for hop in reversed(_forwarded_for(scope.get("headers") or ())):
        named = _address(hop)
        if named is None:
            break  # a malformed hop: trust nothing before it
        address = named
        if not _trusted(named, proxies):
            break
    return str(address)


class SocketCounts:
    """Open sockets per client in this process (SUPERORCH_CLIENT_MAX_SOCKETS)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: dict[str, int] = {}

    def take(self, client: str, limit: int) -> bool:
        """Count one more socket of `client`, if it stays within `limit` (0: no limit)."""
        with self.lock:
            n = self.open.get(client, 0)
            if limit and n >= limit:
                return False
            self.open[client] = n + 1
            return True

    def give_back(self, client: str) -> None:
        with self.lock:
            n = self.open.get(client, 0) - 1
            if n > 0:
                self.open[client] = n
            else:
                self.open.pop(client, None)

    def reset(self) -> None:
        with self.lock:
            self.open.clear()


sockets = SocketCounts()
