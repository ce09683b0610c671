"""The chat WebSocket, protocol v1 (/work/shared/protocol.md), end to end through the ASGI app."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest
from agents.testing import ScriptedModel, assistant_message
from asgiref.sync import sync_to_async

from chat import services, turns
from chat.models import Conversation, Feedback, Message, Site, Turn
from chat.turns import scheduler
from orchestrator.sdk import team as sdk_team
from tests.support.model_errors import connection_error

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 5
CHARGED_TWICE = "I was charged twice for my subscription"
MESSAGE_KEYS = {"id", "role", "agent", "text", "created"}
USER_MESSAGE_KEYS = MESSAGE_KEYS | {"client_id"}
CREATED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


# --- Fixtures and helpers -------------------------------------------------------------


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


async def send(comm, frame: dict) -> None:
    await comm.send_json_to(frame)


async def recv(comm, timeout: float = TIMEOUT) -> dict:
    return await comm.receive_json_from(timeout=timeout)


async def start(comm, **fields) -> dict:
    """session.start; returns session.ready."""
    await send(comm, {"type": "session.start", "protocol": 1, "site": "demo", **fields})
    ready = await recv(comm)
    assert ready["type"] == "session.ready", ready
    return ready


async def open_session(connect, **fields):
    comm = await connect()
    return comm, await start(comm, **fields)


async def until_turn_done(comm, turns_done: int = 1, timeout: float = TIMEOUT) -> list[dict]:
    """Every frame up to and including the `turns_done`-th turn.done."""
    frames: list[dict] = []
    while turns_done:
        frame = await recv(comm, timeout)
        frames.append(frame)
        if frame["type"] == "turn.done":
            turns_done -= 1
    return frames


async def expect_close(comm, code: int) -> None:
    """The next output is the server closing the socket with `code`."""
    output = await comm.receive_output(timeout=TIMEOUT)
    assert output == {"type": "websocket.close", "code": code}, output
    assert type(output["code"]) is int  # daphne's autobahn refuses anything else, enums too


def types(frames: list[dict]) -> list[str]:
    return [f["type"] for f in frames]


def collapse_deltas(frames: list[dict]) -> list[str]:
    out: list[str] = []
    for kind in types(frames):
        if kind == "message.delta" and out and out[-1] == "message.delta":
            continue
        out.append(kind)
    return out


@sync_to_async
def count(model, **filters) -> int:
    return model.objects.filter(**filters).count()


@sync_to_async
def user_messages(conversation: str) -> list[tuple[str, str, str]]:
    return list(
        Message.objects.filter(conversation__uuid=conversation, role="user")
        .order_by("id")
        .values_list("client_id", "text", "status")
    )


@pytest.fixture
def scripted(monkeypatch):
    """Every agent speaks through one ScriptedModel, in call order."""
    model = ScriptedModel()
    monkeypatch.setattr(sdk_team, "build_model", lambda choice, **kw: model)
    return model


# --- 1. A full turn ---------------------------------------------------------------------


async def test_full_turn_sends_every_frame_in_protocol_order(team, connect, settings):
    # Words 10 ms apart: the reply streams as several message.delta frames (the server
    # sends at most one per 40 ms, joining the words between).
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.01
    comm = await connect()
    ready = await start(comm)
    assert set(ready) == {
        "type",
        "conversation",
        "token",
        "agent",
        "greeting",
        "suggestions",
        "messages",
        "status",  # people in the loop: who answers
        "turn",  # Addition: the turn running now (none)
        "locale",  # Addition: the language the chat speaks (docs/protocol.md)
    }
    assert ready["turn"] is None
    assert ready["status"]["status"] == "bot" and ready["status"]["open_now"] is True
    uuid.UUID(ready["conversation"])
    assert isinstance(ready["token"], str) and len(ready["token"]) >= 32
    assert ready["agent"] == {"slug": "orchestrator", "name": "Super Orchestrator"}
    assert ready["greeting"] and isinstance(ready["greeting"], str)
    assert CHARGED_TWICE in ready["suggestions"]
    assert ready["messages"] == []

    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    frames = await until_turn_done(comm)

    assert collapse_deltas(frames) == [
        "message.ack",
        "turn.started",
        "agent.changed",
        "tool.started",
        "tool.finished",
        "message.delta",
        "message.done",
        "turn.done",
    ]
    # Addition: the turn's frames are numbered 1, 2, 3... (`seq`, last), the ack is not.
    assert "seq" not in frames[0]
    assert [f.pop("seq") for f in frames[1:]] == list(range(1, len(frames)))
    assert all(list(f)[0] == "type" for f in frames)
    ack, started, changed, tool_started, tool_finished, *deltas, done, turn_done = frames

    assert set(ack) == {"type", "id", "message"}
    assert ack["id"] == "c-1"
    assert set(ack["message"]) == USER_MESSAGE_KEYS
    assert ack["message"]["role"] == "user"
    assert ack["message"]["client_id"] == "c-1"
    assert ack["message"]["text"] == CHARGED_TWICE
    assert ack["message"]["agent"] is None
    assert CREATED.match(ack["message"]["created"])
    uuid.UUID(ack["message"]["id"])

    turn = started["turn"]
    uuid.UUID(turn)
    assert started == {"type": "turn.started", "turn": turn, "reply_to": "c-1"}

    assert changed == {
        "type": "agent.changed",
        "turn": turn,
        "from": {"slug": "orchestrator", "name": "Super Orchestrator"},
        "to": {"slug": "billing", "name": "Billing"},
        "reason": "route",  # the fast path: routed before the turn
    }

    call = tool_started["call"]
    assert call and isinstance(call, str)
    assert tool_started == {
        "type": "tool.started",
        "turn": turn,
        "agent": "billing",
        "tool": "search_knowledge",
        "call": call,
        "label": "Searching the knowledge base",
    }
    assert tool_finished == {"type": "tool.finished", "turn": turn, "call": call, "ok": True}

    assert len(deltas) > 1  # streamed, not sent in one piece
    message_id = deltas[0]["message"]
    for delta in deltas:
        assert set(delta) == {"type", "turn", "message", "agent", "text"}
        assert (delta["turn"], delta["message"], delta["agent"]) == (turn, message_id, "billing")

    assert set(done) == {"type", "turn", "message"}
    assert done["turn"] == turn
    reply = done["message"]
    assert set(reply) == MESSAGE_KEYS  # no client_id on assistant messages
    assert reply["id"] == message_id
    assert reply["role"] == "assistant"
    assert reply["agent"] == {"slug": "billing", "name": "Billing"}
    assert reply["text"] and reply["text"] == "".join(d["text"] for d in deltas)
    assert CREATED.match(reply["created"])

    assert set(turn_done) == {"type", "turn", "status", "usage"}
    assert (turn_done["turn"], turn_done["status"]) == (turn, "ok")
    usage = turn_done["usage"]
    assert set(usage) == {"requests", "input_tokens", "output_tokens"}
    for key in usage:
        assert type(usage[key]) is int and usage[key] > 0, usage

    assert await comm.receive_nothing(timeout=0.1)
    stored = await sync_to_async(Turn.objects.get)(uuid=turn)
    assert (stored.status, stored.agent_slug) == ("ok", "billing")
    assert await user_messages(ready["conversation"]) == [("c-1", CHARGED_TWICE, "answered")]


# --- 2. Reload ------------------------------------------------------------------------


async def test_reconnecting_with_the_token_restores_the_conversation_and_since_filters(
    team, connect
):
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    frames = await until_turn_done(comm)
    ack = frames[0]
    (done,) = [f for f in frames if f["type"] == "message.done"]
    await comm.disconnect()

    again, reloaded = await open_session(connect, token=ready["token"])
    assert reloaded["conversation"] == ready["conversation"]
    assert reloaded["token"] == ready["token"]
    assert reloaded["agent"] == {"slug": "billing", "name": "Billing"}  # who answers next
    assert reloaded["messages"] == [ack["message"], done["message"]]

    third, since = await open_session(connect, token=ready["token"], since=ack["message"]["id"])
    assert since["conversation"] == ready["conversation"]
    assert since["messages"] == [done["message"]]
    assert await again.receive_nothing(timeout=0.05)
    assert await third.receive_nothing(timeout=0.05)


# --- 3. Unknown or foreign token --------------------------------------------------------


async def test_unknown_or_foreign_token_starts_a_new_empty_conversation(team, connect):
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    await until_turn_done(comm)

    _, unknown = await open_session(connect, token="not-a-token-anyone-was-given")
    assert unknown["conversation"] != ready["conversation"]
    assert unknown["token"] not in (ready["token"], "not-a-token-anyone-was-given")
    assert unknown["messages"] == []

    # The real token, but presented on another site: a new conversation there.
    await sync_to_async(Site.objects.create)(key="other", name="Other site")
    _, foreign = await open_session(connect, site="other", token=ready["token"])
    assert foreign["conversation"] not in (ready["conversation"], unknown["conversation"])
    assert foreign["token"] != ready["token"]
    assert foreign["messages"] == []
    assert await count(Conversation) == 3


# --- 4. Idempotency ---------------------------------------------------------------------


async def test_the_same_message_id_is_acked_again_and_answered_once(team, connect):
    comm, ready = await open_session(connect)
    frame = {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE}
    await send(comm, frame)
    await send(comm, frame)
    frames = await until_turn_done(comm)
    acks = [f for f in frames if f["type"] == "message.ack"]
    assert len(acks) == 2
    assert acks[0] == acks[1] and acks[0]["id"] == "c-1"
    assert types(frames).count("turn.started") == 1
    await turns.wait_idle()
    assert await comm.receive_nothing(timeout=0.1)  # no second turn
    await comm.disconnect()

    # After a reconnect (the client never saw the ack, say).
    again, _ = await open_session(connect, token=ready["token"])
    await send(again, {**frame, "text": "the text of a retry is not stored again"})
    ack = await recv(again)
    assert ack == acks[0]
    await turns.wait_idle()
    assert await again.receive_nothing(timeout=0.1)

    assert await count(Turn) == 1
    assert await count(Message, role="user") == 1
    assert await count(Message, role="assistant") == 1


# --- 5. Messages sent during a turn -----------------------------------------------------


async def test_messages_sent_during_a_turn_are_acked_at_once_and_answered_in_order(
    team, connect, settings
):
    # Slow enough that the first turn still streams when the second message arrives.
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.002
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    await send(comm, {"type": "message.send", "id": "c-2", "text": "How do I reset my password?"})
    frames = await until_turn_done(comm, turns_done=2)

    kinds = types(frames)
    first_done = kinds.index("turn.done")
    # Both are acknowledged at once, while the first turn still runs.
    acks = [f["id"] for f in frames[:first_done] if f["type"] == "message.ack"]
    assert acks == ["c-1", "c-2"]
    assert kinds.count("message.ack") == 2
    assert kinds.index("turn.started") < first_done < len(frames) - 1
    started = [f for f in frames if f["type"] == "turn.started"]
    assert [s["reply_to"] for s in started] == ["c-1", "c-2"]
    # The second is answered after the first turn is over, never alongside it.
    assert frames.index(started[1]) > first_done
    done = [f for f in frames if f["type"] == "turn.done"]
    assert [d["status"] for d in done] == ["ok", "ok"]
    assert [d["turn"] for d in done] == [s["turn"] for s in started]
    assert await user_messages(ready["conversation"]) == [
        ("c-1", CHARGED_TWICE, "answered"),
        ("c-2", "How do I reset my password?", "answered"),
    ]


async def test_a_message_acked_while_the_turn_runner_is_ending_is_answered(
    team, connect, monkeypatch
):
    # The runner has found nothing pending and is on its way out when c-2 arrives: the
    # consumer hands c-2 to that runner, which must look once more before it ends.
    comm, ready = await open_session(connect)
    ending = scheduler._wake_later
    sent = []

    async def wake_later_then_a_message_arrives(*args):
        await ending(*args)
        if not sent:
            sent.append(True)
            await send(comm, {"type": "message.send", "id": "c-2", "text": CHARGED_TWICE})
            while not await Message.objects.filter(client_id="c-2").aexists():
                await asyncio.sleep(0.01)

    monkeypatch.setattr(scheduler, "_wake_later", wake_later_then_a_message_arrives)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    frames = await until_turn_done(comm, turns_done=2)
    assert [f["reply_to"] for f in frames if f["type"] == "turn.started"] == ["c-1", "c-2"]
    assert [m[2] for m in await user_messages(ready["conversation"])] == ["answered"] * 2


# --- 6. Two sockets on one conversation -----------------------------------------------


async def test_every_socket_of_a_conversation_receives_the_turn(team, connect):
    first, ready = await open_session(connect)
    second, _ = await open_session(connect, token=ready["token"])
    await send(first, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    seen_first = await until_turn_done(first)
    seen_second = await until_turn_done(second)

    assert seen_second == seen_first
    assert seen_second[0]["type"] == "message.ack" and seen_second[0]["id"] == "c-1"
    kinds = collapse_deltas(seen_second)
    for kind in ("turn.started", "message.delta", "message.done", "turn.done"):
        assert kind in kinds
    assert seen_second[-1]["status"] == "ok"


@pytest.mark.parametrize("limit", [1, 0])
async def test_a_process_answers_at_most_its_turn_slots_at_once(team, connect, settings, limit):
    # Two conversations ask at once; the reply streams for about 0.4 s. With one slot
    # the second turn starts once the first is done; with no limit (0) they overlap.
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.01
    settings.SUPERORCH_MAX_ACTIVE_TURNS = limit
    (a, ready_a), (b, ready_b) = await open_session(connect), await open_session(connect)
    await send(a, {"type": "message.send", "id": "a-1", "text": CHARGED_TWICE})
    await send(b, {"type": "message.send", "id": "b-1", "text": CHARGED_TWICE})
    for comm in (a, b):
        assert (await until_turn_done(comm))[-1]["status"] == "ok"
    first, second = [
        await Turn.objects.aget(conversation__uuid=ready["conversation"])
        for ready in (ready_a, ready_b)
    ]
    if first.started_at > second.started_at:
        first, second = second, first
    assert (second.started_at >= first.finished_at) is (limit == 1)


# --- 7. Cancel --------------------------------------------------------------------------


async def test_turn_cancel_stops_the_stream_and_keeps_what_was_said(team, connect, settings):
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.02
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    frames = []
    while types(frames).count("message.delta") < 3:
        frames.append(await recv(comm))
    await send(comm, {"type": "turn.cancel"})
    frames += await until_turn_done(comm)

    kinds = collapse_deltas(frames)
    assert kinds[-3:] == ["message.delta", "message.done", "turn.done"]
    turn_done = frames[-1]
    assert turn_done["status"] == "cancelled"
    deltas = [f for f in frames if f["type"] == "message.delta"]
    done = frames[-2]["message"]
    assert done["text"] == "".join(d["text"] for d in deltas)
    assert done["agent"] == {"slug": "billing", "name": "Billing"}

    # Cut short: the full reply is about a hundred words and ends with the article's link.
    assert len(deltas) < 15 and "full article" not in done["text"]
    stored = await sync_to_async(Message.objects.get)(uuid=done["id"])
    assert stored.role == "assistant" and stored.text == done["text"]
    turn = await sync_to_async(Turn.objects.get)(uuid=turn_done["turn"])
    assert turn.status == "cancelled"
    assert await user_messages(ready["conversation"]) == [("c-1", CHARGED_TWICE, "answered")]


# --- 8. A turn outlives its socket -----------------------------------------------------


async def test_a_turn_goes_on_after_the_socket_leaves(team, connect):
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    assert (await recv(comm))["type"] == "message.ack"
    await comm.disconnect()
    await turns.wait_idle()

    _, reloaded = await open_session(connect, token=ready["token"])
    roles = [(m["role"], m.get("client_id")) for m in reloaded["messages"]]
    assert roles == [("user", "c-1"), ("assistant", None)]
    reply = reloaded["messages"][1]
    assert reply["agent"] == {"slug": "billing", "name": "Billing"} and reply["text"]


# --- 9. Feedback ------------------------------------------------------------------------


async def test_feedback_is_recorded_on_replies_and_refused_otherwise(team, connect):
    comm, _ = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    frames = await until_turn_done(comm)
    user_id = frames[0]["message"]["id"]
    reply_id = next(f for f in frames if f["type"] == "message.done")["message"]["id"]

    await send(comm, {"type": "feedback", "message": reply_id, "value": "down", "comment": "vague"})
    assert await recv(comm) == {"type": "feedback.ack", "message": reply_id}
    feedback = await sync_to_async(Feedback.objects.select_related("message").get)()
    assert (str(feedback.message.uuid), feedback.value, feedback.comment) == (
        reply_id,
        "down",
        "vague",
    )

    # Changing one's mind updates the same row.
    await send(comm, {"type": "feedback", "message": reply_id, "value": "up"})
    assert await recv(comm) == {"type": "feedback.ack", "message": reply_id}
    assert await count(Feedback) == 1
    assert await count(Feedback, value="up", comment="") == 1

    for unknown in (str(uuid.uuid4()), "not-a-uuid", user_id):
        await send(comm, {"type": "feedback", "message": unknown, "value": "up"})
        error = await recv(comm)
        assert (error["type"], error["code"], error["ref"]) == ("error", "not_found", unknown)
        assert error["retryable"] is False

    await send(comm, {"type": "feedback", "message": reply_id, "value": "meh"})
    error = await recv(comm)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    assert await count(Feedback) == 1


# --- 10. Ping -------------------------------------------------------------------------


async def test_ping_is_answered_with_pong(team, connect):
    comm, _ = await open_session(connect)
    await send(comm, {"type": "ping"})
    assert await recv(comm) == {"type": "pong"}
    assert await comm.receive_nothing(timeout=0.05)


# --- 11. Errors ---------------------------------------------------------------------


def assert_error(frame: dict, code: str, *, ref: str | None = None) -> None:
    assert frame["type"] == "error", frame
    assert frame["code"] == code, frame
    assert isinstance(frame["message"], str) and frame["message"], frame
    assert frame["retryable"] is False, frame
    if ref is None:
        assert "ref" not in frame, frame
    else:
        assert frame["ref"] == ref, frame


async def assert_still_open(comm) -> None:
    await send(comm, {"type": "ping"})
    assert await recv(comm) == {"type": "pong"}


async def test_a_first_frame_other_than_session_start_closes_with_4400(team, connect):
    comm = await connect()
    await send(comm, {"type": "ping"})
    assert_error(await recv(comm), "bad_frame")
    await expect_close(comm, 4400)
    assert await count(Conversation) == 0


async def test_an_invalid_first_frame_closes_with_4400(team, connect):
    comm = await connect()
    await comm.send_to(text_data="{not json")
    assert_error(await recv(comm), "bad_frame")
    await expect_close(comm, 4400)


async def test_protocol_2_is_refused_with_4400(team, connect):
    comm = await connect()
    await send(comm, {"type": "session.start", "protocol": 2, "site": "demo"})
    assert_error(await recv(comm), "bad_frame")
    await expect_close(comm, 4400)
    assert await count(Conversation) == 0


async def test_an_unknown_site_is_forbidden_with_4403(team, connect):
    comm = await connect()
    await send(comm, {"type": "session.start", "protocol": 1, "site": "nobody-has-this-key"})
    assert_error(await recv(comm), "forbidden")
    await expect_close(comm, 4403)
    assert await count(Conversation) == 0


async def test_a_disabled_site_is_forbidden_with_4403(team, connect):
    await sync_to_async(Site.objects.create)(key="off", name="Switched off", enabled=False)
    comm = await connect()
    await send(comm, {"type": "session.start", "protocol": 1, "site": "off"})
    assert_error(await recv(comm), "forbidden")
    await expect_close(comm, 4403)
    assert await count(Conversation) == 0


async def test_a_second_session_start_is_a_bad_frame(team, connect):
    comm, ready = await open_session(connect)
    await send(comm, {"type": "session.start", "protocol": 1, "site": "demo"})
    assert_error(await recv(comm), "bad_frame")
    await assert_still_open(comm)
    assert await count(Conversation) == 1


async def test_malformed_frames_get_errors_and_the_connection_stays_open(team, connect):
    comm, ready = await open_session(connect)

    await comm.send_to(text_data="this is not json")
    assert_error(await recv(comm), "bad_frame")
    await assert_still_open(comm)

    for frame in ([1, 2], {"no": "type"}, {"type": 7}):
        await comm.send_to(text_data=json.dumps(frame))
        assert_error(await recv(comm), "bad_frame")

    await send(comm, {"type": "message.delete", "id": "c-1"})
    assert_error(await recv(comm), "unknown_type")
    await assert_still_open(comm)

    await comm.send_to(bytes_data=b'{"type": "ping"}')
    assert_error(await recv(comm), "bad_frame")
    await assert_still_open(comm)

    await send(comm, {"type": "message.send", "id": "c-1"})
    assert_error(await recv(comm), "bad_frame", ref="c-1")
    await send(comm, {"type": "message.send", "text": "no id"})
    assert_error(await recv(comm), "bad_frame")
    await send(comm, {"type": "message.send", "id": "c-2", "text": "   \n "})
    assert_error(await recv(comm), "bad_frame", ref="c-2")
    await send(comm, {"type": "message.send", "id": "c-3", "text": 42})
    assert_error(await recv(comm), "bad_frame", ref="c-3")
    await assert_still_open(comm)

    assert await count(Message) == 0
    assert await count(Turn) == 0


async def test_oversized_frames_and_messages_are_too_large(team, connect, settings):
    comm, ready = await open_session(connect)
    limit_bytes = settings.SUPERORCH_MAX_FRAME_BYTES
    limit_chars = settings.SUPERORCH_MAX_MESSAGE_CHARS
    assert limit_chars + 200 < limit_bytes  # so the second case is not a too-large frame

    await send(comm, {"type": "message.send", "id": "c-1", "text": "x" * (limit_bytes + 1)})
    assert_error(await recv(comm), "too_large")  # the frame is not read, so no ref

    await send(comm, {"type": "message.send", "id": "c-2", "text": "y" * (limit_chars + 1)})
    assert_error(await recv(comm), "too_large", ref="c-2")

    # Exactly at the limit is fine.
    await send(comm, {"type": "message.send", "id": "c-3", "text": "z" * limit_chars})
    ack = await recv(comm)
    assert ack["type"] == "message.ack" and ack["id"] == "c-3"
    await until_turn_done(comm)

    assert await user_messages(ready["conversation"]) == [("c-3", "z" * limit_chars, "answered")]


# --- 12. Rate limit ---------------------------------------------------------------------


async def test_too_many_messages_are_refused_then_the_socket_is_closed_with_4429(
    team, connect, settings
):
    settings.SUPERORCH_RATE_LIMIT = "2/minute"
    settings.SUPERORCH_RATE_LIMIT_CLOSE_AFTER = 2
    comm, ready = await open_session(connect)
    for n in (1, 2):
        await send(comm, {"type": "message.send", "id": f"c-{n}", "text": CHARGED_TWICE})
        frames = await until_turn_done(comm)
        assert frames[0]["type"] == "message.ack" and frames[-1]["status"] == "ok"

    await send(comm, {"type": "message.send", "id": "c-3", "text": CHARGED_TWICE})
    error = await recv(comm)
    assert error == {
        "type": "error",
        "code": "rate_limited",
        "message": error["message"],
        "retryable": True,
        "ref": "c-3",
    }
    assert error["message"]
    await assert_still_open(comm)

    await send(comm, {"type": "message.send", "id": "c-4", "text": CHARGED_TWICE})
    error = await recv(comm)
    assert (error["code"], error["ref"], error["retryable"]) == ("rate_limited", "c-4", True)
    await expect_close(comm, 4429)

    assert [m[0] for m in await user_messages(ready["conversation"])] == ["c-1", "c-2"]
    assert await count(Turn) == 2


# --- 13. Origin check ---------------------------------------------------------------------


@pytest.mark.parametrize("origin", [b"http://evil.example", None], ids=["foreign", "missing"])
async def test_connections_from_other_origins_are_rejected(team, communicator, origin):
    comm = communicator(origin)
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected is False


async def test_connections_from_an_allowed_origin_are_accepted(team, communicator):
    comm = communicator(b"http://localhost")
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected is True
    await comm.disconnect()


# --- 14. Model failure --------------------------------------------------------------------


async def test_a_model_failure_is_reported_in_plain_words_and_the_message_is_kept(
    team, connect, scripted
):
    # Billing, Billing's retry and then the fallback agent all fail to reach their model.
    scripted.extend([connection_error()] * 3)
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    frames = await until_turn_done(comm)

    assert types(frames) == [
        "message.ack",
        "turn.started",
        "agent.changed",  # routed to Billing (fast path)
        "agent.changed",  # Billing failed twice: the fallback agent tries
        "error",
        "turn.done",
    ]
    assert frames[3]["to"]["slug"] == "general_assistant" and frames[3]["reason"] == "fallback"
    turn = frames[1]["turn"]
    error = frames[4]
    assert set(error) == {"type", "code", "message", "retryable", "ref", "seq"}
    assert (error["code"], error["retryable"], error["ref"]) == ("model_unavailable", True, turn)
    for leak in ("Traceback", "APIConnectionError", "Error:", "openai"):
        assert leak not in error["message"]
    assert "saved and will be answered" in error["message"]
    assert frames[5]["status"] == "error" and frames[5]["turn"] == turn
    # Not failed: queued, to be answered when a model is back.
    assert await user_messages(ready["conversation"]) == [("c-1", CHARGED_TWICE, "pending")]
    stored = await sync_to_async(Turn.objects.get)(uuid=turn)
    assert (stored.status, stored.error_code) == ("error", "model_unavailable")
    assert "APIConnectionError" in stored.error  # the detail is for staff only

    # The user writes again: the queued message is answered first, then the new one.
    scripted.extend(
        [
            [assistant_message("Sorry for the wait: only one charge is real.")],
            [assistant_message("Yes, I'm here.")],
        ]
    )
    await send(comm, {"type": "message.send", "id": "c-2", "text": "Are you there?"})
    frames = await until_turn_done(comm, turns_done=2)
    started = [f["reply_to"] for f in frames if f["type"] == "turn.started"]
    assert started == ["c-1", "c-2"]
    replies = [f["message"]["text"] for f in frames if f["type"] == "message.done"]
    assert replies == ["Sorry for the wait: only one charge is real.", "Yes, I'm here."]
    assert await user_messages(ready["conversation"]) == [
        ("c-1", CHARGED_TWICE, "answered"),
        ("c-2", "Are you there?", "answered"),
    ]
    scripted.assert_complete()


async def test_a_queued_message_is_answered_by_itself_once_the_model_is_back(
    team, connect, scripted, settings
):
    settings.SUPERORCH_REQUEUE_DELAYS = [0.3]
    scripted.extend([connection_error()] * 3)
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    first = await until_turn_done(comm)
    assert first[-1]["status"] == "error"
    scripted.enqueue([assistant_message("Back now: only one charge is real.")])
    # No new message from the user: the server tries again when the message is due.
    frames = await until_turn_done(comm, timeout=5)
    assert frames[0]["type"] == "turn.started" and frames[0]["reply_to"] == "c-1"
    assert frames[-1]["status"] == "ok"
    assert await user_messages(ready["conversation"]) == [("c-1", CHARGED_TWICE, "answered")]


# --- 15. Recovery ---------------------------------------------------------------------------


async def test_a_message_left_pending_is_answered_when_the_conversation_is_opened(team, connect):
    _, ready = await open_session(connect)
    conversation = await sync_to_async(Conversation.objects.get)(uuid=ready["conversation"])
    # As if the server died right after acking: the message is stored, no turn ran.
    message, created = await sync_to_async(services.message_receive)(
        conversation=conversation, client_id="c-lost", text=CHARGED_TWICE
    )
    assert created and message.status == "pending"
    assert await count(Turn) == 0

    comm, reopened = await open_session(connect, token=ready["token"])
    assert [(m["role"], m["client_id"]) for m in reopened["messages"]] == [("user", "c-lost")]
    frames = await until_turn_done(comm)
    # The turn starts as the conversation opens: its turn.started, or session.ready's
    # running turn when it started before the socket joined (docs/protocol.md).
    started = reopened["turn"] or frames[0]
    assert started["reply_to"] == "c-lost"
    assert reopened["turn"] is not None or frames[0]["type"] == "turn.started"
    assert frames[-1]["status"] == "ok"
    assert "message.done" in types(frames)
    assert await user_messages(ready["conversation"]) == [("c-lost", CHARGED_TWICE, "answered")]


def test_a_queued_oldest_message_holds_the_ones_after_it(team):
    """No busy loop: while the oldest waits for its retry time, nothing is due."""
    from datetime import timedelta

    from django.utils import timezone

    from chat import selectors

    site = Site.objects.get(key="demo")
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    Message.objects.create(
        conversation=conversation,
        role="user",
        text="a",
        client_id="a",
        status="pending",
        retry_at=timezone.now() + timedelta(minutes=1),
    )
    Message.objects.create(
        conversation=conversation, role="user", text="b", client_id="b", status="pending"
    )
    assert selectors.conversation_has_pending(conversation_id=conversation.pk) is False
    assert services.turn_start_next(conversation_id=conversation.pk) is None
    Message.objects.filter(client_id="a").update(retry_at=None)
    assert selectors.conversation_has_pending(conversation_id=conversation.pk) is True
