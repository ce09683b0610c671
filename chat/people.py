"""People in the loop: a conversation's status and owner, and what staff do with it.

    bot --(a person is asked for)--> waiting --(staff take over)--> human --> resolved
     ^                                                      |
     +------------------(hand back, with a note)------------+

Every change is one conditional UPDATE (`WHERE status = <what was read>`, the row read
under `select_for_update`), so of two staff taking over at once one wins and the other
is told who did, on SQLite and PostgreSQL alike. Each change is recorded as a
ConversationEvent and, once committed, reaches every socket of the conversation as
`conversation.status`. Agents answer only while the status is `bot` (chat.turns).
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.dispatch import Signal
from django.utils import timezone, translation
from django.utils.translation import gettext

from . import audit, protocol, roles, staff_notify
from .broadcast import (
    MESSAGE_CHANGE,
    broadcast_on_commit,
    staff_changed_on_commit,
    staff_presence_on_commit,
    turn_cancel_request,
)
from .enums import ConversationStatus, EscalationSource
from .hours import Hours, Span, back_words
from .inbox import waiting_count
from .models import (
    Conversation,
    ConversationEvent,
    Feedback,
    Message,
    MessageStatus,
    Role,
    Site,
    StaffNote,
    StaffPresence,
    Turn,
    TurnStatus,
)
from .redaction import Redaction, redact
from .roles import Can

logger = logging.getLogger(__name__)

BOT, WAITING, HUMAN, RESOLVED = (
    ConversationStatus.BOT,
    ConversationStatus.WAITING,
    ConversationStatus.HUMAN,
    ConversationStatus.RESOLVED,
)
REASON_CHARS = 500
NOTE_CHARS = 4000
REPLY_CHARS = 4000  # a staff reply (the inbox form and the staff API check it)
WAITS_SAMPLED = 20  # recent waits (waiting -> human) the expected wait is taken from


class PeopleError(Exception):
    """A staff or user action that cannot be done now; the message is plain words."""


# --- Reads ------------------------------------------------------------------------------


def site_hours(*, site: Site) -> Hours:
    spans = [Span(h.weekday, h.opens, h.closes) for h in site.opening_hours.all()]
    return Hours.of(site.time_zone, spans, site.holidays.values_list("date", flat=True))


def staff_name(user: AbstractBaseUser | None) -> str:
    if user is None:
        return "Support team"
    full = getattr(user, "get_full_name", lambda: "")() or ""
    return (getattr(user, "first_name", "") or full or user.get_username())[:80]


def _online_since(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=settings.SUPERORCH_STAFF_ONLINE_SECONDS)


def _online(now: datetime | None = None):
    """The one definition of "online": active staff seen within
    SUPERORCH_STAFF_ONLINE_SECONDS (a staff action, or the inbox socket's frames and its
    ping each minute)."""
    return StaffPresence.objects.filter(
        last_seen__gte=_online_since(now), user__is_active=True, user__is_staff=True
    )


def staff_online_count(*, now: datetime | None = None) -> int:
    return _online(now).count()


def staff_online(*, now: datetime | None = None) -> list[StaffPresence]:
    """Who is online now (the inbox's list), by name, each with when they were last seen."""
    rows = list(_online(now).select_related("user"))
    return sorted(rows, key=lambda p: (staff_name(p.user).casefold(), p.user_id))


def recent_waits(*, limit: int = WAITS_SAMPLED) -> list[float]:
    """Seconds from `waiting` to `human` of the latest takeovers that followed a wait.

    One query: each takeover with the time of its conversation's `waiting` event before
    it (a subquery), not a query per takeover; it runs in the status change's
    transaction, every time a conversation starts to wait."""
    asked = (
        ConversationEvent.objects.filter(
            conversation_id=OuterRef("conversation_id"), to_status=WAITING, id__lt=OuterRef("id")
        )
        .order_by("-id")
        .values("created_at")[:1]
    )
    takeovers = (
        ConversationEvent.objects.filter(
            kind=ConversationEvent.Kind.STATUS, from_status=WAITING, to_status=HUMAN
        )
        .annotate(asked=Subquery(asked))
        .order_by("-id")
        .values_list("created_at", "asked")[:limit]
    )
    return [(taken - asked).total_seconds() for taken, asked in takeovers if asked is not None]


def queue_position(*, conversation: Conversation) -> int:
    """1 for the conversation waiting longest, and so on (this one included)."""
    since = conversation.status_changed_at or conversation.created_at
    return Conversation.objects.filter(status=WAITING, status_changed_at__lt=since).count() + 1


def eta_seconds(*, conversation: Conversation, now: datetime | None = None) -> int | None:
    """The expected wait of a waiting conversation: the median of the recent recorded
    waits, once per round of the staff online (position / staff online, rounded up).
    None when there is nothing to estimate from: no staff online, or no wait recorded."""
    online = staff_online_count(now=now)
    waits = recent_waits()
    if not online or not waits:
        return None
    rounds = math.ceil(queue_position(conversation=conversation) / online)
    return round(statistics.median(waits) * rounds)


def _words(status: str, name: str | None, eta: int | None, open_now: bool, back: str) -> str:
    """What happens next, in plain words for the user."""
    if status == WAITING:
        if not open_now:
            return gettext(
                "We have asked for a person. %(back)s Leave your email and we will answer you there."
            ) % {"back": back}
        if eta is not None:
            minutes = max(1, round(eta / 60))
            return gettext(
                "We have asked for a person. The expected wait is about %(minutes)s min."
            ) % {"minutes": minutes}
        return gettext(
            "We have asked for a person. Someone from our team will join as soon as they can."
        )
    if status == HUMAN:
        if not name:
            return gettext("A member of our team has joined the conversation.")
        return gettext("%(name)s has joined the conversation.") % {"name": name}
    if status == RESOLVED:
        return gettext("This conversation is resolved. Write again any time to continue.")
    return ""


def _words_in(locale: str, status, name, eta, open_now, opening, now) -> str:
    """`_words` in the conversation's language (chat/i18n.py)."""
    with translation.override(locale or settings.LANGUAGE_CODE):
        return _words(status, name, eta, open_now, back_words(opening, now))


def status_payload(
    *, conversation: Conversation, now: datetime | None = None
) -> protocol.StatusPayload:
    """The conversation's status object (session.ready's `status`, conversation.status)."""
    now = now or timezone.now()
    status = conversation.status
    hours = site_hours(site=conversation.site)
    open_now = hours.open_at(now)
    opening = None if open_now else hours.next_opening(now)
    owner = conversation.owner if status == HUMAN else None
    name = staff_name(owner) if owner else None
    eta = (
        eta_seconds(conversation=conversation, now=now) if status == WAITING and open_now else None
    )
    return protocol.StatusPayload(
        status=status,
        staff=protocol.StaffPayload(name=name) if name else None,
        eta_seconds=eta,
        open_now=open_now,
        opens_at=opening.isoformat() if opening else None,
        message=_words_in(conversation.locale, status, name, eta, open_now, opening, now),
        csat=conversation.csat_score,
        email_saved=bool(conversation.contact_email),
    )


def status_frame(*, conversation: Conversation) -> protocol.StatusChanged:
    return protocol.StatusChanged.of(status_payload(conversation=conversation))


def agents_may_answer(*, conversation_id: int) -> bool:
    """Agents answer only while the status is `bot`."""
    return Conversation.objects.filter(pk=conversation_id, status=BOT).exists()


def person_owns(*, conversation_id: int) -> bool:
    """A member of staff owns the conversation (status `human`)."""
    return Conversation.objects.filter(pk=conversation_id, status=HUMAN).exists()


# --- The one way a status changes --------------------------------------------------------


_KEEP = object()


@dataclass(frozen=True)
class Moved:
    changed: bool
    conversation: Conversation  # as it is now (changed or not)
    event_id: int | None = None  # the ConversationEvent recorded (changed only)


def _locked(conversation_id: int) -> Conversation:
    """The row, locked until the transaction ends on PostgreSQL (SQLite's IMMEDIATE
    transactions already serialise writers; the conditional UPDATE guards both).

    The owner is not joined: a SELECT ... FOR UPDATE that waited for a colleague's
    takeover re-reads the locked row but keeps the joined rows it first saw, so a joined
    owner would be the old one (none) beside the new owner_id; it is loaded by owner_id."""
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("site")
        .get(pk=conversation_id)
    )


