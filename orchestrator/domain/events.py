"""What a turn hands to its caller: the request, the events as they happen, the outcome.

Plain data: the runtime produces these from the Agents SDK's stream, the chat app
turns them into protocol frames and records (it passes an `Emit` callback in; the
orchestrator never imports the chat app).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .attachments import TurnAttachment
from .enums import ChangeReason, ProgressStatus, TurnErrorCode, TurnResult
from .guardrails import Verdict
from .off_topic import OffTopicRule
from .routing_policy import RoutingDecision
from .words import _

# Plain words for the person chatting, by what went wrong.
MODEL_UNAVAILABLE = _(
    "We could not reach the assistant. Your message is saved; please try again in a moment."
)
# When every option failed: the message stays queued and is answered later (chat.turns.scheduler).
QUEUED_FOR_LATER = _(
    "We could not reach the assistant. Your message is saved and will be answered as soon "
    "as it is back."
)
INTERNAL_ERROR = _("Something went wrong on our side. Your message is saved; please try again.")
NO_AGENT = _("No assistant is available right now. Your message is saved.")
TOO_SLOW = _("The assistant took too long to answer. Your message is saved.")


@dataclass(frozen=True)
class AgentRef:
    slug: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"slug": self.slug, "name": self.name}


@dataclass(frozen=True)
class RouteDecided:
    decision: RoutingDecision


@dataclass(frozen=True)
class AgentChanged:
    previous: AgentRef | None
    current: AgentRef
    reason: ChangeReason


@dataclass(frozen=True)
class ToolStarted:
    agent: str
    tool: str
    call: str
    label: str


@dataclass(frozen=True)
class ToolFinished:
    call: str
    ok: bool


@dataclass(frozen=True)
class MessageDelta:
    message_id: uuid.UUID
    agent: AgentRef
    text: str


@dataclass(frozen=True)
class MessageDone:
    message_id: uuid.UUID
    agent: AgentRef
    text: str


@dataclass(frozen=True)
class WorkflowProgress:
    run_id: uuid.UUID
    workflow: str  # slug
    name: str
    status: ProgressStatus
    step: str | None  # None for the run as a whole
    agent: str | None
    done: int
    total: int


@dataclass(frozen=True)
class ApprovalRequested:
    """An action waits for a yes or no; the turn ends paused (protocol approval.request)."""

    approval_id: uuid.UUID
    agent: str  # slug
    action: str
    summary: str
    by: str  # user | staff
    expires: str  # ISO time
    arguments: dict[str, Any] = field(default_factory=dict)  # for staff (never the user's page)


TurnUpdate = (
    RouteDecided
    | AgentChanged
    | ToolStarted
    | ToolFinished
    | MessageDelta
    | MessageDone
    | WorkflowProgress
    | ApprovalRequested
)
Emit = Callable[[TurnUpdate], Awaitable[None]]


@dataclass
class TurnRequest:
    conversation_id: uuid.UUID
    turn_id: uuid.UUID
    # [{"role": "user"|"assistant", "content": "...", "agent": slug of a reply's agent}],
    # oldest first; routing reads the agents, the model gets role and content only.
    history: list[dict[str, str]]
    active_agent: str | None = None  # who answered last: follow-ups start there
    page_context: dict[str, Any] = field(default_factory=dict)
    staff_note: str = ""  # what staff told the agents when they handed the conversation back
    # People can take the conversation: when the user asks for a person, no agent answers
    # (the caller hands the conversation to staff on RouteDecided).
    people: bool = False
    user_email: str = ""  # the user's own address: replies may show it (output guardrail)
    # The site declines messages that fit no agent (None: the fallback agent answers them).
    off_topic: OffTopicRule | None = None
    # This turn resumes a run paused for an approval (orchestrator.approvals.Resume).
    resume: Any = None
    # The files the message being answered came with (docs/attachments.md).
    attachments: list[TurnAttachment] = field(default_factory=list)

    @property
    def user_text(self) -> str:
        """The message being answered: the newest user message of the history."""
        return next((m["content"] for m in reversed(self.history) if m["role"] == "user"), "")


@dataclass
class TurnOutcome:
    status: TurnResult
    final_agent: AgentRef | None
    usage: dict[str, int]
    error_code: TurnErrorCode | str = ""
    error_message: str = ""  # plain words for the person chatting
    error_detail: str = ""  # for logs and staff
    guardrail: Verdict | None = None  # the guardrail that stopped the turn (status blocked)
    guardrail_ms: float | None = None  # time the input guardrail took, tripped or not

    @classmethod
    def blocked(cls, verdict: Verdict, usage: dict[str, int] | None = None) -> TurnOutcome:
        return cls(
            TurnResult.BLOCKED, None, usage or {}, guardrail=verdict, guardrail_ms=verdict.ms
        )

    @classmethod
    def failed(cls, code: TurnErrorCode, message: str, detail: str) -> TurnOutcome:
        return cls(TurnResult.ERROR, None, {}, code, message, detail)

    @classmethod
    def cancelled(cls) -> TurnOutcome:
        """Stopped before any agent ran (a person took the conversation as it started)."""
        return cls(TurnResult.CANCELLED, None, {})

    @classmethod
    def paused(cls, agent: AgentRef | None, usage: dict[str, int]) -> TurnOutcome:
        """The turn waits for an approval (it resumes as a new turn once answered)."""
        return cls(TurnResult.PAUSED, agent, usage)

    @classmethod
    def for_people(cls) -> TurnOutcome:
        """The user asked for a person: the turn ends without an agent's answer."""
        return cls(TurnResult.OK, None, {})
