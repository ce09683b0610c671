"""The project's middlewares: a strict Content-Security-Policy, and request metrics.

Pages load scripts and styles only from our own origin (no inline code), so
model or user text that slipped through sanitising still could not run.

Both middlewares are sync- and async-capable (the pattern of Django's own
MiddlewareMixin): the app is served over ASGI only, and an async middleware chain
lets Django run async views without a thread hop per middleware.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse


def csp_with(*, frame_ancestors: str = "'self'") -> str:
    """Our policy, with the given frame-ancestors (the widget frame names its site's origins)."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors}"
    )


DEFAULT_POLICY = csp_with()


class _SyncAndAsyncMiddleware:
    """Calls `before(request)`, the next handler, then `after(request, response, state)`,
    in the mode (sync or async) of the handler it wraps."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.async_mode:
            return self._acall(request)
        state = self.before(request)
        return self.after(request, self.get_response(request), state)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        state = self.before(request)
        return self.after(request, await self.get_response(request), state)

    def before(self, request: HttpRequest) -> Any:
        return None

    def after(self, request: HttpRequest, response: HttpResponse, state: Any) -> HttpResponse:
        return response


class ContentSecurityPolicyMiddleware(_SyncAndAsyncMiddleware):
    def after(self, request: HttpRequest, response: HttpResponse, state: Any) -> HttpResponse:
        # The admin ships inline scripts and styles of its own; it is staff-only.
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", DEFAULT_POLICY)
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


class RequestMetricsMiddleware(_SyncAndAsyncMiddleware):
    """Counts and times HTTP requests for /metrics (method and status only: low cardinality)."""

    def before(self, request: HttpRequest) -> float:
        return time.perf_counter()

    def after(self, request: HttpRequest, response: HttpResponse, state: float) -> HttpResponse:
        from orchestrator.metrics import HTTP_REQUESTS, HTTP_SECONDS

        HTTP_SECONDS.observe(time.perf_counter() - state)
        HTTP_REQUESTS.labels(request.method or "", str(response.status_code)).inc()
        return response
