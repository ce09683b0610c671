"""Reads for the chat app."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from orchestrator import selectors as orchestrator_selectors
from orchestrator.domain.attachments import TurnAttachment

from .models import (
    Attachment,
    Conversation,
    ConversationStatus,
    Message,
    MessageStatus,
    Role,
    Site,
    Turn,
    TurnStatus,
)
from .origins import parse_origins


class NamedAgent(Protocol):
    """What the chat needs of the orchestrator's agent spec."""

    slug: str
    name: str


def site_get(*, key: str) -> Site | None:
    return Site.objects.filter(key=key).first()


def site_origins_enabled() -> list[str]:
    """Every enabled site's allowed origins (the socket's handshake accepts them)."""
    texts = (
        Site.objects.filter(enabled=True)
        .exclude(allowed_origins="")
        .values_list("allowed_origins", flat=True)
    )
    return [origin for text in texts for origin in parse_origins(text)]


def conversation_messages(*, conversation: Conversation, since: str | None) -> list[Message]:
    """The newest N messages, or those after `since` (a message id the client has)."""
    qs = Message.objects.filter(conversation=conversation).select_related("attachment")
    if since:
        try:
            anchor = qs.filter(uuid=uuid.UUID(since)).values_list("id", flat=True).first()
        except ValueError:
            anchor = None
        if anchor is not None:
            return list(
                qs.filter(id__gt=anchor).order_by("id")[: settings.SUPERORCH_HISTORY_LIMIT * 4]
            )
    newest = list(qs.order_by("-id")[: settings.SUPERORCH_HISTORY_LIMIT])
    newest.reverse()
    return newest


def conversation_get(*, conversation_id: int) -> Conversation:
    return Conversation.objects.select_related("site").get(pk=conversation_id)


def conversation_locale(*, conversation_id: int) -> str:
    """The language the conversation speaks (chat/i18n.py); the default one before any
    session chose it (conversations from before languages)."""
    locale = Conversation.objects.filter(pk=conversation_id).values_list("locale", flat=True)
    return locale.first() or settings.LANGUAGE_CODE


def conversation_uuid_get(*, conversation_id: int) -> uuid.UUID | None:
    return Conversation.objects.filter(pk=conversation_id).values_list("uuid", flat=True).first()


def conversation_next_agent(*, conversation: Conversation) -> NamedAgent | None:
    """The agent that answers the conversation's next message (the specialist who
    answered last, while it stays enabled)."""
    return orchestrator_selectors.agent_for_turn_start(active=conversation.active_agent or None)


def turn_partial_replies(*, turn: Turn) -> list[uuid.UUID]:
    """Ids of the replies earlier failed turns left for the same user message (cut short by
    a broken stream, say), oldest first: the turn's own replies take them over."""
    return list(
        Message.objects.filter(
            role=Role.ASSISTANT, turn__reply_to_id=turn.reply_to_id, turn__status=TurnStatus.ERROR
        )
        .exclude(turn_id=turn.pk)
        .order_by("id")
        .values_list("uuid", flat=True)
    )


def turn_history(*, turn: Turn) -> list[dict[str, str]]:
    """The model's input, from our own Message table: the conversation up to the message
    being answered (newest N), oldest first. Replies name their agent ("agent"): routing
    reads which specialist the conversation was with before an aside."""
    rows = list(
        Message.objects.filter(
            conversation_id=turn.conversation_id,
            id__lte=turn.reply_to_id,
            role__in=[Role.USER, Role.ASSISTANT, Role.STAFF],
        )
        .order_by("-id")
        .values_list("id", "role", "text", "agent_slug", "attachment__name")[
            : settings.SUPERORCH_MODEL_INPUT_MESSAGES
        ]
    )
    rows.reverse()
    return [
        # An earlier message's file is named in words (the one answered: turn_reply).
        _history_item(role, _with_note(text, file if pk != turn.reply_to_id else None), agent)
        for pk, role, text, agent, file in rows
    ]


def _with_note(text: str, file: str | None) -> str:
    return "\n".join(
        part for part in (text, f"[The user attached a file: {file}]" if file else "") if part
    )


