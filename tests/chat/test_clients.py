"""Who the client is (chat/clients.py): the peer, or what a trusted proxy says."""

from __future__ import annotations

import ipaddress

import pytest

from chat.clients import UNKNOWN, SocketCounts, client_address

PROXY = [ipaddress.ip_network("10.0.0.0/8")]


def scope(peer: str | None, xff: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", xff.encode())] if xff is not None else []
    return {"client": (peer, 5555) if peer else None, "headers": headers}


@pytest.mark.parametrize(
    ("peer", "xff", "proxies", "client"),
    [
        ("203.0.113.7", None, [], "203.0.113.7"),
        # A client that names itself is not believed when no proxy is trusted...
        ("203.0.113.7", "198.51.100.1", [], "203.0.113.7"),
        # ... nor when it is not the trusted proxy.
        ("203.0.113.7", "198.51.100.1", PROXY, "203.0.113.7"),
        # Behind the trusted proxy: the address it names.
        ("10.1.2.3", "198.51.100.1", PROXY, "198.51.100.1"),
        # A forged first hop does not help: the right-most untrusted address counts.
        ("10.1.2.3", "1.2.3.4, 198.51.100.1", PROXY, "198.51.100.1"),
        # Two trusted proxies in a row.
        ("10.1.2.3", "198.51.100.1, 10.9.9.9", PROXY, "198.51.100.1"),
        # A malformed hop: nothing before it is trusted.
        ("10.1.2.3", "198.51.100.1, not-an-ip", PROXY, "10.1.2.3"),
        ("10.1.2.3", None, PROXY, "10.1.2.3"),
        (None, "198.51.100.1", PROXY, UNKNOWN),
        ("::1", None, [], "::1"),
    ],
)
def test_client_address(peer, xff, proxies, client):
    assert client_address(scope(peer, xff), proxies) == client


def test_socket_counts_per_client():
    counts = SocketCounts()
    assert counts.take("a", 2) and counts.take("a", 2)
    assert not counts.take("a", 2)
    assert counts.take("b", 2)
    counts.give_back("a")
    assert counts.take("a", 2)
    assert counts.take("a", 0) and counts.take("a", 0)  # 0: no limit
