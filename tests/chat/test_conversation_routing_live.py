"""The live chat routes with the conversation: over the WebSocket, with the offline model,
an aside mid-conversation goes to the General Assistant and the next on-topic message
back to the specialist; a request for a person in words asks for one and no agent
answers it; the decisions are recorded on the turns."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat import turns
from chat.models import Message, Turn, TurnEvent

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 10
CONVERSATION = [
    ("my tasks aren't syncing between my phone and laptop", "technical_support", "first"),
    ("what's the capital of Australia?", "general_assistant", "aside"),
    ("the phone still shows yesterday's tasks", "technical_support", "return"),
]
PERSON = "can I talk to a human please?"


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


async def _answer(comm, client_id: str, text: str) -> tuple[dict | None, list[dict]]:
    """Send a message; the reply (message.done's message, if any) and every frame, once
    its turn is done."""
    await comm.send_json_to({"type": "message.send", "id": client_id, "text": text})
    reply, frames = None, []
    while True:
        frame = await comm.receive_json_from(timeout=TIMEOUT)
        frames.append(frame)
        if frame["type"] == "message.done":
            reply = frame["message"]
        if frame["type"] == "turn.done":
            assert frame["status"] == "ok", frame
            return reply, frames


@sync_to_async
def _route_events(conversation: str) -> list[dict]:
    turn_ids = Turn.objects.filter(conversation__uuid=conversation).order_by("id")
    return [TurnEvent.objects.get(turn=turn, kind=TurnEvent.Kind.ROUTE).data for turn in turn_ids]


async def test_an_aside_is_answered_by_the_general_assistant_then_the_specialist_returns(
    team, connect, settings
):
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0
    comm = await connect()
    await comm.send_json_to({"type": "session.start", "protocol": 1, "site": "demo"})
    ready = await comm.receive_json_from(timeout=TIMEOUT)
    for number, (text, agent, _move) in enumerate(CONVERSATION, 1):
        reply, _ = await _answer(comm, f"c-{number}", text)
        assert reply["agent"]["slug"] == agent, (text, reply)

    reply, frames = await _answer(comm, "c-person", PERSON)
    assert reply is None  # no agent answers a request for a person
    (status,) = [f for f in frames if f["type"] == "conversation.status"]
    assert status["status"] == "waiting" and status["message"]
    asked = await Message.objects.aget(client_id="c-person")
    assert asked.status == "answered"  # a hand-back will not route it to a person again

    routes = await _route_events(ready["conversation"])
    expected = [(a, m) for _, a, m in CONVERSATION] + [("general_assistant", "person")]
    assert [(r["agent"], r["move"]) for r in routes] == expected
    assert [r["wants_person"] for r in routes] == [False, False, False, True]