def _move(
    conversation_id: int,
    *,
    to: ConversationStatus,
    allowed: tuple[str, ...],
    source: EscalationSource,
    actor: AbstractBaseUser | None = None,
    owner: Any = _KEEP,
    reason: str = "",
    updates: dict[str, Any] | None = None,
) -> Moved:
    """Move the conversation to `to` if its status is one of `allowed`; record it and
    broadcast it once committed. A conversation already at `to` with the same owner is
    left as it is (changed False)."""
    with transaction.atomic():
        current = _locked(conversation_id)
        owner_id = current.owner_id if owner is _KEEP else (owner.pk if owner else None)
        if current.status not in allowed or (current.status == to and current.owner_id == owner_id):
            return Moved(False, current)
        now = timezone.now()
        fields = {"status": to, "owner_id": owner_id, "status_changed_at": now, "updated_at": now}
        fields.update(updates or {})
        # The WHERE names what was read: a change committed since (SQLite does not lock on
        # select_for_update) makes this update nothing, and the caller is told.
        won = Conversation.objects.filter(
            pk=conversation_id, status=current.status, owner_id=current.owner_id
        ).update(**fields)
        if not won:
            return Moved(
                False, Conversation.objects.select_related("site", "owner").get(pk=conversation_id)
            )
        event = ConversationEvent.objects.create(
            conversation_id=conversation_id,
            kind=ConversationEvent.Kind.STATUS
            if current.status != to
            else ConversationEvent.Kind.ASSIGN,
            from_status=current.status,
            to_status=to,
            actor=actor,
            owner_id=owner_id,
            source=source,
            reason=reason[:REASON_CHARS],
        )
        current.refresh_from_db()
        broadcast_on_commit(current.uuid, status_frame(conversation=current), status=to)
        staff_changed_on_commit(current.uuid, to, waiting=waiting_count, site=current.site_id)
    return Moved(True, current, event.pk)


