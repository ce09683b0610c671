"""Writes for the chat app: sites, conversations, messages, turns, feedback."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_lazy

from orchestrator import selectors as orchestrator_selectors
from orchestrator import workflow_engine
from orchestrator.domain.guardrails import Verdict
from orchestrator.models import StepRun, WorkflowRun, WorkflowStatus

from . import people, protocol
from .broadcast import broadcast_on_commit
from .guardrails import guardrail_fields
from .models import (
    Conversation,
    ConversationStatus,
    Feedback,
    Message,
    MessageStatus,
    Role,
    Site,
    Turn,
    TurnEvent,
    TurnStatus,
)
from .redaction import Redaction, redact

DEFAULT_SITE_KEY = protocol.DEFAULT_SITE
DEFAULT_GREETING = "Hi! I'm Super Orchestrator. How can our team help you today?"
DEFAULT_SUGGESTIONS = [
    "I was charged twice for my subscription",
    "The app crashes on login",
    "Compare the Pro and Business plans",
    "How do I reset my password?",
]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def site_ensure_default(*, site_model: type[Site] = Site) -> Site:
    """The app's own chat page's site ('demo'). Run by the data migration chat 0003 (with
    its historical model), and by test fixtures after a flush; the page only reads it."""
    site, _ = site_model.objects.get_or_create(
        key=DEFAULT_SITE_KEY,
        defaults={
            "name": "Super Orchestrator (this app)",
            "greeting": DEFAULT_GREETING,
            "suggestions": DEFAULT_SUGGESTIONS,
        },
    )
    return site


class IdentityError(Exception):
    """The visitor's identity could not be verified; the message is safe to show."""


IDENTITY_INVALID = gettext_lazy(
    "We could not verify who you are. Please reload the page or sign in again to chat."
)


def identity_signature(*, secret: str, user_id: str) -> str:
    """What a site's server sends as `hash`: hex HMAC-SHA256 of the user id under the site's secret."""
    return hmac.new(secret.encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def identity_verify(*, site: Site, user: dict[str, Any]) -> bool:
    """True for a correctly signed identity, False for an unsigned one the site accepts.

    Raises IdentityError for a forged signature, a missing one when the site requires it,
    or an id longer than a conversation stores (Limits.USER_ID_CHARS): ids are compared
    whole, so two ids sharing their first characters never meet. The comparison takes
    constant time.
    """
    user_id, signature = user.get("id") or "", user.get("hash")
    if len(user_id) > protocol.Limits.USER_ID_CHARS:  # stored and compared whole, never cut
        raise IdentityError(IDENTITY_INVALID)
    if signature is None and not site.require_verified:
        return False
    if not user_id or not signature:
        raise IdentityError(IDENTITY_INVALID)
    expected = identity_signature(secret=site.identity_secret, user_id=user_id)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode("utf-8")):
        raise IdentityError(IDENTITY_INVALID)
    return True


def _conversation_update(
    conversation: Conversation,
    user: dict[str, Any],
    context: dict[str, Any],
    *,
    verified: bool,
    locale: str,
) -> None:
    """A reopened conversation takes what the session says now: the verified id, the
    user's name and email, the page, the language."""
    if verified and not conversation.user_verified:
        conversation.user_id, conversation.user_verified = user.get("id") or "", True
    if user.get("name"):
        conversation.user_name = user["name"]
    if user.get("email"):
        conversation.user_email = user["email"]
    if context:
        conversation.page_context = context
    if locale:
        conversation.locale = locale
    conversation.save()


