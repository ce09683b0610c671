"""One turn (chat/turns/runner.py): each runtime event becomes its record and its frame,
in order, and a turn that fails still ends with turn.done."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat import services
from chat.broadcast import conversation_group
from chat.models import (
    Conversation,
    Message,
    MessageStatus,
    Role,
    Site,
    Turn,
    TurnEvent,
    TurnStatus,
)
from chat.turns import runner as runner_module
from chat.turns.runner import TurnRunner
from orchestrator import runtime

pytestmark = pytest.mark.django_db(transaction=True)

BILLING = runtime.AgentRef("billing", "Billing")
ORCHESTRATOR = runtime.AgentRef("orchestrator", "Super Orchestrator")


@sync_to_async
def _open_turn() -> Turn:
    site = Site.objects.get(key="demo")
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    services.message_receive(conversation=conversation, client_id="c-1", text="Charged twice")
    return services.turn_start_next(conversation_id=conversation.pk)


async def _listen(conversation_uuid):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(conversation_group(conversation_uuid), channel)

    async def frames(n: int, *, keep_seq: bool = False) -> list[dict]:
        out = [
            json.loads((await asyncio.wait_for(layer.receive(channel), 2))["text"])
            for _ in range(n)
        ]
        if not keep_seq:  # the numbering has its own test
            for frame in out:
                frame.pop("seq", None)
        return out

    return frames


@pytest.fixture
async def turn(team):
    return await _open_turn()


@pytest.fixture
async def runner(turn):
    conversation_uuid = await sync_to_async(lambda: turn.conversation.uuid)()
    runner = TurnRunner(turn, conversation_uuid)
    runner.frames = await _listen(conversation_uuid)
    yield runner
    await runner.deltas.close()


async def test_tool_events_are_recorded_and_sent_after_the_text_before_them(runner, turn):
    message_id = uuid.uuid4()
    await runner.emit(runtime.MessageDelta(message_id, BILLING, "Let me "))
    await runner.emit(runtime.MessageDelta(message_id, BILLING, "look."))  # held back
    await runner.emit(runtime.ToolStarted("billing", "search_knowledge", "k1", "Searching"))
    await runner.emit(runtime.ToolFinished("k1", True))
    frames = await runner.frames(4)
    key = str(turn.uuid)
    assert frames == [
        {"type": "message.delta", "turn": key, "message": str(message_id), "agent": "billing",
         "text": "Let me "},
        {"type": "message.delta", "turn": key, "message": str(message_id), "agent": "billing",
         "text": "look."},
        {"type": "tool.started", "turn": key, "agent": "billing", "tool": "search_knowledge",
         "call": "k1", "label": "Searching"},
        {"type": "tool.finished", "turn": key, "call": "k1", "ok": True},
    ]  # fmt: skip
    event = await TurnEvent.objects.aget(turn=turn)
    assert (event.kind, event.data) == (
        TurnEvent.Kind.TOOL,
        {"agent": "billing", "tool": "search_knowledge", "call": "k1"},
    )


async def test_an_agent_change_moves_the_conversation_and_is_recorded(runner, turn):
    await runner.emit(runtime.AgentChanged(ORCHESTRATOR, BILLING, "handoff"))
    (frame,) = await runner.frames(1)
    assert frame == {
        "type": "agent.changed",
        "turn": str(turn.uuid),
        "from": {"slug": "orchestrator", "name": "Super Orchestrator"},
        "to": {"slug": "billing", "name": "Billing"},
        "reason": "handoff",
    }
    event = await TurnEvent.objects.aget(turn=turn)
    assert event.data == {key: frame[key] for key in ("from", "to", "reason")}
    conversation = await Conversation.objects.aget(pk=turn.conversation_id)
    assert conversation.active_agent == "billing"


async def test_a_finished_message_is_stored_then_sent(runner, turn):
    message_id = uuid.uuid4()
    await runner.emit(runtime.MessageDone(message_id, BILLING, "Only one charge is real."))
    (frame,) = await runner.frames(1)
    stored = await Message.objects.aget(uuid=message_id)
    assert (stored.role, stored.turn_id, stored.agent_slug) == (Role.ASSISTANT, turn.pk, "billing")
    assert frame["type"] == "message.done" and frame["turn"] == str(turn.uuid)
    assert frame["message"]["id"] == str(message_id)
    assert frame["message"]["text"] == "Only one charge is real."


async def test_workflow_progress_is_sent(runner, turn):
    run_id = uuid.uuid4()
    await runner.emit(
        runtime.WorkflowProgress(
            run_id, "refund_request", "Refund request", "started", "invoice", "billing", 0, 3
        )
    )
    (frame,) = await runner.frames(1)
    assert frame == {
        "type": "workflow.progress",
        "turn": str(turn.uuid),
        "workflow": {"id": str(run_id), "slug": "refund_request", "name": "Refund request"},
        "status": "started",
        "step": "invoice",
        "agent": "billing",
        "done": 0,
        "total": 3,
    }


async def test_an_event_the_chat_does_not_know_is_ignored(runner):
    await runner.emit(object())  # a newer runtime's event: nothing sent, nothing raised
    assert TurnRunner._HANDLERS.keys() >= {runtime.MessageDelta, runtime.RouteDecided}


async def test_a_crashing_runtime_still_ends_the_turn_in_plain_words(runner, turn, monkeypatch):
    async def crash(request, emit, cancel):
        assert request.history == [{"role": "user", "content": "Charged twice"}]
        raise RuntimeError("database on fire")

    monkeypatch.setattr(runtime, "run_turn", crash)
    await runner.run()
    started, error, done = await runner.frames(3)
    key = str(turn.uuid)
    assert started == {"type": "turn.started", "turn": key, "reply_to": "c-1"}
    assert error == {
        "type": "error",
        "code": "internal",
        "message": runtime.INTERNAL_ERROR,
        "retryable": True,
        "ref": key,
    }
    assert done == {
        "type": "turn.done",
        "turn": key,
        "status": "error",
        "usage": {"requests": 0, "input_tokens": 0, "output_tokens": 0},
    }
    await turn.arefresh_from_db()
    assert (turn.status, turn.error_code) == (TurnStatus.ERROR, "internal")
    assert "database on fire" in turn.error  # for staff, never for the user
    reply_to = await Message.objects.aget(pk=turn.reply_to_id)
    assert reply_to.status == MessageStatus.FAILED


async def test_an_error_code_the_protocol_lacks_is_reported_as_internal(runner, monkeypatch):
    async def guarded(request, emit, cancel):
        return runtime.TurnOutcome("error", None, {"requests": 1}, "guardrail", "Not here.", "x")

    monkeypatch.setattr(runtime, "run_turn", guarded)
    await runner.run()
    _, error, done = await runner.frames(3)
    assert (error["code"], error["message"]) == ("internal", "Not here.")
    assert done["usage"]["requests"] == 1


async def test_the_turn_frames_are_numbered_in_the_order_they_are_sent(runner, turn):
    await runner.emit(runtime.MessageDelta(uuid.uuid4(), BILLING, "Hel"))
    await runner.emit(runtime.ToolStarted("billing", "search_knowledge", "k", "Searching"))
    await runner.emit(runtime.ToolFinished("k", True))
    frames = await runner.frames(3, keep_seq=True)
    assert [(f["type"], f["seq"]) for f in frames] == [
        ("message.delta", 1),
        ("tool.started", 2),
        ("tool.finished", 3),
    ]


async def test_a_silent_turn_tells_the_user_it_is_still_working(runner, settings, monkeypatch):
    settings.SUPERORCH_STILL_WORKING_AFTER = 0.2

    async def hanging(request, emit, cancel):
        await asyncio.sleep(0.5)
        await emit(runtime.MessageDelta(uuid.uuid4(), BILLING, "Here it is."))
        return runtime.TurnOutcome("ok", BILLING, {}, "", "", "")

    monkeypatch.setattr(runner_module.runtime, "run_turn", hanging)
    await runner.run()
    frames = await runner.frames(3, keep_seq=True)
    while frames[-1]["type"] != "turn.done":  # how many progress reports: the clock's say
        frames += await runner.frames(1, keep_seq=True)
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "turn.started" and kinds[-2:] == ["message.delta", "turn.done"]
    assert set(kinds[1:-2]) == {"turn.progress"}  # at least one, before any text
    progress = frames[1]
    assert progress["turn"] == runner.key and "Still working" in progress["message"]
    assert 0.15 <= progress["elapsed"] < 0.5
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
