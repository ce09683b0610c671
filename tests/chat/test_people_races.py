"""The races of people in the loop that tests/chat/test_people.py and
test_people_socket.py leave open (the others are listed in docs/people.md):

- a takeover whose turn.cancel comes too late (the turn ran to its end): nothing after the
  takeover reaches the user, and the message waits for the person;
- a takeover committed just as a turn starts, before its cancel listener is in place;
- a user message between a hand-back and the next turn: answered by the agents, in order;
- a staff reply to a resolved conversation, over the socket, and at the same moment as the
  user writes again.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from chat import people, protocol, services, turns
from chat.models import Conversation, Message, Turn
from chat.turns import runner as turn_runner
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

# What an agent produces (chat.turns.runner.AGENT_OUTPUT, as frame types).
AGENT_OUTPUT = {
    "message.delta",
    "message.done",
    "agent.changed",
    "tool.started",
    "tool.finished",
    "workflow.progress",
    "turn.progress",
}


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


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


async def message_status(client_id: str) -> str:
    return (await run(Message.objects.get)(client_id=client_id)).status


# --- A takeover while an agent streams ----------------------------------------------------


async def test_a_cancel_heard_too_late_lets_nothing_through_and_the_message_waits(
    team, connect, sam, settings, monkeypatch
):
    """The turn never hears of the takeover's cancel in time (another process, a slow
    layer): it streams to its end. The sockets drop its output from the status frame on,
    nothing is stored, and the user's message is left for the person (a hand-back then
    has the agents answer it)."""

    async def heard_too_late(conversation_uuid) -> None:
        pass

    monkeypatch.setattr(people, "turn_cancel_request", heard_too_late)
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.03  # a reply of many words streams for a while
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    await until(comm, "message.delta")
    conversation = await conversation_of(ready)
    await run(people.staff_take_over)(conversation=conversation, staff=sam)

    frames = await until_turn_done(comm)
    status_at = types(frames).index("conversation.status")
    assert frames[status_at]["status"] == "human"
    assert not AGENT_OUTPUT & set(types(frames[status_at + 1 :])), types(frames)
    assert frames[-1]["status"] == "cancelled"  # the takeover stopped it, however late
    assert await run(Message.objects.filter(role="assistant").count)() == 0
    assert await message_status("c-1") == "pending"
    # A page that connects now (a reload) sees nothing of it either.
    _, again = await open_session(connect, token=ready["token"])
    assert [m["role"] for m in again["messages"]] == ["user"]
    assert again["turn"] is None

    await run(people.staff_hand_back)(conversation=conversation, staff=sam, note="")
    frames = await until_turn_done(comm)
    assert frames[-1]["status"] == "ok"
    done = [f for f in frames if f["type"] == "message.done"]
    assert len(done) == 1 and done[0]["message"]["role"] == "assistant"
    assert await message_status("c-1") == "answered"


async def test_a_takeover_just_before_the_turn_listens_cancels_it(team, sam, settings, monkeypatch):
    """Staff take over between the turn's start and its cancel listener joining the group:
    the cancel reaches nobody, so the turn checks the status once it listens."""
    conversation = await run(services.conversation_open)(
        site=await run(services.site_ensure_default)(), token=None, user={}, context={}
    )
    conversation = conversation[0]
    await run(services.message_receive)(conversation=conversation, client_id="c-1", text="Hi")
    turn = await run(services.turn_start_next)(conversation_id=conversation.pk)
    await run(people.staff_take_over)(conversation=conversation, staff=sam)  # nobody listens

    sent: list[protocol.ServerFrame] = []

    async def record(conversation_uuid, frame, *, agent_output=False) -> None:
        sent.append(frame)

    monkeypatch.setattr(turn_runner, "broadcast", record)
    await turn_runner.TurnRunner(turn, conversation.uuid).run()

    assert (await run(Turn.objects.get)(pk=turn.pk)).status == "cancelled"
    assert not [f for f in sent if isinstance(f, turn_runner.AGENT_OUTPUT)], sent
    assert await message_status("c-1") == "pending"


# --- A user message between a hand-back and the next turn ---------------------------------


async def test_a_message_written_as_the_hand_back_turn_starts_is_answered_next(team, connect, sam):
    comm, ready = await open_session(connect)
    conversation = await conversation_of(ready)
    await run(people.staff_take_over)(conversation=conversation, staff=sam)
    await recv(comm)
    await send(comm, {"type": "message.send", "id": "c-1", "text": "Are you still there?"})
    assert (await recv(comm))["type"] == "message.ack"
    await turns.wait_idle()  # its scheduling found a person there: only the hand-back wakes it

    await run(people.staff_hand_back)(conversation=conversation, staff=sam, note="")
    frames = await until(comm, "turn.started")  # the agents answer what waited...
    assert frames[0]["status"] == "bot" and frames[-1]["reply_to"] == "c-1"
    # ...and the user writes again before that turn is done.
    await send(comm, {"type": "message.send", "id": "c-2", "text": CHARGED_TWICE})
    frames += await until_turn_done(comm, 2)

    assert [f["reply_to"] for f in frames if f["type"] == "turn.started"] == ["c-1", "c-2"]
    assert [f["status"] for f in frames if f["type"] == "turn.done"] == ["ok", "ok"]
    assert len([f for f in frames if f["type"] == "message.done"]) == 2
    assert [await message_status(c) for c in ("c-1", "c-2")] == ["answered", "answered"]


async def test_a_message_written_right_after_a_hand_back_with_nothing_waiting_is_answered(
    team, connect, sam
):
    """The hand-back's wake finds nothing to answer and ends while the user's message
    arrives: the message is not lost between the two."""
    comm, ready = await open_session(connect)
    conversation = await conversation_of(ready)
    await run(people.staff_take_over)(conversation=conversation, staff=sam)
    await recv(comm)
    await run(people.staff_hand_back)(conversation=conversation, staff=sam, note="")
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    frames = await until_turn_done(comm)
    assert frames[0]["status"] == "bot"
    assert frames[-1]["status"] == "ok" and "message.done" in types(frames)
    assert await message_status("c-1") == "answered"


async def test_a_wake_from_a_staff_request_runs_the_turns_in_a_context_of_their_own(
    team, monkeypatch
):
    """A hand-back runs in a staff request: Django's per-request ThreadSensitiveContext,
    a sync view on its thread. The turns it wakes must not inherit that context: their
    database calls would go to the finished request's executor (a thread and a database
    connection left behind per hand-back) or, from plain sync_to_async, be refused as a
    deadlock (the turn runner crashed)."""
    from asgiref.sync import SyncToAsync, ThreadSensitiveContext

    from chat.turns import scheduler

    seen: list[tuple[object, bool]] = []

    async def record(conversation_id, conversation_uuid) -> None:
        context = SyncToAsync.thread_sensitive_context.get(None)
        seen.append((context, SyncToAsync.deadlock_context.get(False)))

    monkeypatch.setattr(scheduler, "_drain_in_turn", record)
    scheduler.state.loop = asyncio.get_running_loop()
    async with ThreadSensitiveContext() as request:
        await sync_to_async(turns.wake)(1, uuid.uuid4())
    await sync_to_async(turns.wake)(2, uuid.uuid4())  # sync code under sync_to_async
    await turns.wait_idle(timeout=5)
    assert len(seen) == 2 and request not in [c for c, _ in seen], seen
    assert seen == [(None, False), (None, False)]


# --- A staff reply to a resolved conversation ----------------------------------------------


async def test_a_staff_reply_to_a_resolved_conversation_reopens_it_for_the_person_live(
    team, connect, sam
):
    comm, ready = await open_session(connect)
    conversation = await conversation_of(ready)
    await run(people.staff_resolve)(conversation=conversation, staff=sam)
    assert (await recv(comm))["status"] == "resolved"

    await run(people.staff_reply)(conversation=conversation, staff=sam, text="One more thing:")
    status = await recv(comm)
    assert (status["type"], status["status"], status["staff"]) == (
        "conversation.status",
        "human",
        {"name": "Sam"},
    )
    done = await recv(comm)
    assert (done["type"], done["message"]["role"], done["message"]["text"]) == (
        "message.done",
        "staff",
        "One more thing:",
    )
    # Reopened for Sam, not for the agents: the user's answer waits for Sam.
    await send(comm, {"type": "message.send", "id": "c-1", "text": "Yes?"})
    assert (await recv(comm))["type"] == "message.ack"
    assert await comm.receive_nothing(timeout=0.3)
    assert await run(Turn.objects.count)() == 0
    assert await message_status("c-1") == "pending"


@pytest.mark.parametrize("user_first", [True, False])
def test_a_staff_reply_and_the_user_writing_again_at_once_leave_it_with_the_person(
    team, sam, user_first
):
    """A resolved conversation: the user's message reopens it to the agents, the staff
    reply reopens it for the author. Whichever comes first, the person has it and no
    agent answers the user's message."""
    site = services.site_ensure_default()
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    people.staff_resolve(conversation=conversation, staff=sam)

    def user_writes():
        services.message_receive(conversation=conversation, client_id="c-1", text="Hello?")

    def staff_replies():
        people.staff_reply(conversation=conversation, staff=sam, text="Here to help.")

    for step in (user_writes, staff_replies) if user_first else (staff_replies, user_writes):
        step()
    current = Conversation.objects.get(pk=conversation.pk)
    assert (current.status, current.owner_id) == ("human", sam.pk)
    assert services.turn_start_next(conversation_id=conversation.pk) is None
    # Before the reply the message counts as answered by it; after, it waits for Sam.
    assert Message.objects.get(client_id="c-1").status == ("answered" if user_first else "pending")