def conversation_open(
    *,
    site: Site,
    token: str | None,
    user: dict[str, Any],
    context: dict[str, Any],
    verified: bool = False,
    locale: str = "",
) -> tuple[Conversation, str, bool]:
    """Reopen the conversation a token belongs to on this site, or start a new one.
    `locale` (chat.i18n.locale_negotiate), when given, is the language it speaks from now.

    Returns (conversation, token, resumed). An unknown token, one of another site, or one
    of another verified user's conversation silently starts a new conversation: nothing
    says whether it existed. A verified user without a usable token gets their latest
    conversation on this site (from any device), under a new token.
    """
    user_id = user.get("id") or ""
    if len(user_id) > protocol.Limits.USER_ID_CHARS:  # whole or not at all (identity_verify)
        raise IdentityError(IDENTITY_INVALID)
    conversation = None
    new_token = token
    if token:
        conversation = Conversation.objects.filter(site=site, token_hash=token_hash(token)).first()
        foreign_user = (
            conversation is not None
            and conversation.user_verified
            and not (verified and conversation.user_id == user_id)
        )
        if foreign_user:  # another verified user's conversation: never opened by its token alone
            conversation = None
    if conversation is None and verified:
        conversation = (
            Conversation.objects.filter(site=site, user_id=user_id, user_verified=True)
            .order_by("-updated_at")
            .first()
        )
        if conversation is not None:
            new_token = secrets.token_urlsafe(32)
            conversation.token_hash = token_hash(new_token)
    if conversation is not None:
        conversation.site = site  # known already (message_receive reads its redaction)
        _conversation_update(conversation, user, context, verified=verified, locale=locale)
        return conversation, new_token or "", True
    new_token = secrets.token_urlsafe(32)
    conversation = Conversation.objects.create(
        site=site,
        token_hash=token_hash(new_token),
        user_id=user_id,
        user_verified=verified,
        user_name=user.get("name") or "",  # within the stored lengths (protocol.User)
        user_email=user.get("email") or "",
        page_context=context,
        locale=locale,
    )
    return conversation, new_token, False


def conversation_discard_new(*, conversation: Conversation) -> None:
    """Delete a conversation just opened for a session that was then refused (a client
    over its new-conversation limit): nothing of a refused session stays. A
    conversation with messages is never deleted."""
    Conversation.objects.filter(pk=conversation.pk, messages__isnull=True).delete()


def conversation_set_context(*, conversation: Conversation, context: dict[str, Any]) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(page_context=context)


def message_receive(
    *, conversation: Conversation, client_id: str, text: str
) -> tuple[Message, bool]:
    """Store a user's message once per client id, with what the site masks masked
    (chat.redaction: before it is stored, so no model or log sees it). Returns
    (message, created).

    The message and the conversation's activity are one transaction; a client id already
    stored (a resend after a reconnect, or the same id on another socket) is found by the
    unique constraint, not by a read before every insert."""
    text = user_text(conversation=conversation, text=text)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                role=Role.USER,
                text=text,
                client_id=client_id,
                status=MessageStatus.PENDING,
            )
            Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    except IntegrityError:  # stored already: the first one stands
        return Message.objects.get(conversation=conversation, client_id=client_id), False
    user_message_stored(conversation=conversation)
    return message, True


def user_text(*, conversation: Conversation, text: str) -> str:
    """A user's words as they may be stored: with what the site masks masked
    (chat.redaction), before any model, log or export sees them."""
    return redact(text, Redaction.of_site(conversation.site))


def user_message_stored(*, conversation: Conversation) -> None:
    """After a user's message (words or a file) is stored: a resolved conversation
    reopens, staff hear of a message to a person, queued messages are tried again."""
    status = Conversation.objects.filter(pk=conversation.pk).values_list("status", flat=True)
    status = status.first()
    if status == ConversationStatus.RESOLVED:
        people.user_wrote(conversation_id=conversation.pk)
    elif status in (ConversationStatus.WAITING, ConversationStatus.HUMAN):
        people.user_message_to_staff(conversation_id=conversation.pk)
    conversation_wake_queued(conversation_id=conversation.pk)


def conversation_wake_queued(*, conversation_id: int) -> int:
    """The user is here again: messages queued for a later try are tried now, in order."""
    return Message.objects.filter(
        conversation_id=conversation_id,
        role=Role.USER,
        status=MessageStatus.PENDING,
        retry_at__isnull=False,
    ).update(retry_at=None)


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
    comment = redact(comment, Redaction.of_site(conversation.site))
    Feedback.objects.update_or_create(
        message=message, defaults={"value": value, "comment": comment}
    )
    if value == "down":
        people.after_feedback(conversation=conversation)
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
    """Open a turn for the oldest user message still waiting for a reply (lease held).

    Messages are answered in order: while the oldest is queued for a later try, the
    ones after it wait too. None while agents do not answer (a person was asked for,
    or owns the conversation: chat.people).
    """
    message = (
        Message.objects.filter(
            conversation_id=conversation_id,
            conversation__status=ConversationStatus.BOT,
            role=Role.USER,
            status=MessageStatus.PENDING,
        )
        .order_by("id")
        .first()
    )
    if message is None or (message.retry_at is not None and message.retry_at > timezone.now()):
        return None
    turns_interrupted_close(message=message)
    return Turn.objects.create(conversation_id=conversation_id, reply_to=message)


