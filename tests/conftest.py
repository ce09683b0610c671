import asyncio
import contextlib

import pytest
from channels.testing import WebsocketCommunicator

from chat.services import site_ensure_default
from orchestrator.services import team_seed

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
def _close_worker_thread_connections():
    """Async tests reach the database from asgiref's worker thread; close its connection
    after each test so the test database can be dropped (PostgreSQL refuses otherwise)."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets its own channel layer instance. Tests run on different event loops,
    and a Redis layer's receive lock belongs to the loop that first used it."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def team(db):
    """The seeded default team, its articles and the demo site."""
    from orchestrator.selectors import router_for, team_snapshot

    team_seed()
    site_ensure_default()
    router_for(team_snapshot(), wait=True)  # trained once per process, as a running server has it


@pytest.fixture
def orchestrator_decides(db):
    """Routing never confident and the orchestrator's model decides: every turn goes
    through the orchestrator's handoffs (the path an LLM takes when unsure)."""
    from orchestrator.models import RoutingSettings

    RoutingSettings.objects.update_or_create(
        pk=1, defaults={"threshold": 1.01, "when_unsure": "orchestrator"}
    )


@pytest.fixture
def openai_server():
    from tests.support.openai_server import OpenAICompatibleServer

    server = OpenAICompatibleServer().start()
    yield server
    server.stop()


@pytest.fixture
def communicator():
    """Factory for WebSocket clients on the full ASGI app (routing and origin check included)."""
    from superorch_site.asgi import application

    made: list[WebsocketCommunicator] = []

    def make(
        origin: bytes | None = b"http://localhost",
        *,
        peer: str | None = None,
        headers: list[tuple[bytes, bytes]] = (),
    ) -> WebsocketCommunicator:
        """`peer`: the client's address in the scope (per-client limits); `headers`: more
        handshake headers (X-Forwarded-For, say)."""
        sent = [(b"origin", origin)] if origin else []
        comm = WebsocketCommunicator(application, "/ws/chat/", headers=[*sent, *headers])
        if peer is not None:  # the app has not run yet: it sees this scope
            comm.scope["client"] = (peer, 40000 + len(made))
        made.append(comm)
        return comm

    return make


@pytest.fixture
async def connect(communicator):
    """Open a connection on the full app; every one is closed after the test."""
    opened = []

    async def make(origin: bytes | None = b"http://localhost", **kwargs):
        comm = communicator(origin, **kwargs)
        connected, _ = await comm.connect(timeout=5)
        assert connected
        opened.append(comm)
        return comm

    yield make
    for comm in opened:
        # Already closed by the server, or its app ended (a timeout cancels it).
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await comm.disconnect(timeout=1)


@pytest.fixture(autouse=True, scope="session")
def _input_guardrail_ready():
    """Every turn runs the input guardrail: train it (or load the saved one) once per test
    process, before any test's own time limits count."""
    from orchestrator import guardrails
    from orchestrator.selectors import registry_cache

    corpus = {key: list(texts) for key, texts in guardrails.dev_corpus()}
    registry_cache.guardrails.get(corpus, [], background=False)


@pytest.fixture
def demo_backend(team, settings, monkeypatch):
    """The demo's backend on a free port, the seeded actions pointing at it: its address."""
    from tests.support.demo import DemoBackend, fresh_ledger

    fresh_ledger(monkeypatch)
    server = DemoBackend()
    settings.SUPERORCH_ACTION_HOSTS = [server.address.removeprefix("http://")]
    yield server.start()
    server.stop()
