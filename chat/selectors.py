"""Reads for the chat app."""

from __future__ import annotations

import uuid

from django.conf import settings

from .models import Conversation, Message, MessageStatus, Role, Site


def site_get(*, key: str) -> Site | None:
    return Site.objects.filter(key=key).first()


def conversation_messages(*, conversation: Conversation, since: str | None) -> list[Message]:
    """The newest N messages, or those after `since` (a message id the client has)."""
    qs = Message.objects.filter(conversation=conversation)
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


def conversation_has_pending(*, conversation_id: int) -> bool:
    return Message.objects.filter(
        conversation_id=conversation_id, role=Role.USER, status=MessageStatus.PENDING
    ).exists()


def conversations_with_pending() -> list[int]:
    return list(
        Message.objects.filter(role=Role.USER, status=MessageStatus.PENDING)
        .values_list("conversation_id", flat=True)
        .distinct()
    )
