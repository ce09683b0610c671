"""Approvals in the chat: asking, answering, expiring, resuming (docs/actions.md).

A turn whose agent calls an action that needs approval ends `paused` (its message waits:
MessageStatus.WAITING) after an `approval.request` to every socket. The answer comes as
`approval.respond` from the user, or from staff in the inbox or the staff API; it is
taken once (orchestrator.approvals), said to every socket (`approval.resolved`), and the
message is pending again: the conversation's next turn resumes the paused run
(`turn_resume`), on whichever process or worker takes the conversation's lease. An
approval nobody answers expires in the sweep, and is resumed as declined.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction

from orchestrator import approvals as orchestrator_approvals
from orchestrator.approvals import Decision, Resume
from orchestrator.domain.events import ApprovalRequested
from orchestrator.models import Approval

from . import protocol
from .broadcast import MESSAGE_CHANGE, broadcast_on_commit, staff_changed_on_commit
from .enums import MessageStatus, TurnEventKind, TurnStatus
from .inbox import waiting_count
from .models import Conversation, Message, Turn, TurnEvent

logger = logging.getLogger(__name__)


def request_frame(approval: Approval, turn_key: str) -> protocol.ApprovalRequest:
    return protocol.ApprovalRequest(
        turn=turn_key,
        approval=str(approval.uuid),
        agent=approval.agent_slug,
        action=approval.tool,
        summary=approval.summary,
        by=approval.by if approval.by in ("user", "staff") else "user",
        expires=approval.expires_at.isoformat(),
    )


def pending_frames(*, conversation: Conversation) -> list[protocol.ApprovalRequest]:
    """The approvals still waiting, for a socket that (re)joins the conversation."""
    return [
        request_frame(a, str(a.turn_id))
        for a in orchestrator_approvals.approvals_pending(conversation_id=conversation.uuid)
    ]


def approval_asked(*, turn_id: int, conversation_id: uuid.UUID, asked: ApprovalRequested) -> None:
    """Record the request on the turn (the transcript); staff's ones reach the inbox."""
    TurnEvent.objects.create(
        turn_id=turn_id,
        kind=TurnEventKind.APPROVAL,
        data={
            "approval": str(asked.approval_id),
            "action": asked.action,
            "summary": asked.summary,
            "by": asked.by,
            "arguments": asked.arguments,
        },
    )
    if asked.by == "staff":
        _tell_staff(conversation_id)


def approval_respond(
    *,
    conversation: Conversation,
    approval_id: str,
    approve: bool,
    decided_by: str = "user",
    as_staff: bool = False,
) -> Decision:
    """Take a yes or no (once). On a change every socket hears `approval.resolved` and
    the message is pending again: the caller schedules the conversation."""
    with transaction.atomic():
        decision = orchestrator_approvals.approval_decide(
            approval_id=approval_id,
            approve=approve,
            decided_by=decided_by,
            conversation_id=conversation.uuid,
            as_staff=as_staff,
        )
        if decision.changed and decision.approval is not None:
            _after_decision(decision.approval, conversation)
    return decision


def resolved_frame(approval: Approval) -> protocol.ApprovalResolved | None:
    if approval.status == Approval.Status.PENDING:
        return None
    return protocol.ApprovalResolved(approval=str(approval.uuid), outcome=approval.status)


def approvals_expire_sweep() -> list[Conversation]:
    """Expire what nobody answered in time: the conversations to schedule (resumed as
    not approved, which the agent says in plain words)."""
    woken = []
    for approval in orchestrator_approvals.approvals_expire():
        conversation = Conversation.objects.filter(uuid=approval.conversation_id).first()
        if conversation is not None:
            with transaction.atomic():
                _after_decision(approval, conversation)
            woken.append(conversation)
    return woken


def _after_decision(approval: Approval, conversation: Conversation) -> None:
    frame = resolved_frame(approval)
    if frame is not None:
        broadcast_on_commit(conversation.uuid, frame)
    turn = Turn.objects.filter(uuid=approval.turn_id).only("pk", "reply_to_id").first()
    if turn is None:
        return
    TurnEvent.objects.create(
        turn=turn,
        kind=TurnEventKind.APPROVAL,
        data={
            "approval": str(approval.uuid),
            "outcome": approval.status,
            "decided_by": approval.decided_by,
        },
    )
    Message.objects.filter(pk=turn.reply_to_id, status=MessageStatus.WAITING).update(
        status=MessageStatus.PENDING, retry_at=None
    )
    if approval.by == "staff":
        _tell_staff(approval.conversation_id)


def _tell_staff(conversation_id: uuid.UUID) -> None:
    row = Conversation.objects.filter(uuid=conversation_id).values_list("status", "site_id")
    status, site = row.first() or ("bot", None)
    staff_changed_on_commit(
        conversation_id, status, change=MESSAGE_CHANGE, waiting=waiting_count, site=site
    )


def turn_resume(*, turn: Turn) -> Resume | None:
    """What a new turn resumes: the paused run of its message, once its approval was
    answered (None: an ordinary turn)."""
    paused = list(
        Turn.objects.filter(reply_to_id=turn.reply_to_id, status=TurnStatus.PAUSED).values_list(
            "uuid", flat=True
        )
    )
    if not paused:
        return None
    return orchestrator_approvals.approval_resume(turn_ids=paused)
