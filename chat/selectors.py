"""Reads for the chat app."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

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


def _due():
    """Pending user messages that may be answered now (not waiting for a retry time)."""
    return Q(role=Role.USER, status=MessageStatus.PENDING) & (
        Q(retry_at__isnull=True) | Q(retry_at__lte=timezone.now())
    )


def conversation_has_pending(*, conversation_id: int) -> bool:
    """Whether a turn can start now: messages are answered in order, so the conversation's
    oldest pending message decides (while it waits for its retry time, all wait)."""
    oldest = (
        Message.objects.filter(
            conversation_id=conversation_id, role=Role.USER, status=MessageStatus.PENDING
        )
        .order_by("id")
        .values_list("retry_at", flat=True)[:1]
    )
    retry_at = next(iter(oldest), False)
    return retry_at is not False and (retry_at is None or retry_at <= timezone.now())


def conversation_next_retry(*, conversation_id: int):
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


def conversations_with_pending() -> list[int]:
    return list(Message.objects.filter(_due()).values_list("conversation_id", flat=True).distinct())