INTERRUPTED = "Interrupted: the server stopped during this turn."
INTERRUPTED_WORDS = gettext_lazy(
    "Sorry, we were interrupted while answering. We are answering your message again now."
)


def turns_interrupted_close(*, message: Message) -> int:
    """Close the turns a server that died left running for `message`, and tell every socket
    of the conversation (an `error` in plain words, then `turn.done` status `error`, once
    committed): the page stops waiting for them before the message is answered again."""
    interrupted = list(
        Turn.objects.filter(reply_to=message, status=TurnStatus.RUNNING).values_list("pk", "uuid")
    )
    if not interrupted:
        return 0
    Turn.objects.filter(pk__in=[pk for pk, _ in interrupted]).update(
        status=TurnStatus.ERROR,
        error=INTERRUPTED,
        error_code=protocol.ErrorCode.INTERNAL.value,
        finished_at=timezone.now(),
    )
    conversation_uuid, locale = Conversation.objects.values_list("uuid", "locale").get(
        pk=message.conversation_id
    )
    with translation.override(locale or settings.LANGUAGE_CODE):
        sentence = str(INTERRUPTED_WORDS)
    for _, turn_uuid in interrupted:
        key = str(turn_uuid)
        words = protocol.Error(code=protocol.ErrorCode.INTERNAL, message=sentence, ref=key)
        broadcast_on_commit(conversation_uuid, words)
        broadcast_on_commit(conversation_uuid, protocol.TurnDone(turn=key, status="error"))
    return len(interrupted)


def turn_record_route(*, turn: Turn, decision: dict[str, Any]) -> None:
    """Keep the routing decision on the turn and in its transcript."""
    Turn.objects.filter(pk=turn.pk).update(
        route_agent=decision["agent"],
        route_confidence=decision["confidence"],
        route_path=decision["path"],
    )
    TurnEvent.objects.create(turn=turn, kind=TurnEvent.Kind.ROUTE, data=decision)


def turn_event_record(*, turn_id: int, kind: str, data: dict[str, Any]) -> None:
    TurnEvent.objects.create(turn_id=turn_id, kind=kind, data=data)


def conversation_set_agent(*, conversation_id: int, agent_slug: str) -> None:
    Conversation.objects.filter(pk=conversation_id).update(active_agent=agent_slug)


def assistant_message_create(
    *,
    turn: Turn,
    message_uuid: uuid.UUID,
    agent_slug: str,
    agent_name: str,
    text: str,
    replaces: bool = True,
) -> Message:
    """Store a reply. A message id already stored is replaced (a partial reply of an
    earlier, failed turn for the same user message takes the retry's text: one reply).
    `replaces=False`: the id is new to this turn, so the reply is one INSERT."""
    if not replaces:
        return Message.objects.create(
            uuid=message_uuid,
            conversation_id=turn.conversation_id,
            role=Role.ASSISTANT,
            agent_slug=agent_slug,
            agent_name=agent_name,
            text=text,
            turn=turn,
        )
    message, _ = Message.objects.update_or_create(
        uuid=message_uuid,
        defaults={"agent_slug": agent_slug, "agent_name": agent_name, "text": text, "turn": turn},
        create_defaults={
            "conversation_id": turn.conversation_id,
            "role": Role.ASSISTANT,
            "agent_slug": agent_slug,
            "agent_name": agent_name,
            "text": text,
            "turn": turn,
        },
    )
    return message


def message_answered(*, message_id: int) -> None:
    """A message needs no agent's answer any more (a request for a person answered it)."""
    Message.objects.filter(pk=message_id, status=MessageStatus.PENDING).update(
        status=MessageStatus.ANSWERED, retry_at=None
    )