# Sent once a hand-back is committed (kwargs: conversation_id, conversation_uuid): the
# agents answer what waits. chat.receivers wakes the turn scheduler (which imports this
# module, so this module does not import it).
agents_answer_again = Signal()


def _wake(conversation: Conversation) -> None:
    pk, key = conversation.pk, conversation.uuid
    transaction.on_commit(
        lambda: agents_answer_again.send(
            sender=Conversation, conversation_id=pk, conversation_uuid=key
        )
    )


def agents_wake(*, conversation: Conversation) -> None:
    """Have the agents answer what the conversation has pending, once committed (a
    staff decision on an approval: the paused run resumes), as a hand-back does."""
    _wake(conversation)


# --- The user's side ---------------------------------------------------------------------


def request_human(
    *, conversation: Conversation, reason: str = "", source: EscalationSource | str
) -> Moved:
    """A person is asked for (the button, words the router recognised, an agent's
    escalate_to_human, errors, thumbs-down). Idempotent: a conversation already waiting
    or with a person stays as it is. The hook for the router's `wants_person`. The
    user's own reason is masked as their messages are (chat.redaction)."""
    source = EscalationSource(source)
    if source == EscalationSource.USER and reason:
        reason = redact(reason, Redaction.of_site(conversation.site))
    moved = _move(
        conversation.pk,
        to=WAITING,
        allowed=(BOT, RESOLVED),
        source=source,
        owner=None,
        reason=reason.strip(),
    )
    if moved.changed:
        logger.info("conversation %s waits for a person (%s)", conversation.uuid, source)
        staff_notify.waiting_on_commit(event_id=moved.event_id)
    return moved


def user_wrote(*, conversation_id: int) -> Moved | None:
    """The user writes in a resolved conversation: the agents answer again."""
    if not Conversation.objects.filter(pk=conversation_id, status=RESOLVED).exists():
        return None
    return _move(
        conversation_id, to=BOT, allowed=(RESOLVED,), source=EscalationSource.REOPEN, owner=None
    )


def user_message_to_staff(*, conversation_id: int) -> None:
    """A user's message in a conversation waiting for or with a person: every staff inbox
    re-reads its list (the last message, the unread count). Conversations the agents
    answer change the list only with their status, so their traffic costs the inbox nothing."""
    row = (
        Conversation.objects.filter(pk=conversation_id, status__in=(WAITING, HUMAN))
        .values_list("uuid", "status", "site_id")
        .first()
    )
    if row is not None:
        key, status, site = row
        staff_changed_on_commit(
            key, status, change=MESSAGE_CHANGE, waiting=waiting_count, site=site
        )


def after_turn_error(*, conversation_id: int) -> Moved | None:
    """After SUPERORCH_ESCALATE_AFTER_ERRORS turns in a row ended in error (each after
    its retries and fallbacks): no model can answer, a person is asked for."""
    needed = settings.SUPERORCH_ESCALATE_AFTER_ERRORS
    if needed <= 0:
        return None
    last = list(
        Turn.objects.filter(conversation_id=conversation_id)
        .exclude(status=TurnStatus.RUNNING)
        .order_by("-id")
        .values_list("status", flat=True)[:needed]
    )
    if len(last) < needed or any(status != TurnStatus.ERROR for status in last):
        return None
    conversation = Conversation.objects.get(pk=conversation_id)
    return request_human(
        conversation=conversation,
        reason="No model could answer.",
        source=EscalationSource.ERRORS,
    )


