"""How frames reach sockets: group names, broadcasting (now, or once the transaction
commits), the coalescing of `message.delta` frames, and the turn-control channel that
carries `turn.cancel` to whichever process runs the turn."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from . import protocol

FRAME_EVENT = "chat.frame"  # the group event a consumer relays (ChatConsumer.chat_frame)
CANCEL_EVENT = "turn.cancel"  # the control event a turn's listener waits for
AGENT_OUTPUT = "agent"  # a frame event's key: an agent produced it (dropped while `human`)
STATUS = "status"  # a frame event's key: the conversation's status it announces


def conversation_group(conversation_uuid: uuid.UUID | str) -> str:
    """Every socket of a conversation joins this group."""
    return f"chat.{conversation_uuid}"


STAFF_GROUP = "staff"  # every staff inbox socket joins it: the list changed
STAFF_EVENT = "staff.changed"  # the group event StaffConsumer.staff_changed relays
PRESENCE_EVENT = "staff.presence"  # StaffConsumer.staff_presence: who is online changed
STATUS_CHANGE, MESSAGE_CHANGE = "status", "message"  # what changed (staff_changed_on_commit)


def turn_control_group(conversation_uuid: uuid.UUID | str) -> str:
    """The task running a conversation's turn listens here (for turn.cancel)."""
    return f"turnctl.{conversation_uuid}"


async def _send_text(conversation_uuid: uuid.UUID | str, text: str, **meta: Any) -> None:
    await get_channel_layer().group_send(
        conversation_group(conversation_uuid), {"type": FRAME_EVENT, "text": text, **meta}
    )


async def broadcast(
    conversation_uuid: uuid.UUID | str, frame: protocol.ServerFrame, *, agent_output: bool = False
) -> None:
    """Send one frame to every socket of the conversation (encoded once). `agent_output`
    marks what an agent produces: a socket drops it once a person owns the conversation
    (ChatConsumer.chat_frame), whatever a turn still running sends."""
    meta = {AGENT_OUTPUT: True} if agent_output else {}
    await _send_text(conversation_uuid, frame.encode(), **meta)


def broadcast_on_commit(
    conversation_uuid: uuid.UUID | str, frame: protocol.ServerFrame, *, status: str | None = None
) -> None:
    """Broadcast once the current transaction commits (at once outside one), so no
    socket sees a row that was rolled back (Zulip's send_event_on_commit). Sync code only.
    `status`: the conversation's status the frame announces (the sockets follow it)."""
    text = frame.encode()
    meta = {STATUS: str(status)} if status is not None else {}
    transaction.on_commit(lambda: async_to_sync(_send_text)(conversation_uuid, text, **meta))


def staff_changed_on_commit(
    conversation_uuid: uuid.UUID | str,
    status: str,
    *,
    change: str = STATUS_CHANGE,
    waiting: Callable[[], int],
    site: int | None = None,
) -> None:
    """Tell every staff inbox, once committed, that a conversation changed: its status
    (`change` "status"; a new waiting conversation among them) or a user's message in it
    ("message"). `waiting` counts the conversations waiting, read once committed (one
    read for every inbox: the title's badge). `site`: the conversation's site id, so that
    the inboxes of staff who may not see it skip the event. The inbox re-reads its list.
    Sync code only."""
    key = str(conversation_uuid)

    def send() -> None:
        event = {
            "type": STAFF_EVENT,
            "conversation": key,
            "status": str(status),
            "change": change,
            "waiting": waiting(),
            "site": site,
        }
        async_to_sync(get_channel_layer().group_send)(STAFF_GROUP, event)

    transaction.on_commit(send)


def staff_presence_on_commit() -> None:
    """Tell every staff inbox, once committed, that who is online changed. Sync code only."""
    event = {"type": PRESENCE_EVENT}
    transaction.on_commit(lambda: async_to_sync(get_channel_layer().group_send)(STAFF_GROUP, event))


