"""An approved action runs exactly once even when the process running it is killed:
a Celery worker (SUPERORCH_TURN_RUNNER = "celery"), or the web server itself (the
inline runner, Daphne in its own process); on PostgreSQL, RabbitMQ and Redis.

The test process plays the customer's system: the demo backend (demo_host's handler)
runs on a thread here, so it outlives every kill. The model is the loopback model
server: it asks for the refund, then answers from the refund's result. Kills:

- *during the call* (a worker, and the server): the backend has the whole refund
  request and holds it until the caller is dead, then makes the refund (the site did
  it, nobody heard). Whoever takes the conversation over once the lease expired resumes
  the run and sends the call again with the same id (X-Superorch-Call): the backend
  refunds once per call id, so one refund.
- *after the call, before the answer* (a worker): the model stalls on its answer from
  the refund's result; the ActionCall row is already `ok`. The next worker resumes the
  run and answers from the record (orchestrator.actions `_already_made`): the request
  is not sent again.

Why these fail when exactly-once breaks: the refund is 20.00 of a 49.00 invoice, so a
second refund fits and shows in GET /api/refunds (a full refund would be refused by the
backend's cap and hide it). Checked by hand: without the backend's per-call dedupe
(demo.backend.Ledger), both "during the call" tests see two refunds; without
`_already_made`, the "after the call" test sees the request sent twice; a resumed call
under a new id would show as two call ids and two refunds. A second yes, after all
that, changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from django.db import connection
from websockets.asyncio.client import connect as ws_connect

from chat.models import Message, Turn
from demo import backend
from demo.management.commands.demo_host import make_handler
from demo.services import demo_actions_point_at, demo_backend_secret
from orchestrator.models import ActionCall, Approval
from superorch_site.celery import app as celery_app
from tests.chat.test_consumers import open_session, send
from tests.support.celery_workers import ROOT, Workers, integration_env
from tests.support.demo import refunds
from tests.support.openai_server import OpenAICompatibleServer, Step

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REFUND = "I'd like a refund for invoice ACME-2024-000123"
ARGUMENTS = {"invoice": "ACME-2024-000123", "amount": "20.00"}  # a part: a second one fits
ANSWER = "Your refund of EUR 20.00 is on its way."
TIMEOUT = 30


class Backend:
    """The demo backend on a free port, in this process; every refund request's call id
    is noted, and with `hold` set the first one waits (before the refund is made) until
    `release` is set."""

    def __init__(self, *, hold: bool) -> None:
        self.calls: list[str] = []  # X-Superorch-Call of every POST /api/refunds
        self.arrived, self.release, self.served = (threading.Event() for _ in range(3))
        self.hold = hold
        outer = self

        class Handler(make_handler("http://testserver", "acme")):
            def handle(self) -> None:
                try:
                    super().handle()
                finally:  # this thread read the signing secret: PostgreSQL is dropped after
                    connection.close()

            def do_POST(self) -> None:
                """demo_host's POST, with the whole request read before the hold: the
                site has it all, whatever happens to the caller meanwhile."""
                first = not outer.calls
                outer.calls.append(self.headers.get("X-Superorch-Call", ""))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if first and outer.hold:
                    outer.arrived.set()
                    outer.release.wait(TIMEOUT)
                path = urlsplit(self.path).path
                status, payload = backend.handle(
                    "POST", path, self.headers, body, demo_backend_secret
                )
                with contextlib.suppress(OSError):  # the caller may be dead by now
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                if first:
                    outer.served.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Model:
    """The workers' model: a refund asked for with its arguments, then the answer from
    its result; with `stall`, the first answer from a result waits (the worker is killed
    meanwhile)."""

    def __init__(self, *, stall: bool) -> None:
        self.stall = stall
        self.answering = threading.Event()  # the model was asked to answer from a result
        self.server = OpenAICompatibleServer()
        self.server.responder = self.respond
        # The stalled answer is written to the killed worker's closed socket: not an error.
        self.server.httpd.handle_error = lambda request, address: None

    def respond(self, body: dict) -> Step:
        last = body["messages"][-1]
        if last.get("role") == "tool":
            first = not self.answering.is_set()
            self.answering.set()
            return Step(text=ANSWER, first_token_delay=TIMEOUT if first and self.stall else 0)
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        if "request_refund" in tools:
            return Step(tool_calls=[("request_refund", ARGUMENTS)])
        handoff = next((t for t in tools if "billing" in t), None)
        if handoff:  # the orchestrator's model, when routing is unsure
            return Step(tool_calls=[(handoff, {})])
        return Step(text="Which invoice?")


@contextlib.contextmanager
def _site_and_model(settings, monkeypatch, *, hold: bool, stall: bool):
    """The demo backend (the seeded actions pointing at it) and the loopback model."""
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs superorch_site.settings.integration")
    (ROOT / "var").mkdir(exist_ok=True)
    monkeypatch.setattr(backend, "ledger", backend.Ledger())
    site = Backend(hold=hold)
    assert demo_actions_point_at(backend=site.address) == 2
    model = Model(stall=stall)
    model.server.start()
    try:
        yield site, model
    finally:
        site.stop()
        model.server.stop()


@contextlib.contextmanager
def _refund_on_workers(settings, monkeypatch, *, hold: bool, stall: bool):
    """Backend, model, turns on Celery and a pool of workers (none started yet)."""
    with _site_and_model(settings, monkeypatch, hold=hold, stall=stall) as (site, model):
        conf = celery_app.conf
        conf.task_always_eager, conf.broker_url = False, settings.INTEGRATION_CELERY_BROKER_URL
        settings.SUPERORCH_TURN_RUNNER = "celery"
        celery_app.control.purge()
        pool = Workers(
            model.server.base_url,
            INTEGRATION_TURN_RUNNER="celery",
            INTEGRATION_ACTION_HOSTS=site.address.removeprefix("http://"),
        )
        try:
            yield pool, site, model
        finally:
            pool.stop()
            conf.task_always_eager = True


@pytest.fixture
def held_call(team, settings, monkeypatch):
    """The backend holds the first refund request (killed during the call)."""
    with _refund_on_workers(settings, monkeypatch, hold=True, stall=False) as parts:
        yield parts


@pytest.fixture
def stalled_answer(team, settings, monkeypatch):
    """The model stalls on its first answer from the refund (killed after the call)."""
    with _refund_on_workers(settings, monkeypatch, hold=False, stall=True) as parts:
        yield parts


async def _start(pool: Workers, name: str) -> None:
    pool.start(name)
    await asyncio.to_thread(pool.wait_ready, [name])


async def _until(comm, done, timeout: float = TIMEOUT) -> list[dict]:
    """Frames until `done(frames)` holds."""
    frames: list[dict] = []
    async with asyncio.timeout(timeout):
        while not frames or not done(frames):
            frames.append(await comm.receive_json_from(timeout=timeout))
    return frames


def _turn_done(frames: list[dict], status: str) -> bool:
    return frames[-1]["type"] == "turn.done" and frames[-1]["status"] == status


async def _ask_and_approve(comm) -> Approval:
    """The refund asked for, the card answered yes; returns the (approved) approval."""
    await send(comm, {"type": "message.send", "id": "c-1", "text": REFUND})
    frames = await _until(comm, lambda f: _turn_done(f, "paused"))
    (request,) = [f for f in frames if f["type"] == "approval.request"]
    assert request["action"] == "request_refund" and request["by"] == "user"
    await send(comm, {"type": "approval.respond", "approval": request["approval"], "approve": True})
    resolved = await comm.receive_json_from(timeout=TIMEOUT)
    assert (resolved["type"], resolved["outcome"]) == ("approval.resolved", "approved")
    return await Approval.objects.aget(uuid=request["approval"])


async def _answered_once(comm, approval: Approval, site: Backend, frames: list[dict]) -> None:
    """One refund, the call on record as ok under its own id, the message answered; and
    a second yes changes nothing."""
    reply = [f for f in frames if f["type"] == "message.done"][-1]["message"]
    assert reply["text"] == ANSWER
    made = refunds(site.address)
    assert [(r["invoice"], r["amount"]) for r in made] == [("ACME-2024-000123", "20.00")]
    call = await ActionCall.objects.aget(tool="request_refund")  # one row, whatever was tried
    assert call.uuid == approval.call_id
    assert (call.status, call.approved_by) == ("ok", "user")
    message = await Message.objects.aget(client_id="c-1")
    assert message.status == "answered"
    turns = await Turn.objects.acount()
    sent = len(site.calls)
    await send(comm, {"type": "approval.respond", "approval": str(approval.uuid), "approve": True})
    again = await comm.receive_json_from(timeout=TIMEOUT)
    assert (again["type"], again["outcome"]) == ("approval.resolved", "approved")
    assert await comm.receive_nothing(timeout=3)  # no new turn, on any worker
    assert (len(site.calls), await Turn.objects.acount()) == (sent, turns)
    assert len(refunds(site.address)) == 1
    assert (await Message.objects.aget(client_id="c-1")).status == "answered"


async def test_a_worker_killed_during_the_approved_call_refunds_once(held_call, connect):
    pool, site, _ = held_call
    await _start(pool, "doomed")
    comm, _ = await open_session(connect)
    approval = await _ask_and_approve(comm)
    assert await asyncio.to_thread(site.arrived.wait, TIMEOUT), "the call was never sent"
    pool.procs["doomed"].kill()  # SIGKILL while the call is out: the lease stays
    killed = time.monotonic()
    await asyncio.to_thread(pool.procs["doomed"].wait, 10)
    site.release.set()  # the site makes the refund; nobody hears its answer
    assert await asyncio.to_thread(site.served.wait, 10)
    assert len(refunds(site.address)) == 1
    await _start(pool, "survivor")
    frames = await _until(comm, lambda f: _turn_done(f, "ok"), timeout=45)
    # The interrupted turn ends (error), then the run resumes on the survivor.
    done = [f for f in frames if f["type"] == "turn.done"]
    assert [d["status"] for d in done] == ["error", "ok"]
    await _answered_once(comm, approval, site, frames)
    # Sent again after the kill, under the same id: the site refunded once.
    assert site.calls == [str(approval.call_id)] * 2
    call = await ActionCall.objects.aget(uuid=approval.call_id)
    assert call.http_status == 200  # the backend's "that one again": the same refund
    assert time.monotonic() - killed < 35, "the lease expiry did not hand it over in time"


async def test_a_worker_killed_after_the_approved_call_does_not_send_it_again(
    stalled_answer, connect
):
    pool, site, model = stalled_answer
    await _start(pool, "doomed")
    comm, _ = await open_session(connect)
    approval = await _ask_and_approve(comm)
    assert await asyncio.to_thread(model.answering.wait, TIMEOUT), "no answer was asked for"
    call = await ActionCall.objects.aget(uuid=approval.call_id)
    assert call.status == "ok"  # made and recorded before the model answers from it
    pool.procs["doomed"].kill()  # SIGKILL while the model answers: the lease stays
    killed = time.monotonic()
    await asyncio.to_thread(pool.procs["doomed"].wait, 10)
    await _start(pool, "survivor")
    frames = await _until(comm, lambda f: _turn_done(f, "ok"), timeout=45)
    done = [f for f in frames if f["type"] == "turn.done"]
    assert [d["status"] for d in done] == ["error", "ok"]
    # Answered from the record: the request went out once.
    assert site.calls == [str(approval.call_id)]
    call = await ActionCall.objects.aget(uuid=approval.call_id)
    assert call.http_status == 201
    await _answered_once(comm, approval, site, frames)
    assert time.monotonic() - killed < 35, "the lease expiry did not hand it over in time"


class Server:
    """The web server as its own process (Daphne, the inline runner: turns run in it),
    on one port; killed and started again there."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.proc: subprocess.Popen | None = None

    def start(self, name: str) -> None:
        log = open(ROOT / "var" / f"daphne-{name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             "superorch_site.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((ROOT / "var" / f"daphne-{name}.log").read_text()[-3000:])
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{self.port}/healthz"
                with urllib.request.urlopen(url, timeout=1):  # noqa: S310
                    return
            time.sleep(0.2)
        raise TimeoutError(f"the server {name} did not come up")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no shutdown, the lease stays
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Socket:
    """A real WebSocket client, with the few calls of channels' communicator used here."""

    def __init__(self, ws) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, port: int, **fields) -> tuple[Socket, dict]:
        ws = await ws_connect(f"ws://127.0.0.1:{port}/ws/chat/", origin="http://localhost")
        comm = cls(ws)
        await comm.send_json_to({"type": "session.start", "protocol": 1, "site": "demo", **fields})
        ready = await comm.receive_json_from(timeout=TIMEOUT)
        assert ready["type"] == "session.ready", ready
        return comm, ready

    async def send_json_to(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def receive_json_from(self, timeout: float) -> dict:
        async with asyncio.timeout(timeout):
            return json.loads(await self.ws.recv())

    async def receive_nothing(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self.ws.recv()
        except TimeoutError:
            return True
        return False


@pytest.fixture
def restarted_server(team, settings, monkeypatch):
    """The backend holds the first refund request; the web server runs in its own process."""
    with _site_and_model(settings, monkeypatch, hold=True, stall=False) as (site, model):
        server = Server(
            integration_env(
                model.server.base_url,
                INTEGRATION_TURN_RUNNER="inline",
                INTEGRATION_ACTION_HOSTS=site.address.removeprefix("http://"),
            )
        )
        try:
            yield server, site
        finally:
            server.stop()


async def test_a_server_killed_during_the_approved_call_refunds_once(restarted_server):
    """The inline runner: the server that resumed the run dies during the call; the page
    comes back to the restarted server, which resumes the run once the lease expired."""
    server, site = restarted_server
    await asyncio.to_thread(server.start, "first")
    comm, ready = await Socket.open(server.port)
    approval = await _ask_and_approve(comm)
    assert await asyncio.to_thread(site.arrived.wait, TIMEOUT), "the call was never sent"
    await asyncio.to_thread(server.kill)
    killed = time.monotonic()
    site.release.set()  # the site makes the refund; nobody hears its answer
    assert await asyncio.to_thread(site.served.wait, 10)
    assert len(refunds(site.address)) == 1
    await comm.ws.close()
    await asyncio.to_thread(server.start, "second")
    comm, _ = await Socket.open(server.port, token=ready["token"])
    frames = await _until(comm, lambda f: _turn_done(f, "ok"), timeout=45)
    done = [f for f in frames if f["type"] == "turn.done"]
    assert [d["status"] for d in done] == ["error", "ok"]
    await _answered_once(comm, approval, site, frames)
    assert site.calls == [str(approval.call_id)] * 2
    assert (await ActionCall.objects.aget(uuid=approval.call_id)).http_status == 200
    await comm.ws.close()
    assert time.monotonic() - killed < 35, "the lease expiry did not hand it over in time"
