"""The app's ASGI application plus a bare echo WebSocket at /ws/bench-echo/, for the
`transport` benchmark only (never in production): same server, same settings."""

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from chat.routing import websocket_urlpatterns  # noqa: E402
from superorch_site.asgi import django_asgi_app  # sets up Django first


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
