"""The in-memory channel layer of the embedded defaults (no REDIS_URL), made cheaper per
message; the Redis layer is the production one and is used as channels-redis ships it.

Channels' InMemoryChannelLayer walks every channel and every group for expired messages
and memberships on each `send`'s group fan-out and on each `receive`: with 50 replies
streaming that was about 6 % of the event loop (`python -m bench people`, BENCH_CPROFILE),
the same walk a thousand times a second. Here it runs at most once per `CLEAN_EVERY`
seconds (messages expire after 60 s and memberships after a day, so a second's delay
changes nothing), and a group's message is put on each member's queue in turn instead of
one task per member (`send` never waits: a full queue raises ChannelFull at once, which
a group send ignores, as channels does). `send` copies a flat message (text, numbers,
flags: every frame event) with `dict()`, anything else with deepcopy as channels does,
and makes a channel's queue only when it has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from copy import deepcopy
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    CLEAN_EVERY = 1.0  # seconds between walks for expired messages and memberships

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned < self.CLEAN_EVERY:
            return
        self._cleaned = now
        super()._clean_expired()

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, _copy(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)


_FLAT = (str, int, float, bool, type(None))


def _copy(message: dict) -> dict:
    """What the receiver gets: its own copy, as channels' deepcopy gives it."""
    if all(isinstance(v, _FLAT) for v in message.values()):
        return dict(message)
    return deepcopy(message)
