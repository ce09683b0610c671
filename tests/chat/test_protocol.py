"""The protocol module (chat/protocol.py): every client frame parsed, valid and not; every
server frame encoded as docs/protocol.md writes it; errors in plain words."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

import pytest

from chat import protocol
from chat.models import Message
from chat.protocol import CloseCode, ErrorCode, FrameError

# Words that would mean pydantic (or Python) is talking to the user, not us.
LEAKS = ("Input should", "validation error", "pydantic", "Traceback", "type=", "errors.")


def parse(frame) -> protocol.ClientFrame:
    return protocol.parse(
        frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False)
    )


def refused(frame) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse(frame)
    error = caught.value
    assert isinstance(error.code, ErrorCode)
    assert error.message and error.message[0].isupper() and error.message.endswith((".", ")"))
    for leak in LEAKS:
        assert leak not in error.message, error.message
    return error


# --- Client frames: valid --------------------------------------------------------------


def test_session_start_with_every_field_and_with_none():
    full = parse(
        {
            "type": "session.start",
            "protocol": 1,
            "site": "acme",
            "token": "t" * 43,
            "since": str(uuid.uuid4()),
            "user": {"id": "u-42", "name": "Ada", "email": "ada@example.com", "hash": "ab"},
            "context": {"page": "/pricing"},
            "unknown": "ignored",
        }
    )
    assert isinstance(full, protocol.SessionStart)
    assert (full.site, full.token, full.context) == ("acme", "t" * 43, {"page": "/pricing"})
    assert full.user.model_dump() == {
        "id": "u-42",
        "name": "Ada",
        "email": "ada@example.com",
        "hash": "ab",
    }
    bare = parse({"type": "session.start"})
    assert (bare.protocol, bare.site, bare.token, bare.since) == (1, "demo", None, None)
    assert bare.user.model_dump() == {"id": None, "name": None, "email": None, "hash": None}
    assert bare.context == {}
    nulls = parse({"type": "session.start", "site": "", "user": None, "context": None})
    assert (nulls.site, nulls.context) == ("demo", {})


def test_message_send_is_trimmed_and_may_be_exactly_at_the_limit(settings):
    frame = parse({"type": "message.send", "id": "c-1", "text": "  I was charged twice \n"})
    assert isinstance(frame, protocol.MessageSend)
    assert (frame.id, frame.text) == ("c-1", "I was charged twice")
    settings.SUPERORCH_MAX_MESSAGE_CHARS = 10
    assert parse({"type": "message.send", "id": "c-2", "text": "x" * 10}).text == "x" * 10


def test_the_small_frames():
    assert isinstance(parse({"type": "turn.cancel"}), protocol.TurnCancel)
    assert isinstance(parse({"type": "ping"}), protocol.Ping)
    update = parse({"type": "context.update", "context": {"page": "/checkout"}})
    assert isinstance(update, protocol.ContextUpdate) and update.context == {"page": "/checkout"}
    feedback = parse({"type": "feedback", "message": "m-1", "value": "down", "comment": "vague"})
    assert isinstance(feedback, protocol.Feedback)
    assert (feedback.message, feedback.value, feedback.comment) == ("m-1", "down", "vague")
    assert parse({"type": "feedback", "message": "m-1", "value": "up"}).comment == ""
    assert parse({"type": "feedback", "message": "m", "value": "up", "comment": None}).comment == ""


def test_every_client_frame_type_has_a_model():
    assert set(protocol.CLIENT_FRAMES) == {
        "session.start",
        "message.send",
        "turn.cancel",
        "feedback",
        "ping",
        "context.update",
        "human.request",
        "csat",
        "contact.email",  # Addition (people in the loop)
        "approval.respond",
    }


# --- Client frames: invalid ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["{not json", "[1, 2]", '"text"', "null", "42", '{"no": "type"}', '{"type": 7}'],
)
def test_what_is_not_a_frame_is_a_bad_frame(raw):
    error = refused(raw)
    assert (error.code, error.ref) == (ErrorCode.BAD_FRAME, None)


def test_binary_frames_are_bad_frames():
    with pytest.raises(FrameError) as caught:
        protocol.parse(None, b'{"type": "ping"}')
    assert caught.value.code == ErrorCode.BAD_FRAME


def test_an_unknown_type_is_unknown_type():
    error = refused({"type": "message.delete", "id": "c-1"})
    assert error.code == ErrorCode.UNKNOWN_TYPE and "message.delete" in error.message
    assert refused({"type": "x" * 500}).message.count("x") <= 40
    # A server frame sent by a client is not a client frame.
    assert refused({"type": "message.delta"}).code == ErrorCode.UNKNOWN_TYPE


def test_a_frame_over_the_byte_limit_is_too_large_and_not_read(settings):
    settings.SUPERORCH_MAX_FRAME_BYTES = 100
    error = refused({"type": "message.send", "id": "c-1", "text": "x" * 100})
    assert (error.code, error.ref) == (ErrorCode.TOO_LARGE, None)
    assert "100 bytes" in error.message
    # Bytes, not characters: 30 characters of four bytes each are 120 bytes.
    assert refused({"type": "ping", "pad": "😀" * 30}).code == ErrorCode.TOO_LARGE
    assert isinstance(parse({"type": "ping", "pad": "é" * 20}), protocol.Ping)


@pytest.mark.parametrize(
    ("frame", "code", "ref"),
    [
        ({"id": "c-1"}, "bad_frame", "c-1"),  # no text
        ({"id": "c-1", "text": None}, "bad_frame", "c-1"),
        ({"text": "no id"}, "bad_frame", None),
        ({"id": "   ", "text": "blank id"}, "bad_frame", None),
        ({"id": "", "text": "empty id"}, "bad_frame", None),
        ({"id": 7, "text": "numeric id"}, "bad_frame", None),
        ({"id": "c" * 101, "text": "long id"}, "bad_frame", None),
        ({"id": "c-2", "text": "   \n "}, "bad_frame", "c-2"),
        ({"id": "c-3", "text": 42}, "bad_frame", "c-3"),
        ({"id": "c-4", "text": ["a"]}, "bad_frame", "c-4"),
    ],
)
def test_message_send_errors_carry_the_client_id_when_it_is_valid(frame, code, ref):
    error = refused({"type": "message.send", **frame})
    assert (error.code, error.ref) == (code, ref)


def test_an_over_long_message_is_too_large_with_its_ref(settings):
    settings.SUPERORCH_MAX_MESSAGE_CHARS = 10
    error = refused({"type": "message.send", "id": "c-1", "text": "y" * 11})
    assert (error.code, error.ref) == (ErrorCode.TOO_LARGE, "c-1")
    assert "10" in error.message
    # Other over-long fields are bad frames, whatever their words say.
    error = refused({"type": "message.send", "id": "c" * 101, "text": "y"})
    assert error.code == ErrorCode.BAD_FRAME and "too long" in error.message


@pytest.mark.parametrize(
    "fields",
    [
        {"protocol": 2},
        {"protocol": "1"},
        {"protocol": None},
        {"site": 5},
        {"site": "s" * 65},
        {"token": 12},
        {"token": "t" * 201},
        {"since": ["x"]},
        {"user": "ada"},
        {"user": [1]},
        {"user": {"id": 42}},
        {"user": {"email": "e" * 255}},
        {"context": "page"},
        {"context": [1]},
    ],
)
def test_session_start_errors(fields):
    error = refused({"type": "session.start", **fields})
    assert (error.code, error.ref) == (ErrorCode.BAD_FRAME, None)


def test_session_start_error_words_name_the_field():
    assert refused({"type": "session.start", "protocol": 2}).message == (
        "This server speaks protocol version 1."
    )
    assert refused({"type": "session.start", "user": [1]}).message == "The user must be an object."
    assert refused({"type": "session.start", "user": {"id": 4}}).message == (
        "The user id must be text."
    )
    assert (
        "at most 200 characters" in refused({"type": "session.start", "token": "t" * 201}).message
    )


@pytest.mark.parametrize(
    ("fields", "ref"),
    [
        ({"value": "up"}, None),  # no message id
        ({"message": 3, "value": "up"}, None),
        ({"message": "m-1"}, "m-1"),  # no value
        ({"message": "m-1", "value": "meh"}, "m-1"),
        ({"message": "m-1", "value": 1}, "m-1"),
        ({"message": "m-1", "value": "up", "comment": "c" * 2001}, "m-1"),
        ({"message": "m-1", "value": "up", "comment": 5}, "m-1"),
    ],
)
def test_feedback_errors(fields, ref):
    error = refused({"type": "feedback", **fields})
    assert (error.code, error.ref) == (ErrorCode.BAD_FRAME, ref)


def test_feedback_value_words():
    assert refused({"type": "feedback", "message": "m", "value": "meh"}).message == (
        "The feedback must be 'up' or 'down'."
    )


@pytest.mark.parametrize("context", [None, "page", [1], 3])
def test_context_update_needs_an_object(context):
    frame = (
        {"type": "context.update"}
        if context is None
        else {"type": "context.update", "context": context}
    )
    error = refused(frame)
    assert error.code == ErrorCode.BAD_FRAME and "context" in error.message


def test_client_frames_are_frozen():
    frame = parse({"type": "message.send", "id": "c-1", "text": "hi"})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        frame.text = "changed"


# --- Fuzz ------------------------------------------------------------------------------

VALUES = [None, True, 0, 1, 2, -1, 1.5, "", " ", "x", "up", "demo", "é" * 3, [], [1], {}, {"a": 1}]


def _random_value(rng: random.Random, depth: int = 0):
    if depth < 2 and rng.random() < 0.15:
        return {rng.choice(["id", "name", "hash", "page"]): _random_value(rng, depth + 1)}
    if rng.random() < 0.1:
        return "z" * rng.choice([63, 64, 65, 100, 101, 254, 255, 2001])
    return rng.choice(VALUES)


def test_random_frames_are_parsed_or_refused_in_plain_words():
    """A cheap stand-in for hypothesis (not installed): thousands of random frames of
    every type; each is a frame of its type or a FrameError in our words."""
    rng = random.Random(20261203)
    fields = ["protocol", "site", "token", "since", "user", "context", "id", "text"]
    fields += ["message", "value", "comment"]
    for _ in range(4000):
        kind = rng.choice([*protocol.CLIENT_FRAMES, "nope", 3, None])
        frame = {k: _random_value(rng) for k in rng.sample(fields, rng.randint(0, 5))}
        if kind is not None:
            frame["type"] = kind
        try:
            parsed = parse(frame)
        except FrameError as exc:
            assert isinstance(exc.code, ErrorCode)
            assert exc.ref is None or isinstance(exc.ref, str)
            for leak in LEAKS:
                assert leak not in exc.message, (frame, exc.message)
        else:
            assert protocol.CLIENT_FRAMES[kind] is type(parsed)


# --- Server frames ---------------------------------------------------------------------


def _message(**fields) -> Message:
    defaults = {
        "uuid": uuid.uuid4(),
        "role": "assistant",
        "text": "Hello, *there*",
        "created_at": datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC),
    }
    return Message(**{**defaults, **fields})


def test_the_message_payload():
    user = _message(role="user", client_id="c-1", text="Hi é")
    data = protocol.MessagePayload.from_message(user).model_dump(mode="json")
    assert data == {
        "id": str(user.uuid),
        "role": "user",
        "agent": None,
        "text": "Hi é",
        "created": "2026-11-25T10:00:00.123456Z",
        "client_id": "c-1",
    }
    reply = _message(agent_slug="billing", agent_name="Billing")
    encoded = json.loads(protocol.MessageDone(turn="t-1", message=reply_payload(reply)).encode())
    assert encoded["message"]["agent"] == {"slug": "billing", "name": "Billing"}
    assert "client_id" not in encoded["message"]  # assistant messages have none


def reply_payload(message: Message) -> protocol.MessagePayload:
    return protocol.MessagePayload.from_message(message)


STATUS = protocol.StatusPayload(
    status="human", staff=protocol.StaffPayload(name="Sam"), eta_seconds=None, open_now=True
)


def _examples() -> list[protocol.ServerFrame]:
    agent = protocol.AgentPayload(slug="billing", name="Billing")
    payload = reply_payload(_message())
    return [
        protocol.SessionReady(
            conversation="c",
            token="t",
            agent=agent,
            greeting="Hi",
            suggestions=["a"],
            messages=[payload],
            status=STATUS,
        ),
        protocol.MessageAck(
            id="c-1", message=reply_payload(_message(role="user", client_id="c-1"))
        ),
        protocol.TurnStarted(turn="t", reply_to="c-1"),
        protocol.AgentChanged(turn="t", from_=None, to=agent, reason="route"),
        protocol.ToolStarted(turn="t", agent="billing", tool="search", call="k", label="Searching"),
        protocol.ToolFinished(turn="t", call="k", ok=True),
        protocol.MessageDelta(turn="t", message="m", agent="billing", text="Hel"),
        protocol.MessageDone(turn=None, message=payload),
        protocol.WorkflowProgress(
            turn="t",
            workflow=protocol.WorkflowPayload(id="r", slug="refund_request", name="Refund"),
            status="done",
            step=None,
            agent=None,
            done=3,
            total=3,
        ),
        protocol.TurnDone(turn="t", status="ok", usage=protocol.UsagePayload(requests=2)),
        protocol.TurnProgress(turn="t", message="Still working on it.", elapsed=5.0, seq=7),
        protocol.FeedbackAck(message="m"),
        protocol.Pong(),
        protocol.Error(code=ErrorCode.NOT_FOUND, ref="m"),
        protocol.StatusChanged.of(STATUS),
        protocol.ApprovalRequest(
            turn="t",
            approval="a",
            agent="billing",
            action="request_refund",
            summary="Refund EUR 49.00 for invoice ACME-2024-000123",
            by="user",
            expires="2026-12-04T18:00:00+00:00",
        ),
        protocol.ApprovalResolved(approval="a", outcome="approved"),
    ]


# The keys docs/protocol.md gives each server frame, in order.
KEYS = {
    "session.ready": [
        "type",
        "conversation",
        "token",
        "agent",
        "greeting",
        "suggestions",
        "messages",
        "status",
        "turn",
        "locale",
    ],
    "message.ack": ["type", "id", "message"],
    "turn.started": ["type", "turn", "reply_to"],
    "agent.changed": ["type", "turn", "from", "to", "reason"],
    "tool.started": ["type", "turn", "agent", "tool", "call", "label"],
    "tool.finished": ["type", "turn", "call", "ok"],
    "message.delta": ["type", "turn", "message", "agent", "text"],
    "message.done": ["type", "turn", "message"],
    "workflow.progress": ["type", "turn", "workflow", "status", "step", "agent", "done", "total"],
    "turn.done": ["type", "turn", "status", "usage"],
    "turn.progress": ["type", "turn", "message", "elapsed", "seq"],
    "feedback.ack": ["type", "message"],
    "approval.request": [
        "type",
        "turn",
        "approval",
        "agent",
        "action",
        "summary",
        "by",
        "expires",
    ],  # fmt: skip
    "approval.resolved": ["type", "approval", "outcome"],
    "pong": ["type"],
    "error": ["type", "code", "message", "retryable", "ref"],
    "conversation.status": [
        "type",
        "status",
        "staff",
        "eta_seconds",
        "open_now",
        "opens_at",
        "message",
        "csat",
        "email_saved",
    ],  # fmt: skip
}


def test_every_server_frame_encodes_the_documented_keys_in_order():
    examples = _examples()
    assert {f.type for f in examples} == set(protocol.SERVER_FRAMES) == set(KEYS)
    for frame in examples:
        text = frame.encode()
        data = json.loads(text)
        assert list(data) == KEYS[frame.type], text
        assert protocol.SERVER_FRAMES[frame.type] is type(frame)


def test_encoding_is_compact_utf8_and_keeps_nulls_outside_errors():
    text = protocol.MessageDelta(turn="t", message="m", agent="a", text="é 😀").encode()
    assert text == '{"type":"message.delta","turn":"t","message":"m","agent":"a","text":"é 😀"}'
    done = json.loads(protocol.MessageDone(turn=None, message=reply_payload(_message())).encode())
    assert done["turn"] is None
    step = json.loads(_examples()[8].encode())
    assert "seq" not in step  # numbered only when the runner sends it
    assert (step["step"], step["agent"]) == (None, None)


def test_turn_done_usage_is_always_three_counts():
    usage = protocol.UsagePayload.from_counts({"requests": 2, "cached_tokens": 9})
    frame = json.loads(protocol.TurnDone(turn="t", status="error", usage=usage).encode())
    assert frame["usage"] == {"requests": 2, "input_tokens": 0, "output_tokens": 0}


def test_server_frames_refuse_unknown_fields_and_values():
    with pytest.raises(ValueError):
        protocol.TurnStarted(turn="t", reply_to="c", extra=1)
    with pytest.raises(ValueError):
        protocol.TurnDone(turn="t", status="sideways")


# --- Errors, codes, limits -------------------------------------------------------------


def test_error_frames():
    error = json.loads(protocol.Error(code=ErrorCode.BAD_FRAME, message="No.").encode())
    assert error == {"type": "error", "code": "bad_frame", "message": "No.", "retryable": False}
    limited = json.loads(protocol.Error(code=ErrorCode.RATE_LIMITED, ref="c-3").encode())
    assert (limited["retryable"], limited["ref"]) == (True, "c-3") and limited["message"]
    assert "ref" not in json.loads(protocol.Error(code="internal", ref="").encode())
    forced = protocol.Error(code=ErrorCode.MODEL_UNAVAILABLE, message="Later.", retryable=False)
    assert forced.retryable is False
    from_exc = protocol.Error.from_frame_error(FrameError(ErrorCode.TOO_LARGE, "Big.", "c-1"))
    assert (from_exc.code, from_exc.message, from_exc.ref) == ("too_large", "Big.", "c-1")


def test_error_codes_and_close_codes():
    assert [c.value for c in ErrorCode] == [
        "bad_frame",
        "unknown_type",
        "too_large",
        "rate_limited",
        "not_found",
        "forbidden",
        "identity_invalid",
        "model_unavailable",
        "internal",
    ]
    assert {"rate_limited", "model_unavailable", "internal"} == protocol.RETRYABLE
    assert ErrorCode.or_internal("model_unavailable") is ErrorCode.MODEL_UNAVAILABLE
    assert ErrorCode.or_internal("") is ErrorCode.INTERNAL
    assert ErrorCode.or_internal("guardrail") is ErrorCode.INTERNAL
    assert {c.name: int(c) for c in CloseCode} == {
        "BAD_START": 4400,
        "IDENTITY": 4401,
        "FORBIDDEN": 4403,
        "ABUSE": 4429,
    }


def test_limits_are_read_from_settings_each_time(settings):
    settings.SUPERORCH_MAX_FRAME_BYTES = 2048
    settings.SUPERORCH_MAX_MESSAGE_CHARS = 99
    settings.SUPERORCH_RATE_LIMIT = "3/minute"
    settings.SUPERORCH_RATE_LIMIT_CLOSE_AFTER = 2
    assert protocol.limits() == protocol.Limits(2048, 99, "3/minute", 2)
    assert (protocol.Limits.CLIENT_ID_CHARS, protocol.Limits.COMMENT_CHARS) == (100, 2000)
