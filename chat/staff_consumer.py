"""The staff inbox's WebSocket (/ws/staff/): the list's changes (the `staff` group) and
the frames of the conversation a member of staff has open. Transport only.

Only a logged-in, active member of staff (the session cookie, channels' AuthMiddleware)
from one of this app's own origins (SUPERORCH_APP_ORIGINS) may open it: a customer site's
origin, allowed for the chat socket, is refused here, so no other page can open a socket
with a staff member's cookie. Client frames: `{"type": "watch", "conversation": uuid}`
(follow that conversation; one at a time) and `{"type": "ping"}` (answered `pong`, sent
each minute by inbox.js); connecting and every frame refresh the staff member's presence
(people.staff_seen), which the user's expected wait and the inbox's list of who is online
count. Server frames: `inbox.changed` (a conversation's status, or a user's message in
one waiting for or with a person; with the number waiting), `presence.changed` (someone
came online: re-read who is online), and the watched conversation's own frames. A
member of staff whom a site does not name as its staff (Site.staff) gets no event of its
conversations, and no waiting count (it would count them); the set of such sites is read
when the socket connects.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import inbox, people, roles
from .broadcast import FRAME_EVENT, PRESENCE_EVENT, STAFF_EVENT, STAFF_GROUP, conversation_group
from .handshake import scope_origin
from .origins import origin_allowed
from .relay import RelayDispatch

logger = logging.getLogger(__name__)
db = database_sync_to_async
FRAME_CHARS = 500  # a staff client frame is tiny; anything longer is refused
INBOX_CHANGED = "inbox.changed"
PRESENCE_CHANGED = "presence.changed"
# The staff socket's own frame types (not the chat protocol's; docs/people.md).
FRAMES = frozenset({"watch", "watching", INBOX_CHANGED, PRESENCE_CHANGED, "ping", "pong", "error"})


def _hidden_site_ids(user: Any) -> frozenset[int]:
    hidden = roles.sites_hidden_from(user)
    return frozenset(hidden.values_list("pk", flat=True)) if hidden is not None else frozenset()


def _is_staff(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class StaffConsumer(RelayDispatch, AsyncWebsocketConsumer):
    # The group events only relay to the socket: no database (chat.relay).
    relay_events = frozenset({FRAME_EVENT, STAFF_EVENT, PRESENCE_EVENT})
    watching: str | None = None  # the conversation group this socket follows
    hidden_sites: frozenset[int] = frozenset()  # sites whose events this socket skips

    async def connect(self) -> None:
        user = self.scope.get("user")
        origin = scope_origin(self.scope)
        if not _is_staff(user) or not (
            origin and origin_allowed(origin, settings.SUPERORCH_APP_ORIGINS)
        ):
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        self.hidden_sites = await db(_hidden_site_ids)(user)
        await self.channel_layer.group_add(STAFF_GROUP, self.channel_name)
        await self.accept()
        await db(people.staff_seen)(user=user)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(STAFF_GROUP, self.channel_name)
        await self._unwatch()

    async def _unwatch(self) -> None:
        if self.watching:
            group, self.watching = self.watching, None
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _error(self, message: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "message": message}))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = json.loads(text_data or "") if len(text_data or "") <= FRAME_CHARS else None
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            await self._error("Send a JSON object: watch or ping.")
            return
        await db(people.staff_seen)(user=self.scope["user"])
        if frame.get("type") == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))
        elif frame.get("type") == "watch":
            await self._watch(frame.get("conversation"))
        else:
            await self._error("Unknown frame type: send watch or ping.")

    async def _watch(self, key: Any) -> None:
        try:
            key = uuid.UUID(str(key))
        except ValueError:
            await self._error("That is not a conversation id.")
            return
        if await db(inbox.inbox_conversation)(key=key, staff=self.scope["user"]) is None:
            await self._error("No such conversation.")
            return
        await self._unwatch()
        self.watching = conversation_group(key)
        await self.channel_layer.group_add(self.watching, self.channel_name)
        await self.send(text_data=json.dumps({"type": "watching", "conversation": str(key)}))

    # --- group events ------------------------------------------------------------------

    async def chat_frame(self, event: dict[str, Any]) -> None:
        """A frame of the conversation on screen (chat.broadcast), relayed as it is:
        agents' output included, so staff see a turn stream."""
        await self.send(text_data=event["text"])

    async def staff_changed(self, event: dict[str, Any]) -> None:
        """A conversation's status changed (`change` "status") or its user wrote to a
        person ("message"); `waiting`: how many wait now (the title's badge)."""
        if self.hidden_sites and event.get("site") in self.hidden_sites:
            return
        keys = ("conversation", "status", "change", "waiting")
        frame = {"type": INBOX_CHANGED, **{k: event.get(k) for k in keys}}
        if self.hidden_sites:
            frame["waiting"] = None  # a count over every site: the list's re-read says it
        await self.send(text_data=json.dumps(frame))

    async def staff_presence(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"type": PRESENCE_CHANGED}))