def after_feedback(*, conversation: Conversation) -> Moved | None:
    """After SUPERORCH_ESCALATE_AFTER_THUMBS_DOWN thumbs-down since the agents last took
    over (the conversation's start, or its last hand-back): a person is asked for."""
    needed = settings.SUPERORCH_ESCALATE_AFTER_THUMBS_DOWN
    if needed <= 0:
        return None
    downs = Feedback.objects.filter(message__conversation=conversation, value="down")
    since = conversation.status_changed_at
    if since is not None:
        downs = downs.filter(created_at__gte=since)
    if downs.count() < needed:
        return None
    return request_human(
        conversation=conversation,
        reason=f"{needed} replies were rated thumbs-down.",
        source=EscalationSource.FEEDBACK,
    )


def csat_record(*, conversation: Conversation, score: int, comment: str) -> Conversation:
    """The user's rating, once the conversation is resolved; once per conversation (a
    second is refused in plain words)."""
    comment = redact(comment.strip(), Redaction.of_site(conversation.site))
    with transaction.atomic():
        updated = Conversation.objects.filter(
            pk=conversation.pk, status=RESOLVED, csat_score__isnull=True
        ).update(csat_score=score, csat_comment=comment, csat_at=timezone.now())
        current = Conversation.objects.select_related("site", "owner").get(pk=conversation.pk)
        if not updated:
            if current.csat_score is not None:
                raise PeopleError(gettext("You have already rated this conversation. Thank you!"))
            raise PeopleError(gettext("You can rate the conversation once it is resolved."))
        broadcast_on_commit(current.uuid, status_frame(conversation=current), status=current.status)
    return current


def contact_email_set(*, conversation: Conversation, email: str) -> Conversation:
    """Where the user wants to be answered (out of hours, say)."""
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise PeopleError(
            gettext("That email address does not look right. Please check it.")
        ) from None
    with transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(contact_email=email)
        current = Conversation.objects.select_related("site", "owner").get(pk=conversation.pk)
        broadcast_on_commit(current.uuid, status_frame(conversation=current), status=current.status)
    return current


# --- Staff actions ------------------------------------------------------------------------


def staff_seen(*, user: AbstractBaseUser) -> bool:
    """The member of staff is here now. True when they were not online before: every
    inbox's list of who is online is then told (once committed)."""
    now = timezone.now()
    if StaffPresence.objects.filter(user=user, last_seen__gte=_online_since(now)).update(
        last_seen=now
    ):
        return False
    StaffPresence.objects.update_or_create(user=user, defaults={"last_seen": now})
    staff_presence_on_commit()
    return True


_STATE_WORDS = {WAITING: "waiting for a person", HUMAN: "with a person", RESOLVED: "resolved"}


def _refusal(conversation: Conversation, doing: str) -> PeopleError:
    if conversation.status == HUMAN and conversation.owner is not None:
        who = staff_name(conversation.owner)
        return PeopleError(
            f"{who} has already taken this conversation over; {doing} is not possible now."
        )
    state = _STATE_WORDS.get(conversation.status, "changed meanwhile")
    return PeopleError(
        f"The agents are answering this conversation; {doing} is not possible now."
        if conversation.status == BOT
        else f"This conversation is {state}; {doing} is not possible now."
    )


def staff_take_over(*, conversation: Conversation, staff: AbstractBaseUser) -> Conversation:
    """`staff` owns the conversation: no agent answers, a running turn is cancelled.
    Raises PeopleError when a colleague owns it already (one of two at once wins)."""
    roles.require(staff, Can.TAKE_OVER)
    staff_seen(user=staff)
    moved = _move(
        conversation.pk,
        to=HUMAN,
        allowed=(BOT, WAITING, RESOLVED),
        source=EscalationSource.STAFF,
        actor=staff,
        owner=staff,
    )
    current = moved.conversation
    if not moved.changed:
        if current.status == HUMAN and current.owner_id == staff.pk:
            return current  # already theirs
        raise _refusal(current, "taking it over")
    # The running turn (if any) stops; the consumers drop its output from now on.
    key = current.uuid
    transaction.on_commit(lambda: async_to_sync(turn_cancel_request)(key))
    audit.staff_did(staff=staff, action=audit.Action.TAKE_OVER, conversation_id=key)
    return current


