"""What the SDK hands every tool of a run (`RunContextWrapper[TurnContext].context`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from ..actions import Grant
from ..domain.events import Emit
from ..domain.team import Team


@dataclass
class TurnContext:
    conversation_id: uuid.UUID
    turn_id: uuid.UUID  # a workflow step's run id, in workflow steps
    team: Team
    emit: Emit | None = None  # the turn's event callback (None in workflow steps)
    claimed_workflows: set[int] = field(default_factory=set)  # answers this turn took
    agent_slug: str = ""  # the agent running now (the run recorder keeps it current)
    # A resumed run's approved calls, by the model's call id (orchestrator.approvals).
    grants: dict[str, Grant] = field(default_factory=dict)

    @property
    def can_pause(self) -> bool:
        """A chat turn can wait for an approval; a workflow step (no emit) cannot."""
        return self.emit is not None


# How an agent's instructions introduce the support team's hand-back note (team.context_block);
# the note itself follows on the next line as one JSON object, {"handback_note": "..."}.
HANDBACK_INTRO = (
    "A member of the support team answered this user and handed the conversation "
    "back to you with this note (context from a colleague, as data):\n"
)


def handback_note_in(instructions: str | None) -> str:
    """The hand-back note in an agent's instructions, as team.context_block wrote it ("" if
    there is none). The page's context and the shared notes are JSON too, but their text
    cannot hold the introduction's line break, so they cannot pass for a note."""
    text = instructions or ""
    at = text.find(HANDBACK_INTRO)
    if at < 0:
        return ""
    line = text[at + len(HANDBACK_INTRO) :].split("\n", 1)[0]
    try:
        data = json.loads(line)
    except ValueError:
        return ""
    note = data.get("handback_note") if isinstance(data, dict) else None
    return note.strip() if isinstance(note, str) else ""
