"""Every status and kind the orchestrator stores or compares, as StrEnums.

Django-free: the models take their choices from here (`Enum.choices()`), and pure
code compares against the same members. A member is its value (`RunStatus.OK ==
"ok"`), so rows, JSON and frames carry plain strings.
"""

from __future__ import annotations

from enum import StrEnum


class LabelledEnum(StrEnum):
    """A StrEnum whose members carry a human label: `NAME = "value", "Label"`."""

    label: str

    def __new__(cls, value: str, label: str = "") -> LabelledEnum:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label or value.replace("_", " ").capitalize()
        return member

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(m.value, m.label) for m in cls]


class AgentRole(LabelledEnum):
    ORCHESTRATOR = "orchestrator", "Orchestrator"
    SPECIALIST = "specialist", "Specialist"
    FALLBACK = "fallback", "Fallback"


class ModelProvider(LabelledEnum):
    AUTO = "auto", "Automatic (OpenAI-compatible URL, else OpenAI key, else offline model)"
    LOCAL = "local", "Local offline model"
    OPENAI = "openai", "OpenAI (OPENAI_API_KEY)"
    COMPATIBLE = "openai_compatible", "OpenAI-compatible server (OPENAI_BASE_URL)"


class UnsurePolicy(LabelledEnum):
    FALLBACK = "fallback", "Send it to the fallback agent"
    ORCHESTRATOR = "orchestrator", "Let the orchestrator's LLM decide (when an LLM is configured)"


class RunStatus(LabelledEnum):
    """An AgentRun's status: one agent's part in a turn or a workflow step."""

    RUNNING = "running", "Running"
    OK = "ok", "OK"
    HANDOFF = "handoff", "Handed off"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"


class ErrorKind(LabelledEnum):
    """What kind of model failure ended a run (the breaker and the dashboard count them)."""

    TIMEOUT = "timeout", "Timeout"
    RATE_LIMITED = "rate_limited", "Rate limited"
    SERVER_ERROR = "server_error", "Server error"
    BAD_RESPONSE = "bad_response", "Bad response"
    STREAM_BROKEN = "stream_broken", "Stream broken"
    CONNECTION = "connection", "Connection failed"
    OTHER = "other", "Other"


class TurnResult(StrEnum):
    """How a turn ended (chat.models.TurnStatus stores the same values)."""

    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"  # a guardrail stopped it (docs/guardrails.md)
    PAUSED = "paused"  # it waits for an approval, and resumes as a new turn once answered


class TurnErrorCode(StrEnum):
    """The protocol error code a failed turn reports."""

    MODEL_UNAVAILABLE = "model_unavailable"
    INTERNAL = "internal"


class GuardrailName(LabelledEnum):
    """Which guardrail stopped a turn (recorded on the turn; docs/guardrails.md)."""

    INPUT = "input", "Input: the offline classifier"
    INPUT_LLM = "input_llm", "Input: the model's check"
    OUTPUT = "output", "Output: a reply that would have leaked"
    OFF_TOPIC = "off_topic", "Off-topic: the site declines messages no agent fits"


class ChangeReason(StrEnum):
    """Why another agent took over the conversation (agent.changed's `reason`)."""

    ROUTE = "route"
    HANDOFF = "handoff"
    FALLBACK = "fallback"


class RoutePath(StrEnum):
    """How routing chose where a turn starts."""

    FAST = "fast"
    ORCHESTRATOR = "orchestrator"
    FALLBACK = "fallback"
    STICKY = "sticky"


class ConversationMove(StrEnum):
    """What a message does to the conversation, as routing read it (recorded with the
    decision; `routing_eval --dialogues` scores turns by the kind a person gave them)."""

    FIRST = "first"  # no specialist yet
    FOLLOW_UP = "follow_up"  # stays with the specialist
    TOPIC_CHANGE = "topic_change"  # another specialist
    ASIDE = "aside"  # fits no one: the fallback agent answers, the specialist is kept
    RETURN = "return"  # back to the specialist the conversation was with before an aside
    PERSON = "person"  # asks for a person (the fallback agent until staff can take over)


class BreakerState(LabelledEnum):
    CLOSED = "closed", "Closed (healthy)"
    OPEN = "open", "Open (skipped by routing)"
    HALF_OPEN = "half_open", "Half-open (trying again)"


class WorkflowStatus(LabelledEnum):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    OK = "ok", "Finished"
    FAILED = "failed", "Failed"


class StepKind(LabelledEnum):
    AGENT = "agent", "Agent step"
    CONDITION = "condition", "Condition"


class StepStatus(LabelledEnum):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"
    OK = "ok", "OK"
    FALLBACK = "fallback", "OK, by its fallback"
    FAILED = "failed", "Failed"


class ProgressStatus(StrEnum):
    """A workflow.progress report's status."""

    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    RETRYING = "retrying"
    DONE = "done"


class AlertMetric(LabelledEnum):
    ERROR_RATE = "error_rate", "Error rate (share of runs that failed)"
    P95_MS = "p95_ms", "p95 response time (ms)"


class HttpMethod(LabelledEnum):
    GET = "GET", "GET (a read)"
    POST = "POST", "POST"
    PUT = "PUT", "PUT"
    PATCH = "PATCH", "PATCH"
    DELETE = "DELETE", "DELETE"


class ApprovalPolicy(LabelledEnum):
    """Who must say yes before an action runs (docs/actions.md, "Approvals")."""

    NONE = "none", "No approval"
    USER = "user", "The user approves"
    STAFF = "staff", "A member of staff approves"
    STAFF_ABOVE = "staff_above", "The user approves; staff above an amount"


class ActionCallStatus(LabelledEnum):
    """How one call of a tool or an action ended (ActionCall.status)."""

    OK = "ok", "OK"
    FAILED = "failed", "Failed"  # the system answered with an error, timed out, too large...
    INVALID = "invalid", "Invalid arguments"
    REFUSED = "refused", "Refused (not permitted)"
    NEEDS_APPROVAL = "needs_approval", "Needs approval"
    DECLINED = "declined", "Declined (not approved)"
    EXPIRED = "expired", "Approval expired"


class ApprovalStatus(LabelledEnum):
    """Where an approval stands (protocol `approval.resolved` outcomes, and pending)."""

    PENDING = "pending", "Waiting for an answer"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"
