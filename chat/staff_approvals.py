"""Staff decide an approval (the inbox's buttons and the staff API): one service, so both
say the same in the same words (docs/people.md, "Approvals in the inbox").

The answer is taken by chat.approvals.approval_respond (once: a second answer changes
nothing), as staff: they decide `staff` approvals, and may decide the user's for them.
When it decided the approval (or found it expired), the agents are woken once committed,
as after a hand-back, so the paused run resumes on whichever process runs turns.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser

from orchestrator.approvals import NOT_FOUND
from orchestrator.domain.actions import amount_at
from orchestrator.domain.enums import ApprovalStatus
from orchestrator.models import Approval

from . import approvals, audit, inbox, people, roles
from .enums import ConversationStatus
from .models import Conversation

ALREADY = {
    ApprovalStatus.APPROVED: "This was already approved.",
    ApprovalStatus.DECLINED: "This was already declined.",
    ApprovalStatus.EXPIRED: "This was already expired: nobody decided in time, so nothing was done.",
}
DONE = {
    ApprovalStatus.APPROVED: "Approved: the agent carries on and tells the user.",
    ApprovalStatus.DECLINED: "Declined: nothing was done, and the agent tells the user.",
}

DONE_AFTER_HAND_BACK = {  # a person has the conversation: no agent answers meanwhile
    ApprovalStatus.APPROVED: "Approved: the agents carry on once the conversation is handed "
    "back to them.",
    ApprovalStatus.DECLINED: "Declined: nothing was done; the agents tell the user once the "
    "conversation is handed back to them.",
}


@dataclass(frozen=True)
class StaffDecision:
    approval: Approval | None  # None: there is no such approval
    decided: bool  # this answer decided it (False: not found, or already decided)
    words: str  # the outcome in plain words, for the member of staff


def approval_amount(approval: Approval) -> Decimal | None:
    """The amount an approval is about (its action's amount path), None if it has none."""
    path = approval.action.approval_amount_path if approval.action else ""
    return amount_at(approval.arguments or {}, path) if path else None


def decided_by(staff: AbstractBaseUser) -> str:
    """Who decided, as the approval and the action's record keep it: the username."""
    return staff.get_username()


def staff_approval_decide(
    *,
    staff: AbstractBaseUser,
    approval_id: uuid.UUID | str,
    approve: bool,
    conversation: Conversation | None = None,
) -> StaffDecision:
    """Approve or decline as staff. `conversation`: the approval must be one of its own
    (the inbox's page); without it the approval's own conversation (the staff API)."""
    found = inbox.approval_get(key=approval_id)
    if conversation is None:
        conversation = (
            inbox.inbox_conversation(key=found.conversation_id, staff=staff) if found else None
        )
        if conversation is None:
            return StaffDecision(None, False, NOT_FOUND)
    if found is not None and found.conversation_id == conversation.uuid:
        roles.require_approval(staff, approval_amount(found))  # RoleError: not theirs to decide
    decision = approvals.approval_respond(
        conversation=conversation,
        approval_id=str(approval_id),
        approve=approve,
        decided_by=decided_by(staff),
        as_staff=True,
    )
    people.staff_seen(user=staff)
    approval = decision.approval
    if approval is None:
        return StaffDecision(None, False, decision.refusal or NOT_FOUND)
    if decision.changed:  # decided now, or found expired: the paused run resumes
        people.agents_wake(conversation=conversation)
        audit.staff_did(
            staff=staff, action=audit.Action.APPROVAL, conversation_id=conversation.uuid,
            approval=str(approval.uuid), action_name=approval.tool, outcome=approval.status,
        )  # fmt: skip
    wanted = ApprovalStatus.APPROVED if approve else ApprovalStatus.DECLINED
    if decision.changed and approval.status == wanted:
        agents = conversation.status == ConversationStatus.BOT
        return StaffDecision(approval, True, (DONE if agents else DONE_AFTER_HAND_BACK)[wanted])
    status = ApprovalStatus(approval.status)
    return StaffDecision(approval, False, ALREADY.get(status, decision.refusal or NOT_FOUND))
