"""Allowed-origin lists for widget sites: parsing, validation and CSP.

The frame's postMessage check matches origins in the browser (static/superorch/chat/origins.js).
"""

from __future__ import annotations

import re

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


def validate_origins(text: str) -> None:
    problems = []
    for origin in parse_origins(text):
        if origin == "*" or not _ORIGIN.match(origin):
            problems.append(origin)
    if problems:
        raise ValidationError(
            "These are not origins: %(bad)s. Write one per line as scheme://host[:port], "
            "e.g. https://shop.example.com or https://*.example.com (no paths; '*' alone is not allowed).",
            params={"bad": ", ".join(problems)},
        )


def frame_ancestors(allowed: list[str]) -> str:
    """The CSP frame-ancestors value: our own origin plus the site's allowed origins."""
    return " ".join(["'self'", *allowed])
