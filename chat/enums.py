"""The chat app's statuses and kinds, as StrEnums (Django-free; the models take their
choices from here, as orchestrator.domain.enums does for the orchestrator's)."""

from __future__ import annotations

from orchestrator.domain.enums import LabelledEnum


class Theme(LabelledEnum):
    AUTO = "auto", "Follow the visitor's system"
    LIGHT = "light", "Light"
    DARK = "dark", "Dark"


class Position(LabelledEnum):
    RIGHT = "right", "Bottom right"
    LEFT = "left", "Bottom left"


class Role(LabelledEnum):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    STAFF = "staff", "Staff"
    SYSTEM = "system", "System"


class MessageStatus(LabelledEnum):
    PENDING = "pending", "Waiting for a reply"
    WAITING = "waiting", "Waiting for an approval"
    ANSWERED = "answered", "Answered"
    FAILED = "failed", "Reply failed"
    DONE = "done", "Done"


class TurnStatus(LabelledEnum):
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"
    BLOCKED = "blocked", "Blocked by a guardrail"
    PAUSED = "paused", "Paused for an approval"


class TurnEventKind(LabelledEnum):
    ROUTE = "route", "Routing decision"
    AGENT = "agent", "Agent changed"
    TOOL = "tool", "Tool call"
    ERROR = "error", "Error"
    GUARDRAIL = "guardrail", "Guardrail"
    APPROVAL = "approval", "Approval"


class ConversationStatus(LabelledEnum):
    """Who answers the conversation (docs/people.md): the agents, nobody yet (a person
    was asked for), a member of staff (its owner), or nobody (resolved)."""

    BOT = "bot", "Agents answer"
    WAITING = "waiting", "Waiting for a person"
    HUMAN = "human", "A person answers"
    RESOLVED = "resolved", "Resolved"


class EscalationSource(LabelledEnum):
    """What moved a conversation's status (recorded on each ConversationEvent)."""

    USER = "user", "The user asked"
    WORDS = "words", "The user asked in words (router)"
    AGENT = "agent", "An agent escalated"
    ERRORS = "errors", "No model could answer"
    FEEDBACK = "feedback", "Repeated thumbs-down"
    STAFF = "staff", "A member of staff"
    REOPEN = "reopen", "The user wrote again"


class ConversationEventKind(LabelledEnum):
    STATUS = "status", "Status changed"
    ASSIGN = "assign", "Owner changed"


class OffTopic(LabelledEnum):
    """What a site does with messages that fit none of its agents (docs/guardrails.md)."""

    ANSWER = "answer", "The fallback agent answers them (small talk, trivia, anything)"
    DECLINE = "decline", "Decline them politely (greetings and thanks are still answered)"
