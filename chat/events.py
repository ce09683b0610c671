"""Group names and broadcasting: one place that knows how frames reach sockets."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from channels.layers import get_channel_layer

from .models import Message


def conversation_group(conversation_uuid: uuid.UUID | str) -> str:
    """Every socket of a conversation joins this group."""
    return f"chat.{conversation_uuid}"


def turn_control_group(conversation_uuid: uuid.UUID | str) -> str:
    """The task running a conversation's turn listens here (for turn.cancel)."""
    return f"turnctl.{conversation_uuid}"


def message_dict(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(message.uuid),
        "role": message.role,
        "agent": {"slug": message.agent_slug, "name": message.agent_name}
        if message.agent_slug
        else None,
        "text": message.text,
        "created": message.created_at.isoformat().replace("+00:00", "Z"),
    }
    if message.role == "user":
        data["client_id"] = message.client_id
    return data


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


async def broadcast(conversation_uuid: uuid.UUID | str, frame: dict[str, Any]) -> None:
    """Send one frame to every socket of the conversation (serialised once)."""
    await get_channel_layer().group_send(
        conversation_group(conversation_uuid), {"type": "chat.frame", "text": encode(frame)}
    )


class DeltaStream:
    """A turn's `message.delta` frames, at most one per `interval` seconds.

    A model that streams word by word would otherwise send a group message per word,
    hundreds a turn, more than the Redis layer delivers under load (`python -m bench
    servers`). The first chunk goes out at once; chunks that come sooner than `interval`
    after the last frame are joined and sent when it is up. `flush()` sends what is held
    back (before any other frame of the turn, so frames keep their order); `close()` ends
    the stream.
    """

    def __init__(self, conversation_uuid: uuid.UUID | str, turn: str, interval: float) -> None:
        self.conversation_uuid, self.turn, self.interval = conversation_uuid, turn, interval
        self._held: dict[str, tuple[str, list[str]]] = {}  # message id -> (agent, chunks)
        self._last = float("-inf")
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None

    async def add(self, *, message: str, agent: str, text: str) -> None:
        self._held.setdefault(message, (agent, []))[1].append(text)
        wait = self._last + self.interval - time.monotonic()
        if wait <= 0:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._due)

    def _due(self) -> None:
        self._timer = None
        self._sending = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        async with self._lock:
            self._last = time.monotonic()
            while self._held:
                message, (agent, chunks) = next(iter(self._held.items()))
                del self._held[message]
                await broadcast(
                    self.conversation_uuid,
                    {
                        "type": "message.delta",
                        "turn": self.turn,
                        "message": message,
                        "agent": agent,
                        "text": "".join(chunks),
                    },
                )

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sending is not None:
            await self._sending
        await self.flush()
