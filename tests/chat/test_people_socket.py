"""People in the loop through the WebSocket (the full ASGI app): human.request, the
status frames, a takeover while an agent streams, a staff reply live, hand-back with a
note the agents read, csat, the contact email, and the agents' escalate_to_human."""

from __future__ import annotations

import asyncio
import json

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from chat import people, turns
from chat.models import Conversation, ConversationEvent, Message, Turn
from orchestrator.models import AgentRun
from orchestrator.sdk import team as sdk_team
from tests.chat.test_consumers import (
    CHARGED_TWICE,
    open_session,
    recv,
    send,
    types,
    until_turn_done,
)

pytestmark = pytest.mark.django_db(transaction=True)
run = sync_to_async


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


@pytest.fixture
def scripted(monkeypatch):
    model = ScriptedModel()
    monkeypatch.setattr(sdk_team, "build_model", lambda choice, **kw: model)
    return model


@pytest.fixture
def sam(transactional_db):
    return get_user_model().objects.create_user(
        "sam", password="x", is_staff=True, first_name="Sam"
    )


async def conversation_of(ready) -> Conversation:
    return await run(Conversation.objects.select_related("site").get)(uuid=ready["conversation"])


async def until(comm, kind: str, timeout: float = 5) -> list[dict]:
    """Every frame up to and including the first of type `kind`."""
    frames = []
    while True:
        frames.append(await recv(comm, timeout))
        if frames[-1]["type"] == kind:
            return frames


async def test_session_ready_carries_the_status(team, connect):
    _, ready = await open_session(connect)
    assert ready["status"] == {
        "status": "bot",
        "staff": None,
        "eta_seconds": None,
        "open_now": True,
        "opens_at": None,
        "message": "",
        "csat": None,
        "email_saved": False,
    }


async def test_human_request_reaches_every_socket_and_is_idempotent(team, connect):
    comm, ready = await open_session(connect)
    other, _ = await open_session(connect, token=ready["token"])
    await send(comm, {"type": "human.request", "reason": "I want a refund exception"})
    for socket in (comm, other):
        frame = await recv(socket)
        assert frame["type"] == "conversation.status" and frame["status"] == "waiting"
        assert frame["eta_seconds"] is None  # nobody online, nothing recorded
        assert "asked for a person" in frame["message"]
    # Again: only the asking socket is told, nothing is recorded twice.
    await send(comm, {"type": "human.request"})
    assert (await recv(comm))["status"] == "waiting"
    assert await other.receive_nothing(timeout=0.1)
    assert await run(ConversationEvent.objects.count)() == 1
    event = await run(ConversationEvent.objects.get)()
    assert event.reason == "I want a refund exception" and event.source == "user"
    # A reconnecting page learns it from session.ready.
    _, again = await open_session(connect, token=ready["token"])
    assert again["status"]["status"] == "waiting"


async def test_a_too_long_reason_is_refused_in_plain_words(team, connect):
    comm, _ = await open_session(connect)
    await send(comm, {"type": "human.request", "reason": "x" * 501})
    error = await recv(comm)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    assert error["message"] == "The reason is too long (at most 500 characters)."


async def test_while_waiting_messages_are_acked_and_left_for_a_person(team, connect):
    comm, ready = await open_session(connect)
    await send(comm, {"type": "human.request"})
    await recv(comm)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    assert (await recv(comm))["type"] == "message.ack"
    assert await comm.receive_nothing(timeout=0.3)  # no agent answers
    assert await run(Turn.objects.count)() == 0
    assert await run(Message.objects.get)(client_id="c-1") is not None


