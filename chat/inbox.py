"""The staff inbox's reads (selectors): the conversation list by status, its search, one
conversation's transcript and notes, the colleagues a conversation can go to, and the
canned replies. The writes are chat.people's services (who is online: people.staff_online)."""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from orchestrator import approvals as orchestrator_approvals
from orchestrator.domain.enums import ApprovalPolicy, ApprovalStatus
from orchestrator.models import Approval
from orchestrator.text import plain_text

from . import roles
from .enums import ConversationStatus, Role
from .models import CannedReply, Conversation, Message, Site, StaffNote
from .search import messages_matching

QUERY_MAX_CHARS = 200
LIST_LIMIT = 200  # rows on the page; the search finds older ones
APPROVALS_RECENT = 20  # a conversation's approvals the staff API lists (pending and decided)
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


def status_filter(raw: str) -> str:
    """The list's status filter: empty (all) or one ConversationStatus value."""
    raw = (raw or "").strip()
    if raw and raw not in {s.value for s in ConversationStatus}:
        names = ", ".join(s.value for s in ConversationStatus)
        raise SearchError(f"There is no status “{raw[:20]}”; use one of {names}, or none.")
    return raw


def _latest(conversation_field: str, value: str, **filters) -> Subquery:
    messages = Message.objects.filter(conversation=OuterRef(conversation_field), **filters)
    return Subquery(messages.order_by("-created_at", "-id").values(value)[:1])


def _matching(*, staff, query: str = "", status: str = "") -> QuerySet[Conversation]:
    rows = roles.visible_conversations(Conversation.objects.all(), staff)
    if query:
        matching = messages_matching(query).values("conversation_id")
        rows = rows.filter(pk__in=matching)
    if status:
        rows = rows.filter(status=status)
    return rows


def _staff_approvals_pending(conversation_field: str = "uuid") -> QuerySet[Approval]:
    """The approvals staff must decide, still open (an expired one the sweep ends)."""
    return Approval.objects.filter(
        conversation_id=OuterRef(conversation_field),
        status=ApprovalStatus.PENDING,
        by=ApprovalPolicy.STAFF,
        expires_at__gt=timezone.now(),
    )


