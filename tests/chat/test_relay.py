"""Relayed group events skip channels' per-event database hop (chat/relay.py); every
other message is dispatched as channels does, the hop included."""

from __future__ import annotations

from unittest import mock

import pytest

from chat.broadcast import FRAME_EVENT, PRESENCE_EVENT, STAFF_EVENT
from chat.consumers import ChatConsumer
from chat.staff_consumer import StaffConsumer


def _consumer(cls):
    consumer = cls()
    consumer.scope = {"type": "websocket"}
    consumer.sent = []

    async def base_send(message):
        consumer.sent.append(message)

    consumer.base_send = base_send
    return consumer


@pytest.fixture
def hop():
    with mock.patch("channels.consumer.aclose_old_connections", new=mock.AsyncMock()) as patched:
        yield patched


@pytest.mark.parametrize(
    "cls, event",
    [
        (ChatConsumer, {"type": FRAME_EVENT, "text": '{"type":"pong"}'}),
        (StaffConsumer, {"type": FRAME_EVENT, "text": '{"type":"pong"}'}),
        (StaffConsumer, {"type": STAFF_EVENT, "conversation": "c", "status": "waiting"}),
        (StaffConsumer, {"type": PRESENCE_EVENT}),
    ],
)
async def test_a_relayed_frame_reaches_the_socket_without_a_thread_hop(cls, event, hop):
    consumer = _consumer(cls)
    await consumer.dispatch(event)
    hop.assert_not_called()
    assert [m["type"] for m in consumer.sent] == ["websocket.send"]


async def test_other_messages_still_close_old_connections_first(hop):
    consumer = _consumer(ChatConsumer)
    consumer.closed = True  # receive() returns at once: only the dispatch is looked at
    await consumer.dispatch({"type": "websocket.receive", "text": "{}"})
    hop.assert_called_once()