def turn_finish(
    *,
    turn: Turn,
    status: TurnStatus | str,
    agent_slug: str,
    usage: dict[str, int],
    error_code: str = "",
    error: str = "",
    guardrail: Verdict | None = None,
    guardrail_ms: float | None = None,
) -> None:
    """Record how the turn ended (`guardrail`: the one that stopped it, shown in the
    transcript), and what that means for the message it answered."""
    with transaction.atomic():
        Turn.objects.filter(pk=turn.pk).update(
            status=status,
            agent_slug=agent_slug,
            usage=usage,
            error_code=error_code,
            error=error[:4000],
            finished_at=timezone.now(),
            guardrail_ms=guardrail_ms,
            **guardrail_fields(turn=turn, verdict=guardrail),
        )
        # Only a message still waiting is changed (staff may have answered it meanwhile).
        waiting = Message.objects.filter(pk=turn.reply_to_id, status=MessageStatus.PENDING)
        if status == TurnStatus.CANCELLED and not people.agents_may_answer(
            conversation_id=turn.conversation_id
        ):
            pass  # staff took over mid-turn: the message waits for them (or a hand-back)
        elif status == TurnStatus.PAUSED:
            # It waits for an approval: the answer makes it pending again (chat.approvals).
            waiting.update(status=MessageStatus.WAITING, retry_at=None)
        elif status == TurnStatus.ERROR and error_code == protocol.ErrorCode.MODEL_UNAVAILABLE:
            # No model could answer: the message stays queued and is tried again later.
            failures = Turn.objects.filter(
                reply_to_id=turn.reply_to_id, error_code=protocol.ErrorCode.MODEL_UNAVAILABLE
            ).count()
            delays = settings.SUPERORCH_REQUEUE_DELAYS
            delay = delays[min(failures, len(delays)) - 1] if failures else delays[0]
            waiting.update(retry_at=timezone.now() + timedelta(seconds=delay))
        else:
            waiting.update(
                status=MessageStatus.FAILED
                if status == TurnStatus.ERROR
                else MessageStatus.ANSWERED,
                retry_at=None,
            )
        if error:
            TurnEvent.objects.create(
                turn=turn,
                kind=TurnEvent.Kind.ERROR,
                data={"code": error_code, "detail": error[:2000]},
            )


def workflow_answer_post(*, run_id: int) -> Message | None:
    """Post a finished workflow's answer to its conversation, when no chat turn took it.

    Exactly one of the waiting turn and this claims the delivery. The message reaches
    every socket of the conversation as `message.done` with `"turn": null`, once the
    message is committed.
    """
    run = WorkflowRun.objects.filter(pk=run_id).first()
    if run is None or run.waiting or run.status not in (WorkflowStatus.OK, WorkflowStatus.FAILED):
        return None
    conversation = Conversation.objects.filter(uuid=run.conversation_id).first()
    if conversation is None:
        return None
    # The claim and the message commit together: a process that dies in between
    # leaves the run undelivered (the sweeper posts it), never claimed and unposted.
    with transaction.atomic():
        if not workflow_engine.workflow_claim_delivery(run_id=run.pk):
            return None
        message = _workflow_answer_create(run, conversation)
        _broadcast_outside_turn(conversation, message)
    return message


def _broadcast_outside_turn(conversation: Conversation, message: Message) -> None:
    frame = protocol.MessageDone(turn=None, message=protocol.MessagePayload.from_message(message))
    broadcast_on_commit(conversation.uuid, frame)


def _workflow_answer_create(run: WorkflowRun, conversation: Conversation) -> Message:
    last = (
        run.steps.filter(kind=StepRun.Kind.AGENT, finished_at__isnull=False)
        .order_by("-finished_at")
        .first()
    )
    team = orchestrator_selectors.team_snapshot()
    agent = team.get(last.agent_slug if last else None) or team.orchestrator
    name = run.workflow.name if run.workflow else run.workflow_slug
    with translation.override(conversation.locale or settings.LANGUAGE_CODE):
        if run.status == WorkflowStatus.OK:
            source = gettext("_From the %(workflow)s workflow._") % {"workflow": name}
            text = f"{run.result}\n\n{source}"
        else:
            text = gettext(
                "I'm sorry, the %(workflow)s workflow could not finish: %(error)s Your request "
                "is saved, and a member of the support team will follow up."
            ) % {"workflow": name, "error": run.error}
    return Message.objects.create(
        conversation=conversation,
        role=Role.ASSISTANT,
        agent_slug=agent.slug if agent else "",
        agent_name=agent.name if agent else "",
        text=text,
    )
