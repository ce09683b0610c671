"""Serve the example host page on a second origin that embeds the widget (for `make run`).

It plays a customer's website: a plain page with the one-line snippet, a "signed in"
page whose server computes the identity HMAC with the site's secret, and, under /api/,
the customer's own backend that the seeded actions call (demo/backend.py), checking
each request's signature.
"""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand
from django.template.loader import render_to_string

from chat import selectors
from chat.services import identity_signature
from demo import backend
from demo.services import DEMO_WIDGET_SITE_KEY, demo_backend_secret

MAX_BODY = 65536

DEMO_USER = {"id": "ada-42", "name": "Ada Lovelace", "email": "ada@example.com"}


def make_handler(app: str, site_key: str) -> type[BaseHTTPRequestHandler]:
    """The host pages and the demo backend, for the app at `app` and this widget site."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _api(self, method: str, path: str) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(size) if size else b""
            status, payload = backend.handle(method, path, self.headers, body, demo_backend_secret)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if not path.startswith("/api/"):
                self.send_error(404)
                return
            self._api("POST", path)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/api/"):
                self._api("GET", path)
                return
            if path not in ("/", "/signed-in"):
                self.send_error(404)
                return
            user = None
            if path == "/signed-in":
                site = selectors.site_get(key=site_key)
                secret = site.identity_secret if site else ""
                # This is what a customer's server does: sign the user id, never in the browser.
                user = {
                    **DEMO_USER,
                    "hash": identity_signature(secret=secret, user_id=DEMO_USER["id"]),
                }
            body = render_to_string(
                "demo/host.html",
                {"app": app, "site_key": site_key, "user": user, "signed_in": user is not None},
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class Command(BaseCommand):
    help = "Serve the example host page that embeds the widget from another origin."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--app", default="http://127.0.0.1:8000", help="The app's public URL.")
        parser.add_argument("--site", default=DEMO_WIDGET_SITE_KEY)

    def handle(self, *args: Any, **options: Any) -> None:
        app, site_key = options["app"].rstrip("/"), options["site"]

        Handler = make_handler(app, site_key)
        server = ThreadingHTTPServer((options["host"], options["port"]), Handler)
        self.stdout.write(
            f"Demo host page (another origin, embeds the widget): http://{options['host']}:{options['port']}/"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
