"""The staff audit log (chat.models.StaffAuditEntry): what each member of staff did.

`staff_did` is called by the services that act (chat.people, chat.staff_approvals,
chat.privacy) and by the pages that show a transcript (the inbox, the staff API, the
admin), once the action succeeded. Details name ids and outcomes, never a message's
text, so the log outlives an erasure without keeping what was erased. Agents' actions
with an effect are recorded as ActionCall rows (orchestrator.actions); changes to the
registry, actions, secrets' metadata, sites and canned replies by django-auditlog
(orchestrator/apps.py, chat/apps.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from .models import StaffAuditEntry

Action = StaffAuditEntry.Action


def staff_did(
    *,
    staff: AbstractBaseUser | None,
    action: Action | str,
    conversation_id: uuid.UUID | None = None,
    **detail: Any,
) -> StaffAuditEntry:
    name = staff.get_username() if staff is not None else "command"
    return StaffAuditEntry.objects.create(
        actor=staff if getattr(staff, "pk", None) else None,
        actor_name=name[:150],
        action=action,
        conversation_id=conversation_id,
        detail={k: v for k, v in detail.items() if v not in (None, "")},
    )
