"""Broadcasting (chat/broadcast.py): message.delta frames are coalesced, at most one per
interval, nothing lost, in order; a broadcast after a write waits for the commit; a turn's
cancel listener hears turn.cancel and ends without losing another socket's frame."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat import protocol
from chat.broadcast import (
    DeltaStream,
    TurnCancelListener,
    broadcast,
    broadcast_on_commit,
    conversation_group,
    turn_cancel_request,
)


async def _listen(conversation):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(conversation_group(conversation), channel)

    async def frames(n: int) -> list[dict]:
        out = []
        for _ in range(n):
            message = await asyncio.wait_for(layer.receive(channel), 2)
            out.append(json.loads(message["text"]))
        return out

    return frames


async def test_the_first_chunk_goes_at_once_and_the_rest_are_joined():
    conversation = uuid.uuid4()
    frames = await _listen(conversation)
    stream = DeltaStream(conversation, "t-1", interval=0.2)
    await stream.add(message="m-1", agent="billing", text="Hello")
    (first,) = await frames(1)
    assert first == {
        "type": "message.delta",
        "turn": "t-1",
        "message": "m-1",
        "agent": "billing",
        "text": "Hello",
    }
    for word in (" there,", " how", " can I help?"):
        await stream.add(message="m-1", agent="billing", text=word)
    # Held back, then sent when the interval is up, with no further event.
    (second,) = await frames(1)
    assert second["text"] == " there, how can I help?"
    await stream.close()


async def test_flush_sends_what_is_held_before_the_next_frame():
    conversation = uuid.uuid4()
    frames = await _listen(conversation)
    stream = DeltaStream(conversation, "t-1", interval=10)
    await stream.add(message="m-1", agent="billing", text="One")
    await stream.add(message="m-1", agent="billing", text=" two")
    await stream.add(message="m-2", agent="technical_support", text="Three")
    await stream.flush()
    await broadcast(conversation, protocol.TurnDone(turn="t-1", status="ok"))
    got = await frames(4)
    assert [(f["type"], f.get("message"), f.get("text")) for f in got] == [
        ("message.delta", "m-1", "One"),
        ("message.delta", "m-1", " two"),
        ("message.delta", "m-2", "Three"),
        ("turn.done", None, None),
    ]
    await stream.close()


async def test_close_sends_the_last_chunk_and_cancels_the_timer():
    conversation = uuid.uuid4()
    frames = await _listen(conversation)
    stream = DeltaStream(conversation, "t-1", interval=10)
    await stream.add(message="m-1", agent="billing", text="A")
    await stream.add(message="m-1", agent="billing", text="B")
    await stream.close()
    assert [f["text"] for f in await frames(2)] == ["A", "B"]
    await asyncio.sleep(0.05)
    assert stream._timer is None


@pytest.mark.django_db
def test_a_broadcast_after_a_write_waits_for_the_commit(django_capture_on_commit_callbacks):
    conversation = uuid.uuid4()
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(conversation_group(conversation), channel)
    frame = protocol.FeedbackAck(message="m-1")
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        broadcast_on_commit(conversation, frame)
    assert len(callbacks) == 1  # nothing sent inside the transaction
    callbacks[0]()
    message = async_to_sync(layer.receive)(channel)
    assert message == {"type": "chat.frame", "text": frame.encode()}


@pytest.mark.django_db
def test_a_rolled_back_write_broadcasts_nothing(django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(LookupError),
        transaction.atomic(),
    ):
        broadcast_on_commit(uuid.uuid4(), protocol.Pong())
        raise LookupError("the write fails")
    assert callbacks == []


async def test_the_cancel_listener_sets_the_event_on_turn_cancel():
    conversation = uuid.uuid4()
    cancel = asyncio.Event()
    listener = TurnCancelListener(conversation, cancel)
    listener.start()
    await listener.listening()
    await turn_cancel_request(conversation)
    await asyncio.wait_for(cancel.wait(), 2)
    await listener.stop()


async def test_ending_a_turn_listener_loses_no_frame_of_another_socket():
    """On the Redis layer a listener's receive, cancelled while it held the process's one
    receive loop, dropped a frame popped for a socket's channel (django/channels#1683):
    each turn's last frame, at times. Stopped by message, it drops none."""
    rounds = 30
    conversation = uuid.uuid4()
    frames = await _listen(conversation)
    received: list[dict] = []
    reader = asyncio.create_task(_read_into(frames, received, rounds))
    for n in range(rounds):
        listener = TurnCancelListener(uuid.uuid4(), asyncio.Event())
        listener.start()
        await listener.listening()
        await broadcast(conversation, protocol.TurnDone(turn=f"t-{n}", status="ok", seq=n + 1))
        await listener.stop()
    await asyncio.wait_for(reader, 10)
    assert [f["seq"] for f in received] == list(range(1, rounds + 1))


async def _read_into(frames, out: list[dict], n: int) -> None:
    for _ in range(n):
        out.extend(await frames(1))
