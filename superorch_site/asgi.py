"""ASGI entry point: HTTP through Django, WebSockets through Channels.

WebSocket connections must come from one of the app's own origins
(SUPERORCH_APP_ORIGINS) or a site's allowed origins: scheme, host and port
(chat.handshake, docs/security.md).
The first scope the server hands over (ASGI lifespan startup under uvicorn; daphne
has no lifespan, so its first request or socket) starts the process's sweep for
conversations nobody answers (chat.turns.start_sweeper: queued messages now due, turns
whose process died).

Without DJANGO_SETTINGS_MODULE this uses the production settings, which refuse to
start without their secrets: an ASGI server (daphne or uvicorn) is how production
runs, and a forgotten variable must not serve the development settings. `make run`
and the tests reach this module with their own settings module already chosen
(manage.py: local; pytest: test).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "superorch_site.settings.production")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat import turns  # noqa: E402
from chat.handshake import OriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402


class ProcessStart:
    """Starts the process's background work on the server's event loop, once, and
    answers the lifespan protocol (which ProtocolTypeRouter does not know)."""

    def __init__(self, app) -> None:
        self.app, self.started = app, False

    async def __call__(self, scope, receive, send):
        if not self.started:
            self.started = True
            turns.start_sweeper()
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return None
        return await self.app(scope, receive, send)


application = ProcessStart(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": OriginValidator(URLRouter(websocket_urlpatterns)),
        }
    )
)
