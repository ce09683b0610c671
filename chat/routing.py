from channels.auth import AuthMiddlewareStack
from django.urls import path

from .consumers import ChatConsumer
from .staff_consumer import StaffConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    # The staff socket reads the staff session (cookie); the chat socket has no use for it.
    path("ws/staff/", AuthMiddlewareStack(StaffConsumer.as_asgi())),
]
