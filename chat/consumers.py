"""The chat WebSocket (protocol v1): thin, it parses frames, calls services, relays events."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from orchestrator import metrics
from orchestrator import selectors as orchestrator_selectors
from orchestrator import services as orchestrator_services

from . import selectors, services, turns
from .events import conversation_group, encode, message_dict
from .frames import FrameError, parse
from .models import Conversation
from .ratelimit import allow_message

logger = logging.getLogger(__name__)
db = database_sync_to_async

CLOSE_BAD_START = 4400
CLOSE_IDENTITY = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_ABUSE = 4429


class ChatConsumer(AsyncWebsocketConsumer):
    conversation: Conversation | None = None
    group: str | None = None
    refusals = 0

    async def connect(self) -> None:
        await self.accept()
        metrics.SOCKETS.inc()
        # A fresh process trains its router now, while the user is still typing.
        try:
            await db(orchestrator_services.process_start)()
        except Exception:
            logger.exception("Could not start training the router")

    async def disconnect(self, code: int) -> None:
        metrics.SOCKETS.dec()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=encode(frame))

    async def send_error(
        self, code: str, message: str, *, ref: str | None = None, retryable: bool = False
    ) -> None:
        frame: dict[str, Any] = {
            "type": "error",
            "code": code,
            "message": message,
            "retryable": retryable,
        }
        if ref:
            frame["ref"] = ref
        await self.send_frame(frame)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = parse(text_data, bytes_data)
        except FrameError as exc:
            await self.send_error(exc.code, exc.message, ref=exc.ref)
            if self.conversation is None:
                await self.close(code=CLOSE_BAD_START)
            return
        kind = frame["type"]
        if self.conversation is None and kind != "session.start":
            await self.send_error("bad_frame", "Start the session first (session.start).")
            await self.close(code=CLOSE_BAD_START)
            return
        try:
            await getattr(self, "on_" + kind.replace(".", "_"))(frame)
        except Exception:
            logger.exception("chat frame %s failed", kind)
            await self.send_error(
                "internal",
                "Something went wrong on our side. Please try again.",
                retryable=True,
                ref=frame.get("id") if kind == "message.send" else None,
            )

    # --- client frames ---------------------------------------------------------------

    async def on_session_start(self, frame: dict[str, Any]) -> None:
        if self.conversation is not None:
            await self.send_error("bad_frame", "This connection already has a session.")
            return
        site = await db(selectors.site_get)(key=frame["site"])
        if site is None or not site.enabled:
            await self.send_error("forbidden", "This chat is not available here.")
            await self.close(code=CLOSE_FORBIDDEN)
            return
        try:
            verified = services.identity_verify(site=site, user=frame["user"])
        except services.IdentityError as exc:
            await self.send_error("identity_invalid", str(exc))
            await self.close(code=CLOSE_IDENTITY)
            return
        conversation, token, _ = await db(services.conversation_open)(
            site=site,
            token=frame["token"],
            user=frame["user"],
            context=frame["context"],
            verified=verified,
        )
        self.conversation = conversation
        self.group = conversation_group(conversation.uuid)
        await self.channel_layer.group_add(self.group, self.channel_name)
        messages = await db(selectors.conversation_messages)(
            conversation=conversation, since=frame["since"]
        )
        agent = await db(_agent_ref)(conversation.active_agent)
        await self.send_frame(
            {
                "type": "session.ready",
                "conversation": str(conversation.uuid),
                "token": token,
                "agent": agent,
                "greeting": site.greeting,
                "suggestions": list(site.suggestions or []),
                "messages": [message_dict(m) for m in messages],
            }
        )
        # Anything acknowledged but not yet answered (a server died mid-turn, or no model
        # could answer it) is answered now.
        await db(services.conversation_wake_queued)(conversation_id=conversation.pk)
        if await db(selectors.conversation_has_pending)(conversation_id=conversation.pk):
            turns.schedule(conversation)

    async def on_message_send(self, frame: dict[str, Any]) -> None:
        assert self.conversation is not None
        client_id = frame["id"]
        if not await allow_message(str(self.conversation.uuid)):
            self.refusals += 1
            await self.send_error(
                "rate_limited",
                "You are sending messages too quickly. Please wait a moment and try again.",
                ref=client_id,
                retryable=True,
            )
            if self.refusals >= settings.SUPERORCH_RATE_LIMIT_CLOSE_AFTER:
                await self.close(code=CLOSE_ABUSE)
            return
        message, _ = await db(services.message_receive)(
            conversation=self.conversation, client_id=client_id, text=frame["text"]
        )
        # Every socket of the conversation learns of the message (other tabs stay in sync).
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "chat.frame",
                "text": encode(
                    {"type": "message.ack", "id": client_id, "message": message_dict(message)}
                ),
            },
        )
        turns.schedule(self.conversation)

    async def on_turn_cancel(self, frame: dict[str, Any]) -> None:
        assert self.conversation is not None
        await turns.request_cancel(self.conversation.uuid)

    async def on_feedback(self, frame: dict[str, Any]) -> None:
        assert self.conversation is not None
        message = await db(services.feedback_record)(
            conversation=self.conversation,
            message_uuid=frame["message"],
            value=frame["value"],
            comment=frame["comment"],
        )
        if message is None:
            await self.send_error(
                "not_found", "That reply could not be found.", ref=frame["message"]
            )
            return
        await self.send_frame({"type": "feedback.ack", "message": frame["message"]})

    async def on_context_update(self, frame: dict[str, Any]) -> None:
        assert self.conversation is not None
        await db(services.conversation_set_context)(
            conversation=self.conversation, context=frame["context"]
        )

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_frame({"type": "pong"})

    # --- group events ------------------------------------------------------------------

    async def chat_frame(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


def _agent_ref(active: str) -> dict[str, str] | None:
    spec = orchestrator_selectors.agent_for_turn_start(active=active or None)
    return {"slug": spec.slug, "name": spec.name} if spec else None