async def turn_cancel_request(conversation_uuid: uuid.UUID | str) -> None:
    """Ask whichever process runs the conversation's turn to stop it."""
    await get_channel_layer().group_send(
        turn_control_group(conversation_uuid), {"type": CANCEL_EVENT}
    )


class TurnCancelListener:
    """Sets `cancel` when a turn.cancel arrives for the conversation, until `stop()`.

    It is stopped with a message on its own channel, never by cancelling its receive:
    on the Redis layer every process-local channel shares one receive loop, and a
    receive cancelled while it holds that loop drops a message popped for another
    channel of the process (django/channels#1683): at the end of every turn that was
    the turn's last frame, on its way to a socket of the same process.
    """

    STOP_EVENT = "turn.listener.stop"

    def __init__(self, conversation_uuid: uuid.UUID | str, cancel: asyncio.Event) -> None:
        self.group = turn_control_group(conversation_uuid)
        self.cancel = cancel
        self.layer = get_channel_layer()
        self._channel: str | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        # The default prefix matters on Redis: every process-local channel of a layer shares
        # one receive loop; a channel of another prefix would hold it and stall the sockets.
        self._channel = await self.layer.new_channel()
        try:
            await self.layer.group_add(self.group, self._channel)
            self._ready.set()
            while True:
                message = await self.layer.receive(self._channel)
                if message.get("type") == self.STOP_EVENT:
                    return
                if message.get("type") == CANCEL_EVENT:
                    self.cancel.set()
        finally:
            self._ready.set()
            await asyncio.shield(self.layer.group_discard(self.group, self._channel))

    async def listening(self) -> None:
        """Wait until the listener is in the group (a turn.cancel sent now is heard)."""
        await self._ready.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        """End the listener by message; cancel it only if that does not arrive in time."""
        if self._task is None or self._task.done():
            return
        await self._ready.wait()
        if not self._task.done():
            await self.layer.send(self._channel, {"type": self.STOP_EVENT})
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()


class DeltaStream:
    """A turn's `message.delta` frames, at most one per `interval` seconds.

    A model that streams word by word would otherwise send a group message per word,
    hundreds a turn, more than the Redis layer delivers under load (`python -m bench
    servers`). The first chunk goes out at once; chunks that come sooner than `interval`
    after the last frame are joined and sent when it is up. Under pressure (more than
    `PRESSURE_STREAMS` streams open in the process) the interval grows with their number,
    up to `MAX_INTERVAL`, so the frames a process sends stay about level. `flush()` sends
    what is held back (before any other frame of the turn, so frames keep their order);
    `close()` ends the stream. `send` (default: broadcast to the conversation) is how a
    frame goes out (the turn runner numbers them).
    """

    PRESSURE_STREAMS = 20
    MAX_INTERVAL = 0.5
    open_streams = 0  # in this process

    def __init__(
        self,
        conversation_uuid: uuid.UUID | str,
        turn: str,
        interval: float,
        send: Callable[[protocol.ServerFrame], Awaitable[None]] | None = None,
    ) -> None:
        self.conversation_uuid, self.turn, self.base_interval = conversation_uuid, turn, interval
        self._send = send or partial(broadcast, conversation_uuid)
        self._held: dict[str, tuple[str, list[str]]] = {}  # message id -> (agent, chunks)
        self._last = float("-inf")
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None
        self._open = True
        DeltaStream.open_streams += 1

    @property
    def interval(self) -> float:
        """The base interval, stretched while many streams are open in this process."""
        pressure = DeltaStream.open_streams / self.PRESSURE_STREAMS
        if pressure <= 1:
            return self.base_interval
        return min(self.base_interval * pressure, max(self.MAX_INTERVAL, self.base_interval))

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
                frame = protocol.MessageDelta(
                    turn=self.turn, message=message, agent=agent, text="".join(chunks)
                )
                await self._send(frame)

    async def close(self) -> None:
        if self._open:
            self._open = False
            DeltaStream.open_streams -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sending is not None:
            await self._sending
        await self.flush()
