"""The app's ASGI application plus a bare echo WebSocket at /ws/bench-echo/, for the
`transport` benchmark only (never in production): same server, same settings."""

import os

from bench import sampler

sampler.start_from_env()  # BENCH_SAMPLE=FILE: the server's stacks, sampled (bench/sampler.py)

from django.core.asgi import get_asgi_application  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "superorch_site.settings.local")
django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/bench-echo/", EchoConsumer.as_asgi()), *websocket_urlpatterns])
        ),
    }
)
