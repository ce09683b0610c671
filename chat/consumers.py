"""The chat WebSocket (protocol v1), transport only: a frame enters here, is parsed by
chat.protocol, goes to one service (or the turn scheduler), and typed frames go back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy

from orchestrator import metrics
from orchestrator import services as orchestrator_services

from . import approvals, clients, i18n, people, protocol, selectors, services, turns
from .broadcast import AGENT_OUTPUT, FRAME_EVENT, STATUS, broadcast, conversation_group
from .enums import ConversationStatus, EscalationSource
from .models import Conversation, Site
from .protocol import CloseCode, ErrorCode
from .ratelimit import allow_client_message, allow_message, allow_new_conversation
from .relay import RelayDispatch

logger = logging.getLogger(__name__)
db = database_sync_to_async


TOO_MANY_SOCKETS = gettext_lazy(
    "Too many chat connections are open from your network. Please close some tabs and try again."
)
TOO_MANY_CONVERSATIONS = gettext_lazy(
    "Too many new conversations were started from your network. Please wait a minute and try again."
)


class ChatConsumer(RelayDispatch, AsyncWebsocketConsumer):
    relay_events = frozenset({FRAME_EVENT})  # chat_frame: no database (chat.relay)
    conversation: Conversation | None = None
    group: str | None = None
    refusals = 0
    client = clients.UNKNOWN  # the client's address (chat.clients): per-client limits
    counted = False  # this socket counts against its client's open sockets
    closed = False  # this side closed the socket: nothing more is sent or handled
    start_timer: asyncio.Task | None = None
    # A person owns the conversation: what an agent still sends is dropped (the sockets
    # follow the status frames they relay, so nothing an agent produces after the
    # takeover reaches the user, whenever its turn hears of the cancel).
    agents_silenced = False
    # The session's language (chat/i18n.py): set by session.start, active for every frame.
    locale: str = settings.LANGUAGE_CODE

    async def connect(self) -> None:
        self.client = clients.client_address(self.scope)
        await self.accept()
        metrics.SOCKETS.inc()
        limits = clients.client_limits()
        if not clients.sockets.take(self.client, limits.sockets):
            await self.refuse(ErrorCode.RATE_LIMITED, TOO_MANY_SOCKETS, close=CloseCode.ABUSE)
            return
        self.counted = True
        self.start_timer = asyncio.create_task(self._expire_without_session())
        # A fresh process trains its router now, while the user is still typing.
        try:
            await db(orchestrator_services.process_start)()
        except Exception:
            logger.exception("Could not start training the router")

    async def disconnect(self, code: int) -> None:
        metrics.SOCKETS.dec()
        if self.counted:
            self.counted = False
            clients.sockets.give_back(self.client)
        self._stop_start_timer()
        await self._leave_group()

    async def _expire_without_session(self) -> None:
        """A socket that has not started a session in time is closed (4400)."""
        await asyncio.sleep(protocol.limits().session_start_seconds)
        if self.conversation is None and not self.closed:
            self.start_timer = None  # this task: closing must not cancel it
            await self.refuse(
                ErrorCode.BAD_FRAME,
                "The session was not started in time (session.start).",
                close=CloseCode.BAD_START,
            )

    def _stop_start_timer(self) -> None:
        if self.start_timer is not None:
            self.start_timer.cancel()
            self.start_timer = None

    async def _leave_group(self) -> None:
        if self.group:
            group, self.group = self.group, None
            await self.channel_layer.group_discard(group, self.channel_name)

    async def close_with(self, code: CloseCode) -> None:
        """Close the socket; frames to it from now on (broadcasts too) are dropped."""
        self.closed = True
        self._stop_start_timer()
        await self._leave_group()
        await self.close(code=code.value)  # a plain int: autobahn refuses enums

    async def send_frame(self, frame: protocol.ServerFrame) -> None:
        if not self.closed:
            await self.send(text_data=frame.encode())

    async def refuse(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        ref: str | None = None,
        close: CloseCode | None = None,
    ) -> None:
        """Send an `error` frame (the code's own words unless `message`), then close
        with `close` if given."""
        words = {} if message is None else {"message": str(message)}
        await self.send_frame(protocol.Error(code=code, ref=ref, **words))
        if close is not None:
            await self.close_with(close)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return
        try:
            frame = protocol.parse(text_data, bytes_data)
        except protocol.FrameError as exc:
            await self.send_frame(protocol.Error.from_frame_error(exc))
            if self.conversation is None:
                await self.close_with(CloseCode.BAD_START)
            return
        if self.conversation is None and not isinstance(frame, protocol.SessionStart):
            await self.refuse(
                ErrorCode.BAD_FRAME,
                "Start the session first (session.start).",
                close=CloseCode.BAD_START,
            )
            return
        try:
            with translation.override(self.locale):
                await self._HANDLERS[type(frame)](self, frame)
        except Exception:
            logger.exception("chat frame %s failed", frame.type)
            ref = frame.id if isinstance(frame, protocol.MessageSend) else None
            await self.refuse(ErrorCode.INTERNAL, ref=ref)

    # --- client frames ---------------------------------------------------------------

    async def on_session_start(self, frame: protocol.SessionStart) -> None:
        if self.conversation is not None:
            await self.refuse(ErrorCode.BAD_FRAME, "This connection already has a session.")
            return
        # The client started its session in time: however long a busy server then takes
        # to open it, the idle-socket timer is done (1,000 sockets at once waited longer
        # than SUPERORCH_SESSION_START_TIMEOUT for the database and were closed 4400).
        self._stop_start_timer()
        accept_language = _header(self.scope, b"accept-language")
        translation.activate(
            i18n.locale_negotiate(requested=frame.locale, accept_language=accept_language)
        )
        site = await db(selectors.site_get)(key=frame.site)
        if site is None or not site.enabled:
            await self.refuse(ErrorCode.FORBIDDEN, close=CloseCode.FORBIDDEN)
            return
        self.locale = i18n.locale_negotiate(
            requested=frame.locale, site_language=site.language, accept_language=accept_language
        )
        translation.activate(self.locale)  # within receive()'s override: this frame's words
        user = frame.user.model_dump()
        try:
            verified = services.identity_verify(site=site, user=user)
        except services.IdentityError as exc:
            await self.refuse(ErrorCode.IDENTITY_INVALID, str(exc), close=CloseCode.IDENTITY)
            return
        conversation, token, resumed = await db(services.conversation_open)(
            site=site,
            token=frame.token,
            user=user,
            context=frame.context,
            verified=verified,
            locale=self.locale,
        )
        if not resumed and not await allow_new_conversation(
            self.client, rate=clients.client_limits().new_conversations
        ):
            await db(services.conversation_discard_new)(conversation=conversation)
            await self.refuse(ErrorCode.RATE_LIMITED, TOO_MANY_CONVERSATIONS, close=CloseCode.ABUSE)
            return
        self.conversation = conversation
        self.group = conversation_group(conversation.uuid)
        await self.channel_layer.group_add(self.group, self.channel_name)
        ready = await db(_session_ready)(conversation, site, token, frame.since)
        self.agents_silenced = ready.status.status == ConversationStatus.HUMAN
        await self.send_frame(ready)
        if resumed:  # a conversation made just now has nothing waiting: no reads for it
            await self._resume(conversation)

    async def _resume(self, conversation) -> None:
        """A conversation opened again: the cards of actions still waiting for a yes or
        no, and anything acknowledged but not yet answered (a server died mid-turn, or no
        model could answer it) answered now."""
        for waiting in await db(approvals.pending_frames)(conversation=conversation):
            await self.send_frame(waiting)
        await db(services.conversation_wake_queued)(conversation_id=conversation.pk)
        if await db(selectors.conversation_has_pending)(conversation_id=conversation.pk):
            turns.schedule(conversation, client=self.client)

    async def on_message_send(self, frame: protocol.MessageSend) -> None:
        assert self.conversation is not None
        limits = protocol.limits()
        allowed = await allow_message(str(self.conversation.uuid), rate=limits.rate)
        if allowed:  # and the client's messages over all its conversations
            rate = clients.client_limits().messages
            allowed = await allow_client_message(self.client, rate=rate)
        if not allowed:
            self.refusals += 1
            abuse = self.refusals >= limits.refusals_before_close
            await self.refuse(
                ErrorCode.RATE_LIMITED, ref=frame.id, close=CloseCode.ABUSE if abuse else None
            )
            return
        message, _ = await db(services.message_receive)(
            conversation=self.conversation, client_id=frame.id, text=frame.text
        )
        # Every socket of the conversation learns of the message (other tabs stay in sync).
        payload = protocol.MessagePayload.from_message(message)
        await broadcast(self.conversation.uuid, protocol.MessageAck(id=frame.id, message=payload))
        turns.schedule(self.conversation, client=self.client)

    async def on_turn_cancel(self, frame: protocol.TurnCancel) -> None:
        assert self.conversation is not None
        await turns.request_cancel(self.conversation.uuid)

    async def on_feedback(self, frame: protocol.Feedback) -> None:
        assert self.conversation is not None
        message = await db(services.feedback_record)(
            conversation=self.conversation,
            message_uuid=frame.message,
            value=frame.value,
            comment=frame.comment,
        )
        if message is None:
            await self.refuse(ErrorCode.NOT_FOUND, ref=frame.message)
            return
        await self.send_frame(protocol.FeedbackAck(message=frame.message))

    async def on_context_update(self, frame: protocol.ContextUpdate) -> None:
        assert self.conversation is not None
        await db(services.conversation_set_context)(
            conversation=self.conversation, context=frame.context
        )

    async def on_ping(self, frame: protocol.Ping) -> None:
        await self.send_frame(protocol.Pong())

    async def on_human_request(self, frame: protocol.HumanRequest) -> None:
        """Idempotent: already waiting or with a person, this socket is told the status."""
        assert self.conversation is not None
        moved = await db(people.request_human)(
            conversation=self.conversation, reason=frame.reason, source=EscalationSource.USER
        )
        if not moved.changed:  # the others know already; this one is answered
            await self.send_frame(await db(people.status_frame)(conversation=moved.conversation))

    async def on_csat(self, frame: protocol.Csat) -> None:
        """Answered by a conversation.status (with `csat`) to every socket."""
        assert self.conversation is not None
        try:
            await db(people.csat_record)(
                conversation=self.conversation, score=frame.score, comment=frame.comment
            )
        except people.PeopleError as exc:
            await self.refuse(ErrorCode.BAD_FRAME, str(exc))

    async def on_contact_email(self, frame: protocol.ContactEmail) -> None:
        assert self.conversation is not None
        try:
            await db(people.contact_email_set)(conversation=self.conversation, email=frame.email)
        except people.PeopleError as exc:
            await self.refuse(ErrorCode.BAD_FRAME, str(exc))

    async def on_approval_respond(self, frame: protocol.ApprovalRespond) -> None:
        """Idempotent: an approval already decided is answered with how it ended, to this
        socket only (the others heard it when it was decided)."""
        assert self.conversation is not None
        decision = await db(approvals.approval_respond)(
            conversation=self.conversation, approval_id=frame.approval, approve=frame.approve
        )
        if decision.refusal:
            code = ErrorCode.NOT_FOUND if decision.approval is None else ErrorCode.FORBIDDEN
            await self.refuse(code, decision.refusal, ref=frame.approval)
            return
        if decision.changed:
            turns.schedule(self.conversation, client=self.client)
            return
        already = approvals.resolved_frame(decision.approval) if decision.approval else None
        if already is not None:
            await self.send_frame(already)

    _HANDLERS: ClassVar[dict[type, Callable[[Any, Any], Awaitable[None]]]] = {
        protocol.SessionStart: on_session_start,
        protocol.MessageSend: on_message_send,
        protocol.TurnCancel: on_turn_cancel,
        protocol.Feedback: on_feedback,
        protocol.ContextUpdate: on_context_update,
        protocol.Ping: on_ping,
        protocol.HumanRequest: on_human_request,
        protocol.Csat: on_csat,
        protocol.ContactEmail: on_contact_email,
        protocol.ApprovalRespond: on_approval_respond,
    }

    # --- group events ------------------------------------------------------------------

    async def chat_frame(self, event: dict[str, Any]) -> None:
        """A frame broadcast to the conversation (chat.broadcast), already encoded. A
        status frame sets whether agents' output still passes; while a person owns the
        conversation it is dropped."""
        if self.closed:
            return
        if STATUS in event:
            self.agents_silenced = event[STATUS] == ConversationStatus.HUMAN
        elif self.agents_silenced and event.get(AGENT_OUTPUT):
            return
        await self.send(text_data=event["text"])


def _session_ready(
    conversation: Conversation, site: Site, token: str, since: str | None
) -> protocol.SessionReady:
    messages = selectors.conversation_messages(conversation=conversation, since=since)
    agent = selectors.conversation_next_agent(conversation=conversation)
    locale = conversation.locale or i18n.locale_negotiate(site_language=site.language)
    words = i18n.site_words(
        greeting=site.greeting,
        suggestions=site.suggestions,
        translations=site.translations,
        locale=locale,
    )
    return protocol.SessionReady(
        conversation=str(conversation.uuid),
        token=token,
        agent=protocol.AgentPayload(slug=agent.slug, name=agent.name) if agent else None,
        greeting=words.greeting,
        suggestions=words.suggestions,
        messages=[protocol.MessagePayload.from_message(m) for m in messages],
        status=people.status_payload(conversation=conversation),
        turn=_running_turn(conversation),
        locale=locale,
    )


def _header(scope: dict[str, Any], name: bytes) -> str:
    """A handshake header's value ('' without it)."""
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _running_turn(conversation: Conversation) -> protocol.RunningTurn | None:
    """**Addition** to session.ready: the turn a live process is running now, if any."""
    turn = selectors.conversation_running_turn(conversation=conversation)
    if turn is None:
        return None
    reply_to = turn.reply_to.client_id or str(turn.reply_to.uuid)
    return protocol.RunningTurn(id=str(turn.uuid), reply_to=reply_to)
