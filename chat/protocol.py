"""The chat's wire protocol, version 1 (docs/protocol.md): every frame in and out as a
typed object, the limits, the error codes and the close codes, in one place.

Client frames are parsed by `parse()` into one of `CLIENT_FRAMES` (pydantic models,
frozen); anything wrong raises `FrameError` with an `ErrorCode` and plain words for a
person (never pydantic's own text). Server frames are built as one of `SERVER_FRAMES`
and turned into text once by `ServerFrame.encode()` (pydantic's Rust serialiser: about
2 µs for a `message.delta`, faster than `json.dumps` of a dict here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Annotated, Any, ClassVar, Literal

from django.conf import settings
from django.utils.translation import gettext_lazy
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from .i18n import LOCALE_CHARS, is_language_tag
from .models import Attachment, Conversation, Message, Role

VERSION = 1
DEFAULT_SITE = "demo"  # the site of this app's own chat page: what an omitted `site` means


# --- Codes ----------------------------------------------------------------------------


class ErrorCode(StrEnum):
    """The `code` of an `error` frame."""

    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    IDENTITY_INVALID = "identity_invalid"
    MODEL_UNAVAILABLE = "model_unavailable"
    INTERNAL = "internal"

    @classmethod
    def or_internal(cls, value: str) -> ErrorCode:
        """The code named `value`; `internal` for one the protocol does not know."""
        try:
            return cls(value)
        except ValueError:
            return cls.INTERNAL


RETRYABLE = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.MODEL_UNAVAILABLE, ErrorCode.INTERNAL})


class CloseCode(IntEnum):
    """WebSocket close codes the server uses."""

    BAD_START = 4400
    IDENTITY = 4401
    FORBIDDEN = 4403
    ABUSE = 4429


# --- Limits ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """What a client may send. The first five are settings (docs/configuration.md), read
    by `limits()` for each frame, so a changed setting applies at once."""

    frame_bytes: int
    message_chars: int
    rate: str  # messages per conversation, in the `limits` library's notation
    refusals_before_close: int
    session_start_seconds: float = 15.0  # a socket without a session is closed after it

    CLIENT_ID_CHARS: ClassVar[int] = 100
    COMMENT_CHARS: ClassVar[int] = 2000
    REASON_CHARS: ClassVar[int] = 500  # a human.request's reason
    SITE_CHARS: ClassVar[int] = 64
    TOKEN_CHARS: ClassVar[int] = 200
    MESSAGE_ID_CHARS: ClassVar[int] = 64
    USER_FIELD_CHARS: ClassVar[int] = 254
    # What a conversation stores: a longer user id is refused (identity_invalid, 4401)
    # by chat.services.identity_verify, never cut; a longer name or email is a bad_frame.
    USER_ID_CHARS: ClassVar[int] = Conversation._meta.get_field("user_id").max_length
    USER_NAME_CHARS: ClassVar[int] = Conversation._meta.get_field("user_name").max_length
    USER_EMAIL_CHARS: ClassVar[int] = Conversation._meta.get_field("user_email").max_length
    # Objects and arrays nested deeper than this (the frame itself is level 1): bad_frame.
    JSON_DEPTH: ClassVar[int] = 32


def limits() -> Limits:
    """The limits, from settings: the one place the chat reads them."""
    return Limits(
        frame_bytes=settings.SUPERORCH_MAX_FRAME_BYTES,
        message_chars=settings.SUPERORCH_MAX_MESSAGE_CHARS,
        rate=settings.SUPERORCH_RATE_LIMIT,
        refusals_before_close=settings.SUPERORCH_RATE_LIMIT_CLOSE_AFTER,
        session_start_seconds=settings.SUPERORCH_SESSION_START_TIMEOUT,
    )


# --- Errors ---------------------------------------------------------------------------


class FrameError(Exception):
    """A client frame the server refuses; `message` is plain words for a person."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.ref = code, message, ref


def _refuse(code: ErrorCode, message: str) -> PydanticCustomError:
    """A validation failure in our words: its error type is the code to send."""
    return PydanticCustomError(code.value, message)


