"""The in-memory channel layer of the embedded defaults (chat/layers.py): channels'
behaviour, each message cheaper."""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import ChannelFull

from chat.layers import InMemoryChannelLayer


async def test_a_group_message_reaches_every_member_in_order_each_its_own_copy():
    layer = InMemoryChannelLayer()
    a, b = await layer.new_channel(), await layer.new_channel()
    for channel in (a, b):
        await layer.group_add("chat.x", channel)
    nested = {"type": "chat.frame", "data": {"n": [1]}}
    await layer.group_send("chat.x", {"type": "chat.frame", "text": "1", "agent": True})
    await layer.group_send("chat.x", nested)
    for channel in (a, b):
        assert await layer.receive(channel) == {"type": "chat.frame", "text": "1", "agent": True}
        got = await layer.receive(channel)
        assert got == nested and got["data"] is not nested["data"]  # a deep copy


async def test_a_full_member_is_skipped_by_a_group_send_and_refuses_a_direct_send():
    layer = InMemoryChannelLayer(capacity=1)
    full, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", full)
    await layer.group_add("g", other)
    await layer.send(full, {"type": "first"})
    await layer.group_send("g", {"type": "second"})  # full is skipped, other still gets it
    assert await layer.receive(other) == {"type": "second"}
    with pytest.raises(ChannelFull):
        await layer.send(full, {"type": "third"})
    assert await layer.receive(full) == {"type": "first"}


async def test_expired_messages_and_memberships_are_still_cleaned():
    layer = InMemoryChannelLayer(expiry=0, group_expiry=0)
    layer.CLEAN_EVERY = 0.05
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    layer.groups["g"][channel] -= 10  # joined long ago
    await layer.send(channel, {"type": "stale"})
    await asyncio.sleep(0.06)
    await layer.group_send("g", {"type": "after"})  # the walk runs: stale dropped, left
    assert channel not in layer.channels and not layer.groups.get("g")


async def test_the_walk_runs_at_most_once_per_interval(monkeypatch):
    layer = InMemoryChannelLayer()
    walks = []
    monkeypatch.setattr(
        "channels.layers.InMemoryChannelLayer._clean_expired", lambda self: walks.append(1)
    )
    for _ in range(50):
        await layer.group_send("g", {"type": "x"})
    assert len(walks) == 1