async def test_a_takeover_while_an_agent_streams_stops_its_output(team, connect, sam, settings):
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.03  # a reply of many words streams for a while
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    await until(comm, "message.delta")
    conversation = await conversation_of(ready)
    await run(people.staff_take_over)(conversation=conversation, staff=sam)
    frames = await until_turn_done(comm)
    status_at = types(frames).index("conversation.status")
    assert frames[status_at]["status"] == "human" and frames[status_at]["staff"] == {"name": "Sam"}
    after = types(frames[status_at + 1 :])
    agent_output = {"message.delta", "message.done", "tool.started", "tool.finished"}
    assert not agent_output & set(after), after
    assert frames[-1]["status"] == "cancelled"
    # The cancel stopped the agent's run itself (it did not stream on unseen to its end).
    runs = await run(list)(AgentRun.objects.values_list("status", flat=True))
    assert runs[-1] == "cancelled", runs
    # Nothing the agent wrote is kept; the user's message waits for Sam.
    assert await run(Message.objects.filter(role="assistant").count)() == 0
    assert (await run(Message.objects.get)(client_id="c-1")).status == "pending"


async def test_while_a_person_owns_it_no_agent_answers_and_the_staff_reply_is_live(
    team, connect, sam
):
    comm, ready = await open_session(connect)
    conversation = await conversation_of(ready)
    await run(people.staff_take_over)(conversation=conversation, staff=sam)
    assert (await recv(comm))["status"] == "human"
    await send(comm, {"type": "message.send", "id": "c-1", "text": "Hello Sam?"})
    assert (await recv(comm))["type"] == "message.ack"
    assert await comm.receive_nothing(timeout=0.3)
    await run(people.staff_reply)(conversation=conversation, staff=sam, text="Hi, I'm here.")
    done = await recv(comm)
    assert done["type"] == "message.done" and done["turn"] is None
    message = done["message"]
    assert (message["role"], message["agent"]["name"], message["text"]) == (
        "staff",
        "Sam",
        "Hi, I'm here.",
    )
    assert await run(Turn.objects.count)() == 0


async def test_hand_back_answers_the_waiting_message_with_the_note_as_context(
    team, connect, sam, scripted
):
    comm, ready = await open_session(connect)
    conversation = await conversation_of(ready)
    await run(people.staff_take_over)(conversation=conversation, staff=sam)
    await recv(comm)
    await run(people.staff_reply)(conversation=conversation, staff=sam, text="Refund approved.")
    await recv(comm)
    # Written between the hand-back decision and the next turn: answered by the agents.
    await send(comm, {"type": "message.send", "id": "c-2", "text": "When will I see the money?"})
    await recv(comm)
    await turns.wait_idle()  # its scheduling found a person there: only the hand-back wakes it
    scripted.enqueue([assistant_message("Within 5 business days.")])
    await run(people.staff_hand_back)(
        conversation=conversation, staff=sam, note="Refund ACME-42 approved by Sam."
    )
    frames = await until_turn_done(comm)
    assert frames[0]["type"] == "conversation.status" and frames[0]["status"] == "bot"
    started = next(f for f in frames if f["type"] == "turn.started")
    assert started["reply_to"] == "c-2"
    assert [f["message"]["text"] for f in frames if f["type"] == "message.done"] == [
        "Within 5 business days."
    ]
    instructions = scripted.last_call.system_instructions
    assert "Refund ACME-42 approved by Sam." in instructions
    assert (await run(Message.objects.get)(client_id="c-2")).status == "answered"


async def test_csat_frames(team, connect, sam):
    comm, ready = await open_session(connect)
    await send(comm, {"type": "csat", "score": 5})
    error = await recv(comm)
    assert (error["code"], error["message"]) == (
        "bad_frame",
        "You can rate the conversation once it is resolved.",
    )
    await run(people.staff_resolve)(conversation=await conversation_of(ready), staff=sam)
    assert (await recv(comm))["status"] == "resolved"
    for bad, words in (
        ({"score": 0}, "The score must be a whole number from 1 to 5."),
        ({"score": "5"}, "The score must be a whole number from 1 to 5."),
        ({"score": 4.5}, "The score must be a whole number from 1 to 5."),
        ({"score": 3, "comment": "x" * 2001}, "The comment is too long (at most 2000 characters)."),
    ):
        await send(comm, {"type": "csat", **bad})
        assert (await recv(comm))["message"] == words
    await send(comm, {"type": "csat", "score": 4, "comment": "Quick"})
    status = await recv(comm)
    assert (status["type"], status["csat"]) == ("conversation.status", 4)
    await send(comm, {"type": "csat", "score": 1})
    assert (await recv(comm))["message"] == "You have already rated this conversation. Thank you!"
    stored = await conversation_of(ready)
    assert (stored.csat_score, stored.csat_comment) == (4, "Quick")