# Our words for pydantic's error types ({label} is the field's title).
_WORDS = {
    "missing": "The {label} is missing.",
    "string_type": "The {label} must be text.",
    "string_too_long": "The {label} is too long (at most {max_length} characters).",
    # An Annotated text with a BeforeValidator (a comment, a reason) reports this type.
    "too_long": "The {label} is too long (at most {max_length} characters).",
    "dict_type": "The {label} must be an object.",
    "model_type": "The {label} must be an object.",
    "model_attributes_type": "The {label} must be an object.",
    "literal_error": "The {label} must be {expected}.",
}
_CODES = {code.value: code for code in ErrorCode}


def _label(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    label = "frame"
    for part in loc:
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            break
        label = field.title or str(part)
        annotation = field.annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return label


def _words(model: type[BaseModel], error: ErrorDetails) -> tuple[ErrorCode, str]:
    kind = error["type"]
    if kind in _CODES:  # raised by our own validators, in our own words
        return _CODES[kind], error["msg"]
    if kind == "string_type" and error.get("input", "") is None:
        kind = "missing"  # a null text counts as absent
    template = _WORDS.get(kind, "The {label} is not valid.")
    return ErrorCode.BAD_FRAME, template.format(
        label=_label(model, error["loc"]), **error.get("ctx", {})
    )


# --- Client frames --------------------------------------------------------------------


def _none_as(default: Any) -> BeforeValidator:
    return BeforeValidator(lambda value: default() if value is None else value)


class ClientFrame(BaseModel):
    """A frame from the client, validated. Unknown fields are ignored."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")
    ref_field: ClassVar[str | None] = None  # whose value an error's `ref` carries

    @classmethod
    def from_wire(cls, data: dict[str, Any], limits: Limits) -> ClientFrame:
        try:
            return cls.model_validate(data, context=limits)
        except ValidationError as exc:
            first = exc.errors()[0]
            code, message = _words(cls, first)
            raise FrameError(code, message, cls._ref(data, exc)) from None

    @classmethod
    def _ref(cls, data: dict[str, Any], exc: ValidationError) -> str | None:
        """The frame's reference (a client message id), unless it is itself at fault."""
        key = cls.ref_field
        if key is None or any(e["loc"][:1] == (key,) for e in exc.errors()):
            return None
        value = data.get(key)
        return value if isinstance(value, str) and value else None


class User(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    id: str | None = Field(None, title="user id")  # its length: services.identity_verify
    name: str | None = Field(None, max_length=Limits.USER_NAME_CHARS, title="user name")
    email: str | None = Field(None, max_length=Limits.USER_EMAIL_CHARS, title="user email")
    hash: str | None = Field(None, max_length=Limits.USER_FIELD_CHARS, title="user hash")


def _protocol_one(value: Any) -> Any:
    if type(value) is not int or value != VERSION:  # not true, not 1.0
        raise _refuse(ErrorCode.BAD_FRAME, "This server speaks protocol version 1.")
    return value


class SessionStart(ClientFrame):
    type: Literal["session.start"] = "session.start"
    protocol: Annotated[Any, BeforeValidator(_protocol_one)] = VERSION
    site: Annotated[
        str, _none_as(lambda: DEFAULT_SITE), Field(max_length=Limits.SITE_CHARS, title="site key")
    ] = DEFAULT_SITE
    token: str | None = Field(None, max_length=Limits.TOKEN_CHARS, title="conversation token")
    since: str | None = Field(None, max_length=Limits.MESSAGE_ID_CHARS, title="'since' message id")
    user: Annotated[User, _none_as(dict), Field(title="user")] = User()
    context: Annotated[dict[str, Any], _none_as(dict), Field(title="context")] = {}
    # **Addition:** the language the user wants (chat/i18n.py); one the chat lacks falls back.
    locale: Annotated[str, _none_as(str), Field(max_length=LOCALE_CHARS, title="locale")] = ""

    @field_validator("site")
    @classmethod
    def _site_or_default(cls, value: str) -> str:
        return value or DEFAULT_SITE

    @field_validator("locale")
    @classmethod
    def _locale_a_tag(cls, value: str) -> str:
        if value and not is_language_tag(value):
            raise _refuse(
                ErrorCode.BAD_FRAME, "The locale must be a language tag, like de or fr-CA."
            )
        return value


class MessageSend(ClientFrame):
    type: Literal["message.send"] = "message.send"
    id: str = Field(max_length=Limits.CLIENT_ID_CHARS, title="message id")
    text: str = Field(title="message")
    ref_field: ClassVar[str | None] = "id"

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise _refuse(ErrorCode.BAD_FRAME, "The message id is missing.")
        return value

    @field_validator("text")
    @classmethod
    def _text_within_limits(cls, value: str, info: ValidationInfo) -> str:
        limit = info.context.message_chars
        if len(value) > limit:
            raise _refuse(
                ErrorCode.TOO_LARGE, f"The message is too long (at most {limit} characters)."
            )
        value = value.strip()
        if not value:
            raise _refuse(ErrorCode.BAD_FRAME, "The message is empty.")
        return value


class TurnCancel(ClientFrame):
    type: Literal["turn.cancel"] = "turn.cancel"


class Feedback(ClientFrame):
    type: Literal["feedback"] = "feedback"
    message: str = Field(max_length=Limits.MESSAGE_ID_CHARS, title="message id")
    value: Literal["up", "down"] = Field(title="feedback")
    comment: Annotated[
        str, _none_as(str), Field(max_length=Limits.COMMENT_CHARS, title="comment")
    ] = ""
    ref_field: ClassVar[str | None] = "message"


class Ping(ClientFrame):
    type: Literal["ping"] = "ping"


class ContextUpdate(ClientFrame):
    type: Literal["context.update"] = "context.update"
    context: dict[str, Any] = Field(title="context")


class HumanRequest(ClientFrame):
    """The user asks for a person (docs/people.md)."""

    type: Literal["human.request"] = "human.request"
    reason: Annotated[str, _none_as(str), Field(max_length=Limits.REASON_CHARS, title="reason")] = (
        ""
    )


def _score_one_to_five(value: Any) -> Any:
    if type(value) is not int or not 1 <= value <= 5:  # not true, not 4.5, not "5"
        raise _refuse(ErrorCode.BAD_FRAME, "The score must be a whole number from 1 to 5.")
    return value


class Csat(ClientFrame):
    """The user rates a resolved conversation, 1 to 5."""

    type: Literal["csat"] = "csat"
    score: Annotated[Any, BeforeValidator(_score_one_to_five), Field(title="score")]
    comment: Annotated[
        str, _none_as(str), Field(max_length=Limits.COMMENT_CHARS, title="comment")
    ] = ""


class ContactEmail(ClientFrame):
    """**Addition:** where the user wants to be answered (out of hours, say)."""

    type: Literal["contact.email"] = "contact.email"
    email: str = Field(max_length=Limits.USER_EMAIL_CHARS, title="email address")


class ApprovalRespond(ClientFrame):
    """The user's yes or no to an action (`approval.request`). Answering twice changes
    nothing."""

    type: Literal["approval.respond"] = "approval.respond"
    approval: str = Field(min_length=1, max_length=64, title="approval id")
    approve: bool = Field(title="approve", strict=True)


def _frame_type(model: type[BaseModel]) -> str:
    return model.model_fields["type"].default


CLIENT_FRAMES: dict[str, type[ClientFrame]] = {
    _frame_type(m): m
    for m in (
        SessionStart,
        MessageSend,
        TurnCancel,
        Feedback,
        Ping,
        ContextUpdate,
        HumanRequest,
        Csat,
        ContactEmail,
        ApprovalRespond,
    )
}


def _over(text: str, limit: int) -> bool:
    """Whether `text` is over `limit` bytes in UTF-8 (encoding it only when in doubt)."""
    if len(text) > limit:
        return True
    return len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


def _size(bounds: Limits) -> str:
    kib, rest = divmod(bounds.frame_bytes, 1024)
    return f"{kib} KB" if kib and not rest else f"{bounds.frame_bytes} bytes"


def valid_text(text: str) -> bool:
    """Whether `text` can be stored and sent anywhere: no lone surrogate (it has no UTF-8),
    no NUL character (PostgreSQL refuses it in text and JSON)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_TOO_DEEP = "That frame is nested too deeply (at most {depth} levels)."
_BAD_TEXT = "That frame holds text that is not valid Unicode."


def tree_problem(data: Any, max_depth: int) -> str | None:
    """Plain words for the first thing wrong in a decoded frame, or None: objects and
    arrays nested deeper than `max_depth`, keys or strings that are not valid text.
    Iterative, so no depth can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                return _TOO_DEEP.format(depth=max_depth)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
            if isinstance(value, dict) and not all(valid_text(key) for key in value):
                return _BAD_TEXT
        elif isinstance(value, str) and not valid_text(value):
            return _BAD_TEXT
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: JSON has no such numbers


def _decode(text_data: str) -> Any:
    try:
        data = json.loads(text_data, parse_constant=_no_constant)
    except ValueError:
        raise FrameError(ErrorCode.BAD_FRAME, "That frame was not valid JSON.") from None
    except RecursionError:
        raise FrameError(ErrorCode.BAD_FRAME, _TOO_DEEP.format(depth=Limits.JSON_DEPTH)) from None
    problem = tree_problem(data, Limits.JSON_DEPTH)
    if problem:
        raise FrameError(ErrorCode.BAD_FRAME, problem)
    return data


def parse(text_data: str | None, bytes_data: bytes | None = None) -> ClientFrame:
    """Decode and validate one client frame; raises FrameError."""
    if text_data is None:
        raise FrameError(ErrorCode.BAD_FRAME, "Frames must be JSON text, not binary.")
    bounds = limits()
    if _over(text_data, bounds.frame_bytes):
        raise FrameError(
            ErrorCode.TOO_LARGE, f"That was too large to send (the limit is {_size(bounds)})."
        )
    data = _decode(text_data)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise FrameError(
            ErrorCode.BAD_FRAME, "Each frame must be a JSON object with a text field 'type'."
        )
    model = CLIENT_FRAMES.get(data["type"])
    if model is None:
        raise FrameError(
            ErrorCode.UNKNOWN_TYPE, f"The frame type {data['type'][:40]!r} is not known."
        )
    return model.from_wire(data, bounds)


# --- Server frames --------------------------------------------------------------------


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AgentPayload(Payload):
    slug: str
    name: str


class AttachmentPayload(Payload):
    """**Addition:** the file a user message came with (docs/attachments.md). `url` is
    where the conversation's pages fetch it (its `key` stands for the token: an <img>
    sends no header); `width` and `height` for images only."""

    id: str
    name: str
    kind: Literal["png", "jpeg", "gif", "webp", "pdf"]
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None
    url: str

    @classmethod
    def from_attachment(cls, attachment: Attachment) -> AttachmentPayload:
        return cls(
            id=str(attachment.uuid),
            name=attachment.name,
            kind=attachment.kind,
            content_type=attachment.content_type,
            size=attachment.size,
            width=attachment.width,
            height=attachment.height,
            url=attachment.user_url,
        )


def _loaded_attachment(message: Message) -> Attachment | None:
    """The message's attachment if it was read with it (select_related), else None: the
    payload never queries (it is built on event loops too)."""
    return message._state.fields_cache.get("attachment")


class MessagePayload(Payload):
    """The message object. `client_id` is sent for user messages only; **addition:**
    `attachment` only for a message that came with a file."""

    id: str
    role: Role
    agent: AgentPayload | None
    text: str
    created: str  # ISO 8601, UTC, with a Z
    client_id: str | None = None
    attachment: AttachmentPayload | None = None

    @classmethod
    def from_message(cls, message: Message, attachment: Attachment | None = None) -> MessagePayload:
        attachment = attachment or _loaded_attachment(message)
        return cls(
            id=str(message.uuid),
            role=message.role,
            agent=AgentPayload(slug=message.agent_slug, name=message.agent_name)
            if message.agent_slug
            else None,
            text=message.text,
            created=message.created_at.isoformat().replace("+00:00", "Z"),
            client_id=message.client_id,
            attachment=AttachmentPayload.from_attachment(attachment) if attachment else None,
        )

    @model_serializer(mode="wrap")
    def _client_id_for_users(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if self.role != Role.USER:
            del data["client_id"]
        if data.get("attachment") is None:
            data.pop("attachment", None)
        return data


class WorkflowPayload(Payload):
    id: str
    slug: str
    name: str


class UsagePayload(Payload):
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @classmethod
    def from_counts(cls, usage: dict[str, int]) -> UsagePayload:
        return cls(
            requests=usage.get("requests", 0),
            input_tokens=usage.get("input_tokens", 0),
            output_tokens=usage.get("output_tokens", 0),
        )


class ServerFrame(Payload):
    """A frame to the client. `encode()` gives its text, once, for every socket."""

    def encode(self) -> str:
        return self.model_dump_json(by_alias=True)


class TurnFrame(ServerFrame):
    """A frame of a running turn. **Addition:** `seq` numbers the frames of one turn
    1, 2, 3... as its runner sends them, so a client sees a gap (a frame the channel
    layer lost) and resyncs; left out when the frame is sent outside the runner."""

    seq: int | None = None

    @model_serializer(mode="wrap")
    def _seq_when_numbered(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        seq = data.pop("seq", None)
        if seq is not None:
            data["seq"] = seq  # last: `type` stays first on the wire
        return data


class RunningTurn(Payload):
    """**Addition** to session.ready: the turn running now (the page keeps its Stop button
    and follows the turn's frames from where it joins)."""

    id: str
    reply_to: str


class StaffPayload(Payload):
    name: str


class StatusPayload(Payload):
    """The conversation's status object (session.ready's `status`, conversation.status).
    **Additions:** `opens_at`, `message`, `csat`, `email_saved`."""

    status: Literal["bot", "waiting", "human", "resolved"]
    staff: StaffPayload | None
    eta_seconds: int | None
    open_now: bool
    opens_at: str | None = None  # the next opening (ISO 8601, the site's time zone) when closed
    message: str = ""  # what happens next, in plain words ("" for bot)
    csat: int | None = None  # the rating given, once given
    email_saved: bool = False  # the user left an email address (contact.email)


class StatusChanged(ServerFrame, StatusPayload):
    """`conversation.status`: sent to every socket of the conversation on each change."""

    type: Literal["conversation.status"] = "conversation.status"

    @classmethod
    def of(cls, payload: StatusPayload) -> StatusChanged:
        return cls(**dict(payload))

    @model_serializer(mode="wrap")
    def _type_first(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        return {"type": data.pop("type"), **data}


class SessionReady(ServerFrame):
    type: Literal["session.ready"] = "session.ready"
    conversation: str
    token: str
    agent: AgentPayload | None
    greeting: str
    suggestions: list[str]
    messages: list[MessagePayload]
    status: StatusPayload
    turn: RunningTurn | None = None
    locale: str = "en"  # **Addition:** the language the chat speaks in this session


class MessageAck(ServerFrame):
    type: Literal["message.ack"] = "message.ack"
    id: str
    message: MessagePayload


class TurnStarted(TurnFrame):
    type: Literal["turn.started"] = "turn.started"
    turn: str
    reply_to: str


class AgentChanged(TurnFrame):
    type: Literal["agent.changed"] = "agent.changed"
    turn: str
    from_: AgentPayload | None = Field(alias="from")
    to: AgentPayload
    reason: Literal["route", "handoff", "fallback", "human"]


class ToolStarted(TurnFrame):
    type: Literal["tool.started"] = "tool.started"
    turn: str
    agent: str
    tool: str
    call: str
    label: str


class ToolFinished(TurnFrame):
    type: Literal["tool.finished"] = "tool.finished"
    turn: str
    call: str
    ok: bool


class MessageDelta(TurnFrame):
    type: Literal["message.delta"] = "message.delta"
    turn: str
    message: str
    agent: str
    text: str


class MessageDone(TurnFrame):
    """A finished message; `turn` is None for one no turn produced (staff, workflows)."""

    type: Literal["message.done"] = "message.done"
    turn: str | None
    message: MessagePayload


class WorkflowProgress(TurnFrame):
    type: Literal["workflow.progress"] = "workflow.progress"
    turn: str
    workflow: WorkflowPayload
    status: Literal["started", "finished", "failed", "retrying", "done"]
    step: str | None
    agent: str | None
    done: int
    total: int


class TurnDone(TurnFrame):
    type: Literal["turn.done"] = "turn.done"
    turn: str
    # "blocked": a guardrail stopped the turn, after a plain-words message.done;
    # "paused": it waits for an approval and resumes as a new turn once answered.
    status: Literal["ok", "error", "cancelled", "blocked", "paused"]
    usage: UsagePayload = UsagePayload()


class TurnProgress(TurnFrame):
    """**Addition:** the turn is still working, though nothing came for a while."""

    type: Literal["turn.progress"] = "turn.progress"
    turn: str
    message: str
    elapsed: float  # seconds since the turn started


class ApprovalRequest(TurnFrame):
    """An action waits for a yes or no: from the user when `by` is "user", from staff
    when it is "staff". Nothing has been done yet."""

    type: Literal["approval.request"] = "approval.request"
    turn: str
    approval: str
    agent: str
    action: str
    summary: str
    by: Literal["user", "staff"]
    expires: str


class ApprovalResolved(ServerFrame):
    type: Literal["approval.resolved"] = "approval.resolved"
    approval: str
    outcome: Literal["approved", "declined", "expired"]


class FeedbackAck(ServerFrame):
    type: Literal["feedback.ack"] = "feedback.ack"
    message: str


class Pong(ServerFrame):
    type: Literal["pong"] = "pong"


# Plain words for the errors the server itself decides (validation errors carry their own),
# in the session's language (chat.consumers activates it).
DEFAULT_WORDS = {
    ErrorCode.RATE_LIMITED: gettext_lazy(
        "You are sending messages too quickly. Please wait a moment and try again."
    ),
    ErrorCode.NOT_FOUND: gettext_lazy("That reply could not be found."),
    ErrorCode.FORBIDDEN: gettext_lazy("This chat is not available here."),
    ErrorCode.INTERNAL: gettext_lazy("Something went wrong on our side. Please try again."),
}


class Error(ServerFrame):
    """`retryable` follows the code unless given; `ref` is left out when there is none;
    `message` defaults to DEFAULT_WORDS[code]."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    retryable: bool
    ref: str | None = None
    seq: int | None = None  # **Addition**: the turn's frame number, for a turn's own error

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            code = ErrorCode(data["code"])
            data = {"retryable": code in RETRYABLE, "message": DEFAULT_WORDS.get(code), **data}
            if data["message"] is not None:
                data["message"] = str(data["message"])  # a lazy translation, now
            ref = data.get("ref") or None
            # A ref that cannot be sent (a lone surrogate, say) is left out, never echoed.
            data["ref"] = ref if isinstance(ref, str) and valid_text(ref) else None
        return data

    @classmethod
    def from_frame_error(cls, exc: FrameError) -> Error:
        return cls(code=exc.code, message=exc.message, ref=exc.ref)

    def encode(self) -> str:
        return self.model_dump_json(exclude_none=True)


SERVER_FRAMES: dict[str, type[ServerFrame]] = {
    _frame_type(m): m
    for m in (
        SessionReady,
        MessageAck,
        TurnStarted,
        MessageDelta,
        MessageDone,
        AgentChanged,
        ToolStarted,
        ToolFinished,
        WorkflowProgress,
        TurnProgress,
        TurnDone,
        ApprovalRequest,
        ApprovalResolved,
        FeedbackAck,
        StatusChanged,
        Pong,
        Error,
    )
}