def staff_reply(*, conversation: Conversation, staff: AbstractBaseUser, text: str) -> Message:
    """A staff message (role `staff`), live on every socket. A conversation nobody owns
    becomes the author's (a reply to a resolved one reopens it), so no agent answers
    after a person did."""
    roles.require(staff, Can.REPLY)
    text = text.strip()
    if not text:
        raise PeopleError("The reply is empty.")
    with transaction.atomic():
        current = Conversation.objects.select_related("owner").get(pk=conversation.pk)
        if current.status != HUMAN:
            staff_take_over(conversation=current, staff=staff)
        staff_seen(user=staff)
        message = Message.objects.create(
            conversation=current,
            role=Role.STAFF,
            agent_slug="staff",
            agent_name=staff_name(staff),
            author=staff,
            text=text,
        )
        Message.objects.filter(
            conversation=current, role=Role.USER, status=MessageStatus.PENDING
        ).update(status=MessageStatus.ANSWERED, retry_at=None)
        Conversation.objects.filter(pk=current.pk).update(updated_at=timezone.now())
        frame = protocol.MessageDone(
            turn=None, message=protocol.MessagePayload.from_message(message)
        )
        broadcast_on_commit(current.uuid, frame)
        audit.staff_did(
            staff=staff, action=audit.Action.REPLY, conversation_id=current.uuid,
            message=str(message.uuid),
        )  # fmt: skip
    return message


def staff_hand_back(
    *, conversation: Conversation, staff: AbstractBaseUser, note: str = ""
) -> Conversation:
    """Back to the agents; they read `note` as context, and answer what the user wrote
    since the last reply."""
    roles.require(staff, Can.HAND_BACK)
    note = note.strip()[:NOTE_CHARS]
    moved = _move(
        conversation.pk,
        to=BOT,
        allowed=(WAITING, HUMAN),
        source=EscalationSource.STAFF,
        actor=staff,
        owner=None,
        reason=note,
        updates={"handback_note": note},
    )
    if not moved.changed:
        raise _refusal(moved.conversation, "handing it back")
    staff_seen(user=staff)
    _wake(moved.conversation)
    audit.staff_did(
        staff=staff, action=audit.Action.HAND_BACK, conversation_id=moved.conversation.uuid
    )
    return moved.conversation


def staff_resolve(*, conversation: Conversation, staff: AbstractBaseUser) -> Conversation:
    roles.require(staff, Can.RESOLVE)
    moved = _move(
        conversation.pk,
        to=RESOLVED,
        allowed=(BOT, WAITING, HUMAN),
        source=EscalationSource.STAFF,
        actor=staff,
    )
    if not moved.changed and moved.conversation.status != RESOLVED:
        raise _refusal(moved.conversation, "resolving it")
    staff_seen(user=staff)
    if moved.changed:
        audit.staff_did(
            staff=staff, action=audit.Action.RESOLVE, conversation_id=moved.conversation.uuid
        )
    return moved.conversation


def staff_assign(
    *, conversation: Conversation, staff: AbstractBaseUser, to: AbstractBaseUser
) -> Conversation:
    """Give the conversation to a colleague (it becomes theirs, status `human`)."""
    roles.require(staff, Can.ASSIGN)
    if not (to.is_active and to.is_staff):
        raise PeopleError(f"{to.get_username()} is not an active member of staff.")
    if not roles.sees_site(to, conversation.site_id):
        raise PeopleError(
            f"{to.get_username()} is not on the staff of this conversation's site, so they "
            "could not see it."
        )
    moved = _move(
        conversation.pk,
        to=HUMAN,
        allowed=(BOT, WAITING, HUMAN, RESOLVED),
        source=EscalationSource.STAFF,
        actor=staff,
        owner=to,
    )
    staff_seen(user=staff)
    if moved.changed and moved.conversation.status == HUMAN:
        key = moved.conversation.uuid
        transaction.on_commit(lambda: async_to_sync(turn_cancel_request)(key))
    audit.staff_did(
        staff=staff, action=audit.Action.ASSIGN, conversation_id=moved.conversation.uuid,
        to=to.get_username(),
    )  # fmt: skip
    return moved.conversation


def staff_note_add(*, conversation: Conversation, staff: AbstractBaseUser, text: str) -> StaffNote:
    """A private note: never sent to the user, never given to a model."""
    roles.require(staff, Can.NOTE)
    text = text.strip()
    if not text:
        raise PeopleError("The note is empty.")
    if len(text) > NOTE_CHARS:
        raise PeopleError(f"The note is too long (at most {NOTE_CHARS} characters).")
    staff_seen(user=staff)
    note = StaffNote.objects.create(conversation=conversation, author=staff, text=text)
    audit.staff_did(
        staff=staff, action=audit.Action.NOTE, conversation_id=conversation.uuid, note=note.pk
    )
    return note