async def test_the_contact_email_frame(team, connect):
    comm, ready = await open_session(connect)
    await send(comm, {"type": "contact.email", "email": "nope"})
    assert (await recv(comm))["code"] == "bad_frame"
    await send(comm, {"type": "contact.email", "email": "ada@example.com"})
    assert (await recv(comm))["email_saved"] is True
    assert (await conversation_of(ready)).contact_email == "ada@example.com"


async def test_the_user_writing_after_resolved_reopens_to_the_agents(team, connect, sam):
    comm, ready = await open_session(connect)
    await run(people.staff_resolve)(conversation=await conversation_of(ready), staff=sam)
    await recv(comm)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    frames = await until_turn_done(comm)
    assert types(frames)[:2] == ["conversation.status", "message.ack"]
    assert frames[0]["status"] == "bot"
    assert frames[-1]["status"] == "ok" and "message.done" in types(frames)


async def test_an_agent_escalates_with_its_tool(team, connect, scripted):
    scripted.extend(
        [
            [
                function_call(
                    "escalate_to_human", {"reason": "Wants a contract change"}, call_id="e1"
                )
            ],
            [assistant_message("I have asked a colleague to join.")],
        ]
    )
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": "Change my contract terms"})
    frames = await until_turn_done(comm)
    kinds = types(frames)
    assert "conversation.status" in kinds
    status = frames[kinds.index("conversation.status")]
    assert status["status"] == "waiting"
    # The agent's own words after escalating still reach the user (no person owns it yet).
    assert [f["message"]["text"] for f in frames if f["type"] == "message.done"] == [
        "I have asked a colleague to join."
    ]
    tool_output = json.loads(scripted.last_call.input[-1]["output"])
    assert tool_output["ok"] is True and tool_output["status"] == "waiting"
    assert "asked for a person" in tool_output["tell_the_user"]
    event = await run(ConversationEvent.objects.get)()
    assert (event.source, event.reason) == ("agent", "Wants a contract change")


async def test_no_model_twice_in_a_row_asks_for_a_person(team, connect, scripted, settings):
    from tests.support.model_errors import connection_error

    settings.SUPERORCH_ESCALATE_AFTER_ERRORS = 2
    settings.SUPERORCH_REQUEUE_DELAYS = [0.2]
    scripted.extend([connection_error()] * 6)  # the turn and its retry: every attempt fails
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    first = await until_turn_done(comm)
    assert first[-1]["status"] == "error" and "conversation.status" not in types(first)
    second = await until_turn_done(comm)  # the queued retry, by itself
    assert second[-1]["status"] == "error"
    assert types(second)[-3:] == ["error", "conversation.status", "turn.done"]
    assert second[-2]["status"] == "waiting"
    await asyncio.sleep(0.4)  # no third try: a person answers it now
    assert await run(Turn.objects.count)() == 2
    event = await run(ConversationEvent.objects.get)()
    assert event.source == "errors"


async def test_thumbs_down_twice_asks_for_a_person(team, connect, settings):
    settings.SUPERORCH_ESCALATE_AFTER_THUMBS_DOWN = 2
    comm, ready = await open_session(connect)
    replies = []
    for n in (1, 2):
        await send(comm, {"type": "message.send", "id": f"c-{n}", "text": CHARGED_TWICE})
        frames = await until_turn_done(comm)
        replies += [f["message"]["id"] for f in frames if f["type"] == "message.done"]
    await send(comm, {"type": "feedback", "message": replies[0], "value": "down"})
    assert (await recv(comm))["type"] == "feedback.ack"
    await send(comm, {"type": "feedback", "message": replies[-1], "value": "down"})
    frames = [await recv(comm), await recv(comm)]
    assert {f["type"] for f in frames} == {"feedback.ack", "conversation.status"}
    assert next(f for f in frames if f["type"] == "conversation.status")["status"] == "waiting"
