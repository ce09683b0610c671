"""A strict Content-Security-Policy for every page the project serves.

Pages load scripts and styles only from our own origin (no inline code), so
model or user text that slipped through sanitising still could not run.
"""

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


def csp_with(*, frame_ancestors: str = "'self'") -> str:
    """Our policy, with the given frame-ancestors (the widget frame names its site's origins)."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors}"
    )


DEFAULT_POLICY = csp_with()


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # The admin ships inline scripts and styles of its own; it is staff-only.
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", DEFAULT_POLICY)
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


class RequestMetricsMiddleware:
    """Counts and times HTTP requests for /metrics (method and status only: low cardinality)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from orchestrator.metrics import HTTP_REQUESTS, HTTP_SECONDS

        started = time.perf_counter()
        response = self.get_response(request)
        HTTP_SECONDS.observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(request.method or "", str(response.status_code)).inc()
        return response
