"""The staff inbox's reads (selectors): the conversation list by status, its search, one
conversation's transcript and notes, and the colleagues a conversation can go to. The
writes are chat.people's services."""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)

from orchestrator.text import plain_text

from .enums import ConversationStatus, Role
from .models import Conversation, Message, StaffNote

QUERY_MAX_CHARS = 200
LIST_LIMIT = 200  # rows on the page; the search finds older ones
STATUS_ORDER = (
    ConversationStatus.WAITING,
    ConversationStatus.HUMAN,
    ConversationStatus.BOT,
    ConversationStatus.RESOLVED,
)


class SearchError(ValueError):
    """A search the inbox cannot run; the message is plain words."""


def search_query(raw: str) -> str:
    """The search words, whitespace collapsed; too long is refused in plain words."""
    query = " ".join((raw or "").split())
    if len(query) > QUERY_MAX_CHARS:
        raise SearchError(
            f"The search is too long ({len(query)} characters; at most {QUERY_MAX_CHARS})."
        )
    return query


def _latest(conversation_field: str, value: str, **filters) -> Subquery:
    messages = Message.objects.filter(conversation=OuterRef(conversation_field), **filters)
    return Subquery(messages.order_by("-created_at", "-id").values(value)[:1])


def inbox_conversations(*, query: str = "") -> QuerySet[Conversation]:
    """Waiting first (longest waiting first), then with a person, with the agents,
    resolved (each most recently active first). `unread`: the user's messages since the
    last reply (an agent's or staff's), from the stored messages. `query`: conversations
    with a message containing these words (case-insensitive), already checked by
    search_query."""
    rank = Case(
        *(When(status=s, then=Value(i)) for i, s in enumerate(STATUS_ORDER)),
        default=Value(len(STATUS_ORDER)),
        output_field=IntegerField(),
    )
    rows = (
        Conversation.objects.select_related("site", "owner")
        .annotate(
            rank=rank,
            wait_since=Case(When(status=ConversationStatus.WAITING, then=F("status_changed_at"))),
            last_text=_latest("pk", "text"),
            last_role=_latest("pk", "role"),
            last_reply_at=_latest("pk", "created_at", role__in=(Role.ASSISTANT, Role.STAFF)),
        )
        .annotate(
            unread=Count(
                "messages",
                filter=Q(messages__role=Role.USER)
                & (Q(last_reply_at__isnull=True) | Q(messages__created_at__gt=F("last_reply_at"))),
            )
        )
    )
    if query:
        matching = Message.objects.filter(text__icontains=query).values("conversation_id")
        rows = rows.filter(pk__in=matching)
    return rows.order_by("rank", F("wait_since").asc(nulls_last=True), "-updated_at", "-id")[
        :LIST_LIMIT
    ]


def with_previews(rows: QuerySet[Conversation]) -> list[Conversation]:
    """The rows, each with `preview`: its last message as a reader sees it (Markdown
    rendered to plain text: no `**` or link syntax in the list)."""
    rows = list(rows)
    for row in rows:
        row.preview = plain_text(row.last_text or "")
    return rows


def waiting_count() -> int:
    return Conversation.objects.filter(status=ConversationStatus.WAITING).count()


def inbox_conversation(*, key: uuid.UUID) -> Conversation | None:
    return Conversation.objects.select_related("site", "owner").filter(uuid=key).first()


def conversation_transcript(*, conversation: Conversation) -> list[Message]:
    """Every message of the conversation (user, agents, staff), oldest first."""
    return list(
        Message.objects.filter(conversation=conversation)
        .exclude(role=Role.SYSTEM)
        .order_by("created_at", "id")
    )


def conversation_notes(*, conversation: Conversation) -> list[StaffNote]:
    return list(
        StaffNote.objects.filter(conversation=conversation)
        .select_related("author")
        .order_by("created_at", "id")
    )


def staff_colleagues() -> QuerySet:
    """The members of staff a conversation can be assigned to."""
    return (
        get_user_model()
        .objects.filter(is_staff=True, is_active=True)
        .order_by("first_name", "username")
    )
