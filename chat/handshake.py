"""The chat socket's handshake check: the Origin header must be one of this app's own
origins (SUPERORCH_APP_ORIGINS) or an enabled site's allowed origins, scheme, host and
port alike (chat.origins.origin_allowed). Anything else, or no Origin, is refused (HTTP
403) before the consumer runs."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from . import selectors
from .origins import origin_allowed


def scope_origin(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return value.decode("latin-1")
    return None


async def origin_permitted(origin: str | None) -> bool:
    if not origin:
        return False
    if origin_allowed(origin, settings.SUPERORCH_APP_ORIGINS):
        return True
    sites = await database_sync_to_async(selectors.site_origins_enabled)()
    return origin_allowed(origin, sites)


async def deny(receive: Any, send: Any) -> None:
    """Refuse the handshake (HTTP 403), as channels' WebsocketDenier does, but without a
    consumer: no channel-layer channel is made for a socket that never opens."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


class OriginValidator:
    """ASGI middleware for the websocket router."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not await origin_permitted(scope_origin(scope)):
            return await deny(receive, send)
        return await self.application(scope, receive, send)