def turn_reply(*, turn: Turn) -> tuple[str, list[TurnAttachment]]:
    """What `turn.started` names as `reply_to` (the answered message's client id), and
    the file that message came with, for the model's input (its bytes are read only for
    a model that takes them: orchestrator.sdk.inputs). One query."""
    fields = ("name", "kind", "content_type", "size", "file")
    message = (
        Message.objects.select_related("attachment")
        .only("client_id", "uuid", *(f"attachment__{f}" for f in fields))
        .get(pk=turn.reply_to_id)
    )
    try:
        a = message.attachment
    except Attachment.DoesNotExist:
        files = []
    else:
        files = [
            TurnAttachment(
                name=a.name,
                kind=a.kind,
                content_type=a.content_type,
                size=a.size,
                read=partial(_read_stored, a.file.storage, a.file.name),
            )
        ]
    return message.client_id or str(message.uuid), files


def _read_stored(storage: Any, name: str) -> bytes:
    with storage.open(name, "rb") as stored:
        return stored.read()


def _history_item(role: str, text: str, agent: str) -> dict[str, str]:
    if role == Role.USER:
        return {"role": "user", "content": text}
    return {"role": "assistant", "content": text, "agent": agent if role == Role.ASSISTANT else ""}


def _due():
    """Pending user messages that may be answered now (not waiting for a retry time)."""
    return Q(role=Role.USER, status=MessageStatus.PENDING) & (
        Q(retry_at__isnull=True) | Q(retry_at__lte=timezone.now())
    )


def conversation_has_pending(*, conversation_id: int) -> bool:
    """Whether a turn can start now: messages are answered in order, so the conversation's
    oldest pending message decides (while it waits for its retry time, all wait). Only
    while agents answer (status `bot`): otherwise the messages wait for a person."""
    oldest = (
        Message.objects.filter(
            conversation_id=conversation_id,
            conversation__status=ConversationStatus.BOT,
            role=Role.USER,
            status=MessageStatus.PENDING,
        )
        .order_by("id")
        .values_list("retry_at", flat=True)[:1]
    )
    retry_at = next(iter(oldest), False)
    return retry_at is not False and (retry_at is None or retry_at <= timezone.now())


def conversation_next_retry(*, conversation_id: int) -> datetime | None:
    """When the conversation's earliest queued message is due again (None: none queued)."""
    return (
        Message.objects.filter(
            conversation_id=conversation_id,
            role=Role.USER,
            status=MessageStatus.PENDING,
            retry_at__isnull=False,
        )
        .order_by("retry_at")
        .values_list("retry_at", flat=True)
        .first()
    )


def conversations_to_resume() -> list[tuple[int, uuid.UUID]]:
    """(id, uuid) of the conversations nobody is answering although they could be: the
    oldest pending user message is due (never tried, queued for a retry now due, or left
    by a turn whose process died) and no process holds a live lease."""
    now = timezone.now()
    free = Q(busy_until__isnull=True) | Q(busy_until__lt=now)
    candidates = (
        Conversation.objects.filter(free, status=ConversationStatus.BOT)
        .filter(pk__in=Message.objects.filter(_due()).values("conversation_id"))
        .values_list("pk", "uuid")
    )
    return [(pk, uid) for pk, uid in candidates if conversation_has_pending(conversation_id=pk)]


def conversation_running_turn(*, conversation: Conversation) -> Turn | None:
    """The turn running now for the conversation, if a live process holds its lease (a
    turn left running by a dead process is closed when the conversation is answered)."""
    if conversation.busy_until is None or conversation.busy_until < timezone.now():
        return None
    return (
        Turn.objects.filter(conversation=conversation, status=TurnStatus.RUNNING)
        .select_related("reply_to")
        .order_by("-id")
        .first()
    )


def conversations_with_pending() -> list[int]:
    return list(Message.objects.filter(_due()).values_list("conversation_id", flat=True).distinct())


def conversation_user(conversation: Conversation) -> dict[str, Any]:
    """Who the conversation's user says they are (the staff API, a user's data export)."""
    return {
        "id": conversation.user_id,
        "name": conversation.user_name,
        "email": conversation.user_email,
        "verified": conversation.user_verified,
    }
