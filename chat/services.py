"""Writes for the chat app: sites, conversations, messages, turns, feedback."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .models import (
    Conversation,
    Feedback,
    Message,
    MessageStatus,
    Role,
    Site,
    Turn,
    TurnEvent,
    TurnStatus,
)

DEFAULT_SITE_KEY = "demo"
DEFAULT_SUGGESTIONS = [
    "I was charged twice for my subscription",
    "The app crashes on login",
    "Compare the Pro and Business plans",
    "How do I reset my password?",
]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def site_ensure_default() -> Site:
    site, _ = Site.objects.get_or_create(
        key=DEFAULT_SITE_KEY,
        defaults={
            "name": "Super Orchestrator (this app)",
            "greeting": "Hi! I'm Super Orchestrator. How can our team help you today?",
            "suggestions": DEFAULT_SUGGESTIONS,
        },
    )
    return site


def conversation_open(
    *, site: Site, token: str | None, user: dict[str, Any], context: dict[str, Any]
) -> tuple[Conversation, str, bool]:
    """Reopen the conversation a token belongs to on this site, or start a new one.

    Returns (conversation, token, resumed). An unknown token, or one of another
    site, silently starts a new conversation: nothing says whether it existed.
    """
    if token:
        conversation = Conversation.objects.filter(site=site, token_hash=token_hash(token)).first()
        if conversation is not None:
            if context:
                conversation.page_context = context
                conversation.save(update_fields=["page_context", "updated_at"])
            return conversation, token, True
    new_token = secrets.token_urlsafe(32)
    conversation = Conversation.objects.create(
        site=site,
        token_hash=token_hash(new_token),
        user_id=(user.get("id") or "")[:200],
        user_name=(user.get("name") or "")[:200],
        user_email=(user.get("email") or "")[:254],
        page_context=context,
    )
    return conversation, new_token, False


def message_receive(
    *, conversation: Conversation, client_id: str, text: str
) -> tuple[Message, bool]:
    """Store a user's message once per client id. Returns (message, created)."""
    existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                role=Role.USER,
                text=text,
                client_id=client_id,
                status=MessageStatus.PENDING,
            )
    except IntegrityError:  # the same id arrived on another socket at the same moment
        return Message.objects.get(conversation=conversation, client_id=client_id), False
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    return message, True


def feedback_record(
    *, conversation: Conversation, message_uuid: str, value: str, comment: str
) -> Message | None:
    try:
        parsed = uuid.UUID(message_uuid)
    except ValueError:
        return None
    message = Message.objects.filter(
        conversation=conversation, uuid=parsed, role=Role.ASSISTANT
    ).first()
    if message is None:
        return None
    Feedback.objects.update_or_create(
        message=message, defaults={"value": value, "comment": comment}
    )
    return message


# --- Turns -----------------------------------------------------------------------------


def conversation_claim(*, conversation_id: int) -> bool:
    """Take the conversation's turn lease if nobody holds it. Atomic on every database."""
    now = timezone.now()
    claimed = (
        Conversation.objects.filter(pk=conversation_id)
        .filter(Q(busy_until__isnull=True) | Q(busy_until__lt=now))
        .update(busy_until=now + timedelta(seconds=settings.SUPERORCH_TURN_LEASE))
    )
    return claimed == 1


def conversation_renew(*, conversation_id: int) -> None:
    Conversation.objects.filter(pk=conversation_id).update(
        busy_until=timezone.now() + timedelta(seconds=settings.SUPERORCH_TURN_LEASE)
    )


def conversation_release(*, conversation_id: int) -> None:
    Conversation.objects.filter(pk=conversation_id).update(busy_until=None)


def turn_start_next(*, conversation_id: int) -> Turn | None:
    """Open a turn for the oldest user message still waiting for a reply (lease held)."""
    message = (
        Message.objects.filter(
            conversation_id=conversation_id, role=Role.USER, status=MessageStatus.PENDING
        )
        .order_by("id")
        .first()
    )
    if message is None:
        return None
    # A turn left running by a server that died is closed before the message is retried.
    Turn.objects.filter(reply_to=message, status=TurnStatus.RUNNING).update(
        status=TurnStatus.ERROR,
        error="Interrupted: the server stopped during this turn.",
        finished_at=timezone.now(),
    )
    return Turn.objects.create(conversation_id=conversation_id, reply_to=message)


def turn_history(*, turn: Turn) -> list[dict[str, str]]:
    """The model's input, from our own Message table: the conversation up to the message
    being answered (newest N), oldest first."""
    rows = list(
        Message.objects.filter(
            conversation_id=turn.conversation_id,
            id__lte=turn.reply_to_id,
            role__in=[Role.USER, Role.ASSISTANT, Role.STAFF],
        )
        .order_by("-id")
        .values_list("role", "text")[: settings.SUPERORCH_MODEL_INPUT_MESSAGES]
    )
    rows.reverse()
    return [{"role": "user" if r == Role.USER else "assistant", "content": t} for r, t in rows]


def turn_event_record(*, turn_id: int, kind: str, data: dict[str, Any]) -> None:
    TurnEvent.objects.create(turn_id=turn_id, kind=kind, data=data)


def conversation_set_agent(*, conversation_id: int, agent_slug: str) -> None:
    Conversation.objects.filter(pk=conversation_id).update(active_agent=agent_slug)


def assistant_message_create(
    *, turn: Turn, message_uuid: uuid.UUID, agent_slug: str, agent_name: str, text: str
) -> Message:
    message, _ = Message.objects.get_or_create(
        uuid=message_uuid,
        defaults={
            "conversation_id": turn.conversation_id,
            "role": Role.ASSISTANT,
            "agent_slug": agent_slug,
            "agent_name": agent_name,
            "text": text,
            "turn": turn,
        },
    )
    return message


def turn_finish(
    *,
    turn: Turn,
    status: str,
    agent_slug: str,
    usage: dict[str, int],
    error_code: str = "",
    error: str = "",
) -> None:
    with transaction.atomic():
        Turn.objects.filter(pk=turn.pk).update(
            status=status,
            agent_slug=agent_slug,
            usage=usage,
            error_code=error_code,
            error=error[:4000],
            finished_at=timezone.now(),
        )
        Message.objects.filter(pk=turn.reply_to_id).update(
            status=MessageStatus.FAILED if status == TurnStatus.ERROR else MessageStatus.ANSWERED
        )
        if error:
            TurnEvent.objects.create(
                turn=turn,
                kind=TurnEvent.Kind.ERROR,
                data={"code": error_code, "detail": error[:2000]},
            )
