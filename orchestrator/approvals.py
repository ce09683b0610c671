"""Approvals: an action call that waits for a person's yes or no (docs/actions.md).

When an agent calls an action that needs approval, the Agents SDK stops the run before
the call (`needs_approval`, orchestrator/sdk/tools.py) and the attempt hands the paused
run here: `approval_open` keeps it (the SDK's RunState, as JSON) with who decides, a
one-line summary and an expiry, and records the call as waiting. `approval_decide` takes
the answer, atomically and once (a second answer changes nothing); `approvals_expire`
ends those nobody answered in time. The chat app then resumes the run as a new turn
(`approval_resume`), on whichever process or worker picks it up; the approved call keeps
the id it had from the start (`call_id`), so however often a resume is tried, the site
sees one call and a finished call is never sent again (orchestrator.actions).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from . import selectors
from .actions import CallContext, Grant, action_call_record
from .domain import actions as rules
from .domain.enums import ActionCallStatus, ApprovalPolicy, ApprovalStatus
from .models import ActionCall, Approval

DECIDED = (ApprovalStatus.APPROVED, ApprovalStatus.DECLINED, ApprovalStatus.EXPIRED)
# Said to the user, in the session's language (chat.consumers activates it).
NOT_FOUND = gettext_lazy("There is no such approval in this conversation.")
STAFF_DECIDES = gettext_lazy(
    "Our support team decides on this one; you will see their answer here."
)


@dataclass(frozen=True)
class PausedCall:
    """What the SDK layer hands over when a run stopped for an approval."""

    conversation_id: uuid.UUID
    turn_id: uuid.UUID
    tool: str
    agent_slug: str  # the agent whose call it is
    start_agent: str  # where the paused run started (to rebuild it)
    tool_call_id: str
    arguments: dict[str, Any]
    run_state: str


@dataclass(frozen=True)
class Resume:
    """What a resumed turn needs: the paused run and the answer."""

    approval_id: uuid.UUID
    status: ApprovalStatus
    by: str
    start_agent: str
    tool_call_id: str
    run_state: str
    grant: Grant | None  # set when approved

    @property
    def refusal(self) -> str:
        """What the model is told when the call was not approved ("" when it was)."""
        if self.status == ApprovalStatus.APPROVED:
            return ""
        if self.status == ApprovalStatus.EXPIRED:
            return rules.APPROVAL_EXPIRED
        return rules.APPROVAL_DECLINED.get(self.by, rules.APPROVAL_DECLINED["user"])


@dataclass(frozen=True)
class Decision:
    approval: Approval | None
    changed: bool  # this answer decided it (False: already decided, or refused)
    refusal: str = ""  # why the answer was not taken, in plain words


def ttl(by: str) -> int:
    if by == ApprovalPolicy.STAFF:
        return settings.SUPERORCH_APPROVAL_TTL_STAFF
    return settings.SUPERORCH_APPROVAL_TTL_USER


def approval_open(*, paused: PausedCall) -> Approval:
    """Keep a paused run until someone answers, and record the call as waiting."""
    spec = selectors.team_snapshot().actions.get(paused.tool)
    arguments = paused.arguments
    by = (rules.approval_needed(spec, arguments) if spec else "") or ApprovalPolicy.USER.value
    summary = rules.approval_summary(spec, arguments) if spec else paused.tool
    with transaction.atomic():
        approval = Approval.objects.create(
            conversation_id=paused.conversation_id,
            turn_id=paused.turn_id,
            action_id=spec.id if spec else None,
            tool=paused.tool,
            agent_slug=paused.agent_slug,
            start_agent=paused.start_agent,
            tool_call_id=paused.tool_call_id[:200],
            arguments=arguments,
            summary=summary,
            by=by,
            run_state=paused.run_state,
            expires_at=timezone.now() + timedelta(seconds=ttl(by)),
        )
        action_call_record(
            tool=paused.tool,
            context=CallContext(paused.agent_slug, paused.conversation_id, paused.turn_id),
            status=ActionCallStatus.NEEDS_APPROVAL,
            arguments=arguments,
            action_id=approval.action_id,
            approval=by,
            call_id=approval.call_id,
        )
    return approval


def approval_decide(
    *,
    approval_id: uuid.UUID | str,
    approve: bool,
    decided_by: str,
    conversation_id: uuid.UUID | None = None,
    as_staff: bool = False,
) -> Decision:
    """Take an answer: once (a second answer changes nothing), and only from whoever
    decides (staff decide `staff` approvals; the user, or staff, the user's). Past its
    expiry an approval is expired, whatever the answer."""
    try:
        key = uuid.UUID(str(approval_id))
    except ValueError:
        return Decision(None, False, NOT_FOUND)
    found = Approval.objects.filter(uuid=key)
    if conversation_id is not None:
        found = found.filter(conversation_id=conversation_id)
    approval = found.first()
    if approval is None:
        return Decision(None, False, NOT_FOUND)
    if approval.by == ApprovalPolicy.STAFF and not as_staff:
        return Decision(approval, False, STAFF_DECIDES)
    now = timezone.now()
    if approval.expires_at <= now:
        return Decision(approval, _expire(approval, now))
    status = ApprovalStatus.APPROVED if approve else ApprovalStatus.DECLINED
    changed = _settle(approval, status, now, decided_by[:200])
    approval.refresh_from_db()
    return Decision(approval, changed)


def _settle(approval: Approval, status: ApprovalStatus, now, decided_by: str) -> bool:
    """Pending -> decided, atomically: of two answers at once, one wins."""
    with transaction.atomic():
        changed = Approval.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
            status=status, decided_at=now, decided_by=decided_by
        )
        if changed and status != ApprovalStatus.APPROVED:
            call = ActionCallStatus.EXPIRED if status == ApprovalStatus.EXPIRED else None
            ActionCall.objects.filter(uuid=approval.call_id).update(
                status=call or ActionCallStatus.DECLINED,
                error=_words(status, approval.by),
            )
    return bool(changed)


def _words(status: ApprovalStatus, by: str) -> str:
    if status == ApprovalStatus.EXPIRED:
        return rules.APPROVAL_EXPIRED
    return rules.APPROVAL_DECLINED.get(by, rules.APPROVAL_DECLINED["user"])


def _expire(approval: Approval, now) -> bool:
    changed = _settle(approval, ApprovalStatus.EXPIRED, now, "")
    approval.refresh_from_db()
    return changed


def approvals_expire(*, now=None) -> list[Approval]:
    """End the approvals nobody answered in time (the sweep, and `manage.py
    expire_approvals`): each expired one, for the chat to resume and tell."""
    now = now or timezone.now()
    due = Approval.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
    return [a for a in due if _expire(a, now)]


def approval_resume(*, turn_ids: list[uuid.UUID]) -> Resume | None:
    """The decided approval a resumed turn continues: the newest of those the given
    (paused) turns asked for. None when none of them is decided yet."""
    approval = (
        Approval.objects.filter(turn_id__in=turn_ids, status__in=DECIDED)
        .order_by("-created_at", "-id")
        .first()
    )
    if approval is None:
        return None
    status = ApprovalStatus(approval.status)
    grant = None
    if status == ApprovalStatus.APPROVED:
        grant = Grant(approval.call_id, approval.decided_by or approval.by)
    return Resume(
        approval_id=approval.uuid,
        status=status,
        by=approval.by,
        start_agent=approval.start_agent,
        tool_call_id=approval.tool_call_id,
        run_state=approval.run_state,
        grant=grant,
    )


def approvals_pending(*, conversation_id: uuid.UUID) -> list[Approval]:
    return list(
        Approval.objects.filter(
            conversation_id=conversation_id, status=ApprovalStatus.PENDING
        ).order_by("created_at", "id")
    )
