"""ASGI entry point: HTTP through Django, WebSockets through Channels.

WebSocket connections must come from one of the app's own origins
(SUPERORCH_APP_ORIGINS) or a site's allowed origins: scheme, host and port
(chat.handshake, docs/security.md).

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

from chat.handshake import OriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
