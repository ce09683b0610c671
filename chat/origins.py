"""Allowed-origin lists for widget sites: parsing, validation, matching and CSP.

An origin matches when its scheme, host and port all do (a missing port is the scheme's
default; "*." in an allowed origin stands for any subdomain). The socket's handshake check
is chat.handshake; the frame's postMessage check matches origins in the browser
(static/superorch/chat/origins.js).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError

# scheme://host[:port], where host may start with "*." (any subdomain of the rest).
_ORIGIN = re.compile(
    r"^(?P<scheme>https?)://(?P<host>(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:]+\])(:(?P<port>\d{1,5}))?$"
)


def parse_origins(text: str) -> list[str]:
    """One origin per line (or comma separated), lower-cased, without blanks or duplicates."""
    seen: list[str] = []
    for raw in re.split(r"[\s,]+", text or ""):
        origin = raw.strip().rstrip("/").lower()
        if origin and origin not in seen:
            seen.append(origin)
    return seen


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_key(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin, the port filled in; None for anything
    else (another scheme, a path, a port outside 1..65535)."""
    match = _ORIGIN.match(origin.strip().lower())
    if match is None:
        return None
    scheme, port = match["scheme"], match["port"]
    number = int(port) if port else _DEFAULT_PORTS[scheme]
    if not 1 <= number <= 65535:
        return None
    return scheme, match["host"], number


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """Whether the Origin header `origin` is one of `allowed` (scheme, host and port)."""
    key = origin_key(origin)
    if key is None or key[1].startswith("*."):
        return False
    scheme, host, port = key
    for pattern in allowed:
        want = origin_key(pattern)
        if want is None or want[0] != scheme or want[2] != port:
            continue
        if want[1] == host or (want[1].startswith("*.") and host.endswith(want[1][1:])):
            return True
    return False


def validate_origins(text: str) -> None:
    problems = []
    for origin in parse_origins(text):
        if origin == "*" or origin_key(origin) is None:
            problems.append(origin)
    if problems:
        raise ValidationError(
            "These are not origins: %(bad)s. Write one per line as scheme://host[:port], "
            "e.g. https://shop.example.com or https://*.example.com (http or https only, a port "
            "from 1 to 65535, no paths; '*' alone is not allowed).",
            params={"bad": ", ".join(problems)},
        )


def frame_ancestors(allowed: list[str]) -> str:
    """The CSP frame-ancestors value: our own origin plus the site's allowed origins."""
    return " ".join(["'self'", *allowed])
