"""Scale-out on the real services: two web processes (Daphne, turns inline) on one
PostgreSQL and one Redis channel layer, as `make serve` runs them.

- Sockets of one conversation spread over both processes: each gets every frame of a
  turn, in order (the Redis layer carries them from the process running the turn).
- The process running a turn is killed mid-reply: the page comes back on the other
  process with its token, which answers the message once the dead one's lease expired;
  the user gets the reply exactly once (one assistant message, stored once; the page
  drops the unfinished bubble the dead process streamed, which session.ready lacks).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from chat.models import Message
from tests.integration.test_approvals_killed import Server, Socket
from tests.support.celery_workers import ROOT, integration_env
from tests.support.openai_server import OpenAICompatibleServer, Step

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
TIMEOUT = 30
WORDS = " ".join(f"word{i}" for i in range(24))


class Model:
    """Streams a reply of 24 words; `slow_first`: the first reply a word every 0.4 s
    (the process is killed meanwhile), the next ones fast."""

    def __init__(self, *, slow_first: bool) -> None:
        self.slow_first, self.calls = slow_first, 0
        self.lock = threading.Lock()
        self.server = OpenAICompatibleServer()
        self.server.responder = self.respond
        self.server.httpd.handle_error = lambda request, address: None  # a killed reader

    def respond(self, body: dict) -> Step:
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        handoff = next((t for t in tools if t.startswith("transfer_to_")), None)
        if handoff and body["messages"][-1].get("role") == "user":
            return Step(tool_calls=[(handoff, {})])
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        return Step(text=WORDS, token_delay=0.4 if first and self.slow_first else 0.01)


@pytest.fixture
def two_servers(team, settings):
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs superorch_site.settings.integration")
    (ROOT / "var").mkdir(exist_ok=True)

    def make(*, slow_first: bool):
        model = Model(slow_first=slow_first)
        model.server.start()
        env = integration_env(model.server.base_url, INTEGRATION_TURN_RUNNER="inline")
        servers = [Server(env), Server(env)]
        made.append((model, servers))
        return model, servers

    made: list = []
    yield make
    for model, servers in made:
        for server in servers:
            server.stop()
        model.server.stop()


async def frames_until_done(comm: Socket, timeout: float = TIMEOUT) -> list[dict]:
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while not frames or frames[-1]["type"] != "turn.done":
        frames.append(await comm.receive_json_from(timeout=max(deadline - time.monotonic(), 0.1)))
    return frames


async def test_sockets_on_both_processes_get_every_frame_of_a_turn(two_servers):
    _, (a, b) = two_servers(slow_first=False)
    await asyncio.gather(asyncio.to_thread(a.start, "a"), asyncio.to_thread(b.start, "b"))
    first, ready = await Socket.open(a.port)
    others = [
        (await Socket.open(port, token=ready["token"]))[0] for port in (b.port, b.port, a.port)
    ]
    await first.send_json_to({"type": "message.send", "id": "c-1", "text": "hello there"})
    seen = await asyncio.gather(*(frames_until_done(s) for s in [first, *others]))
    turn_frames = [[(f["type"], f.get("seq")) for f in frames if "seq" in f] for frames in seen]
    assert all(t == turn_frames[0] for t in turn_frames), turn_frames
    seqs = [s for _, s in turn_frames[0]]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 4  # no gap, nothing lost
    for frames in seen:
        text = "".join(f["text"] for f in frames if f["type"] == "message.delta")
        assert text == WORDS
        assert frames[-1]["status"] == "ok"
    for comm in [first, *others]:
        await comm.ws.close()


async def test_a_process_killed_mid_reply_the_other_answers_exactly_once(two_servers):
    model, (a, b) = two_servers(slow_first=True)
    await asyncio.gather(asyncio.to_thread(a.start, "a"), asyncio.to_thread(b.start, "b"))
    comm, ready = await Socket.open(a.port)
    await comm.send_json_to({"type": "message.send", "id": "c-1", "text": "hello there"})
    while (frame := await comm.receive_json_from(timeout=TIMEOUT))["type"] != "message.delta":
        pass
    partial = frame["message"]
    await asyncio.to_thread(a.kill)  # mid-reply: its lease stays until it expires
    killed = time.monotonic()
    await comm.ws.close()
    back, _ = await Socket.open(b.port, token=ready["token"])
    frames: list[dict] = []
    while not any(f["type"] == "turn.done" and f.get("status") == "ok" for f in frames):
        frames.append(await back.receive_json_from(timeout=45))
    done = [
        f for f in frames if f["type"] == "message.done" and f["message"]["role"] == "assistant"
    ]
    assert [d["message"]["text"] for d in done] == [WORDS]
    # The dead process never stored its partial reply: the page drops that bubble when
    # session.ready does not have it (static/superorch/chat/state.js, followRunningTurn).
    assert done[0]["message"]["id"] != partial
    assert time.monotonic() - killed < 40, "the other process did not take the conversation over"
    assert await Message.objects.filter(role="assistant").acount() == 1
    assert (await Message.objects.aget(role="user")).status == "answered"
    assert model.calls >= 2
    await back.ws.close()