def inbox_rows(*, staff, query: str = "", status: str = "") -> QuerySet[Conversation]:
    """Needing attention first: waiting for a person, or with an approval staff must
    decide (`approval_needed`; longest waiting first), then with a person, with the
    agents, resolved (each most recently active first). `unread`: the user's messages
    since the last reply (an agent's or staff's), from the stored messages. `query`:
    conversations with a message holding each of these words or word beginnings
    (case and accents ignored; chat.search's blind index over the encrypted texts), already
    checked by search_query; `status`: only those with this status; only the sites
    `staff` may see (chat.roles.visible_conversations). Not sliced: the page
    takes the first LIST_LIMIT (inbox_conversations), the staff API pages through it."""
    rank = Case(
        When(approval_needed=True, then=Value(0)),
        *(When(status=s, then=Value(i)) for i, s in enumerate(STATUS_ORDER)),
        default=Value(len(STATUS_ORDER)),
        output_field=IntegerField(),
    )
    rows = (
        _matching(staff=staff, query=query, status=status)
        .select_related("site", "owner")
        .annotate(approval_needed=Exists(_staff_approvals_pending()))
        .annotate(
            rank=rank,
            wait_since=Case(When(status=ConversationStatus.WAITING, then=F("status_changed_at"))),
            last_text=_latest("pk", "text"),
            last_file=_latest("pk", "attachment__name"),  # a file sent without words
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
    return rows.order_by("rank", F("wait_since").asc(nulls_last=True), "-updated_at", "-id")


def inbox_conversations(*, staff, query: str = "", status: str = "") -> QuerySet[Conversation]:
    """The list on the page: the first LIST_LIMIT of inbox_rows."""
    return inbox_rows(staff=staff, query=query, status=status)[:LIST_LIMIT]


def inbox_count(*, staff, query: str = "", status: str = "") -> int:
    """How many conversations inbox_rows lists (counted without its annotations)."""
    return _matching(staff=staff, query=query, status=status).count()


def with_previews(rows: QuerySet[Conversation]) -> list[Conversation]:
    """The rows, each with `preview`: its last message as a reader sees it (Markdown
    rendered to plain text: no `**` or link syntax in the list; a file sent without
    words by its name)."""
    rows = list(rows)
    for row in rows:
        row.preview = plain_text(row.last_text or "") or (
            f"📎 {row.last_file}" if getattr(row, "last_file", None) else ""
        )
    return rows


def waiting_count(*, staff=None) -> int:
    """Conversations waiting for a person: of the sites `staff` sees, or all (None)."""
    rows = Conversation.objects.filter(status=ConversationStatus.WAITING)
    return (roles.visible_conversations(rows, staff) if staff is not None else rows).count()


def approvals_needed_count(*, staff) -> int:
    """How many conversations `staff` sees have an approval staff must decide."""
    approvals = Approval.objects.filter(
        status=ApprovalStatus.PENDING, by=ApprovalPolicy.STAFF, expires_at__gt=timezone.now()
    )
    hidden = roles.sites_hidden_from(staff)
    if hidden is not None:
        hidden_conversations = Conversation.objects.filter(site__in=hidden.values("pk"))
        approvals = approvals.exclude(conversation_id__in=hidden_conversations.values("uuid"))
    return approvals.values("conversation_id").distinct().count()


def conversation_approvals_pending(*, conversation: Conversation) -> list[Approval]:
    """The approvals of the conversation still waiting for a yes or no, oldest first."""
    return orchestrator_approvals.approvals_pending(conversation_id=conversation.uuid)


def conversation_approvals(
    *, conversation: Conversation, limit: int = APPROVALS_RECENT
) -> list[Approval]:
    """The conversation's approvals, pending and decided, newest first."""
    return list(
        Approval.objects.filter(conversation_id=conversation.uuid)
        .defer("run_state")
        .order_by("-created_at", "-id")[:limit]
    )


def approval_get(*, key: uuid.UUID | str) -> Approval | None:
    """One approval by its id (None when there is none, or the id is not a UUID)."""
    try:
        key = uuid.UUID(str(key))
    except ValueError:
        return None
    return Approval.objects.defer("run_state").filter(uuid=key).first()


def inbox_conversation(*, key: uuid.UUID, staff) -> Conversation | None:
    """One conversation, if `staff` may see its site (None otherwise: as if there were none)."""
    rows = roles.visible_conversations(Conversation.objects.all(), staff)
    return rows.select_related("site", "owner").filter(uuid=key).first()


def conversation_transcript(*, conversation: Conversation) -> list[Message]:
    """Every message of the conversation (user, agents, staff), oldest first."""
    return list(
        Message.objects.filter(conversation=conversation)
        .exclude(role=Role.SYSTEM)
        .select_related("attachment")
        .order_by("created_at", "id")
    )


def conversation_notes(*, conversation: Conversation) -> list[StaffNote]:
    return list(
        StaffNote.objects.filter(conversation=conversation)
        .select_related("author")
        .order_by("created_at", "id")
    )


def staff_colleagues(*, site: Site | None = None) -> QuerySet:
    """The members of staff a conversation can be assigned to: of `site`'s staff (with
    the superusers and Admins) when the site names its staff."""
    users = get_user_model().objects.filter(is_staff=True, is_active=True)
    if site is not None and site.staff.exists():
        admins = Q(is_superuser=True) | Q(groups__name=roles.Role.ADMIN.label)
        users = users.filter(Q(staffed_sites=site) | admins).distinct()
    return users.order_by("first_name", "username")


def canned_replies() -> list[CannedReply]:
    """The saved answers staff insert into a reply (made in the admin), by title."""
    return list(CannedReply.objects.order_by("title", "id").only("id", "title", "text"))


def staff_user_by_ref(*, ref: int | str):
    """A user by id (an int) or username (a str), or None; whether they may take a
    conversation is the service's to say (people.staff_assign)."""
    users = get_user_model().objects
    if isinstance(ref, int):
        return users.filter(pk=ref).first()
    return users.filter(**{get_user_model().USERNAME_FIELD: ref}).first()
