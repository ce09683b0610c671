"""What the SDK hands every tool of a run (`RunContextWrapper[TurnContext].context`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ..domain.events import Emit
from ..domain.team import Team


@dataclass
class TurnContext:
    conversation_id: uuid.UUID
    turn_id: uuid.UUID  # a workflow step's run id, in workflow steps
    team: Team
    emit: Emit | None = None  # the turn's event callback (None in workflow steps)
    claimed_workflows: set[int] = field(default_factory=set)  # answers this turn took
