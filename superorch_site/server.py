"""How the project starts daphne: its limits and timeouts from settings (SUPERORCH_SERVER_*,
docs/operations.md), and static files served with nosniff. Used by `manage.py runserver`
(make run, the browser tests); production passes the same values as daphne's or uvicorn's
command-line flags."""

from __future__ import annotations

from typing import Any

from daphne.server import Server as DaphneServer
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler


def daphne_options() -> dict[str, Any]:
    """daphne.server.Server's keyword arguments for the project's settings (the WebSocket
    handshake keeps daphne's 5 s, runserver's --websocket_handshake_timeout)."""
    return {
        "http_timeout": settings.SUPERORCH_SERVER_HTTP_TIMEOUT,
        "websocket_max_message_size": settings.SUPERORCH_SERVER_MAX_MESSAGE_BYTES,
        "websocket_max_frame_size": settings.SUPERORCH_SERVER_MAX_MESSAGE_BYTES,
        "websocket_connect_timeout": settings.SUPERORCH_SERVER_WEBSOCKET_CONNECT_TIMEOUT,
        "ping_interval": settings.SUPERORCH_SERVER_PING_INTERVAL,
        "ping_timeout": settings.SUPERORCH_SERVER_PING_TIMEOUT,
        "idle_timeout": settings.SUPERORCH_SERVER_IDLE_TIMEOUT,
    }


class Server(DaphneServer):
    """daphne's server, with an idle timeout on HTTP connections: Twisted drops a
    connection that sends nothing for `idle_timeout` seconds (slow headers, idle keep-alive;
    Twisted's own default is 60 s, and daphne has no option for it)."""

    def __init__(self, *args: Any, idle_timeout: int = 60, **kwargs: Any) -> None:
        self.idle_timeout = idle_timeout
        super().__init__(*args, **kwargs)

    @property
    def http_factory(self) -> Any:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: Any) -> None:  # set by DaphneServer.run()
        factory.timeOut = self.idle_timeout
        self._http_factory = factory


class StaticFilesHandler(ASGIStaticFilesHandler):
    """runserver's static files (DEBUG only) skip the middleware, SecurityMiddleware's
    nosniff among them: they carry it here."""

    async def get_response_async(self, request: Any) -> Any:
        response = await super().get_response_async(request)
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
