"""The demo backend (demo_host's handler) on a free port, for tests of actions."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import ThreadingHTTPServer

from demo import backend
from demo.management.commands.demo_host import make_handler
from demo.services import demo_actions_point_at


class DemoBackend:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), make_handler("http://testserver", "acme")
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> str:
        self.thread.start()
        assert demo_actions_point_at(backend=self.address) == 2
        return self.address

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fresh_ledger(monkeypatch) -> None:
    monkeypatch.setattr(backend, "ledger", backend.Ledger())


def refunds(address: str) -> list[dict]:
    with urllib.request.urlopen(f"{address}/api/refunds", timeout=5) as response:  # noqa: S310
        return json.loads(response.read())
