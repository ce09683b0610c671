"""Fuzzing the chat protocol with a seeded generator (no dependency): valid frames of every
client type, the same frames mutated (fields dropped, wrong types, huge, deep, odd Unicode,
unknown fields and types), not-JSON, not-objects and binary frames.

The bulk (over 10,000 frames) goes through `chat.protocol.parse`: each frame is accepted as
the right typed frame or refused with a documented code, and whatever is accepted can be
stored and sent back (valid text, within the depth limit). A few hundred go through the
full ASGI app: each gets the documented answer, the connection stays open after a session
started (and closes 4400 before one), a refused frame writes no row, nothing logs an error.
Set FUZZ_SEED to replay a run; the seed is in the test's name.
"""

from __future__ import annotations

import json
import logging
import os
import random
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chat import protocol
from chat.models import Conversation, Feedback, Message
from chat.protocol import ErrorCode, FrameError
from tests.chat.test_consumers import (  # noqa: F401  (an autouse fixture and helpers)
    _no_turn_outlives_the_test,
    expect_close,
    recv,
    send,
    start,
)

SEED = int(os.environ.get("FUZZ_SEED", "1212"))
BULK = 10_500
REFUSAL_CODES = {ErrorCode.BAD_FRAME, ErrorCode.UNKNOWN_TYPE, ErrorCode.TOO_LARGE}

ODD_TEXT = [
    "",
    " ",
    "\u200b",
    "é",
    "😀",
    "\u202eRTL",
    "e\u0301" * 40,
    "\ud800",
    "\udfff",
    "a\x00b",
    "\ufeff",
    "\U0010ffff",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%s%n",
    "ｆｕｌｌ",
]


def odd_string(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.1:
        return "x" * rng.choice([101, 255, 2001, 5000, 20_000])
    if pick < 0.5:
        return rng.choice(ODD_TEXT)
    return "".join(rng.choice(ODD_TEXT + ["a", "b", "1"]) for _ in range(rng.randint(1, 6)))


def deep(rng: random.Random, depth: int | None = None) -> Any:
    depth = depth or rng.choice([5, 31, 32, 33, 100, 400])  # deeper: raw_frame's text
    value: Any = rng.choice([1, "x", None, [], {}])
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return value


def odd_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            lambda: None,
            lambda: True,
            lambda: 0,
            lambda: -1,
            lambda: 1.0,
            lambda: 10**30,
            lambda: float("nan"),
            lambda: [],
            lambda: {},
            lambda: [1, "a"],
            lambda: {"a": {"b": "c"}},
            lambda: odd_string(rng),
            lambda: deep(rng),
        ]
    )()


def valid_frame(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(list(protocol.CLIENT_FRAMES))
    word = lambda: rng.choice(["a", "hello", "é😀", "m-" + str(rng.randint(0, 9999))])  # noqa: E731
    frames: dict[str, dict[str, Any]] = {
        "session.start": {
            "type": kind,
            **rng.choice([{}, {"protocol": 1}, {"site": "demo"}, {"site": None}]),
            **rng.choice([{}, {"user": {"name": word(), "email": "a@example.com"}}]),
            **rng.choice([{}, {"context": {"page": "/" + word(), "n": [1, 2, {"x": None}]}}]),
            **rng.choice([{}, {"token": word()}, {"since": word()}]),
        },
        "message.send": {"type": kind, "id": word(), "text": word()},
        "turn.cancel": {"type": kind},
        "feedback": {
            "type": kind,
            "message": word(),
            "value": rng.choice(["up", "down"]),
            **rng.choice([{}, {"comment": word()}, {"comment": None}]),
        },
        "ping": {"type": kind},
        "context.update": {"type": kind, "context": rng.choice([{}, {"page": word()}])},
        "human.request": {"type": kind, **rng.choice([{}, {"reason": word()}])},
        "csat": {"type": kind, "score": rng.randint(1, 5), **rng.choice([{}, {"comment": word()}])},
        "contact.email": {"type": kind, "email": rng.choice(["a@example.com", word()])},
        "approval.respond": {
            "type": kind,
            "approval": rng.choice([word(), "6f1c1a1e-3c59-4a57-9d1b-4b7d0c1a2b3c"]),
            "approve": rng.choice([True, False]),
        },
    }
    return frames[kind]


def mutate(rng: random.Random, frame: dict[str, Any]) -> dict[str, Any]:
    frame = dict(frame)
    for _ in range(rng.randint(1, 3)):
        keys = [k for k in frame if k != "type"] or ["type"]
        action = rng.random()
        if action < 0.25:
            frame.pop(rng.choice(keys), None)
        elif action < 0.7:
            frame[rng.choice(keys)] = odd_value(rng)
        elif action < 0.85:
            frame[odd_string(rng)] = odd_value(rng)
        else:
            frame["type"] = rng.choice([None, 1, "", "PING", "ping ", "message", odd_string(rng)])
    return frame


def encode(rng: random.Random, frame: Any) -> str:
    try:
        return json.dumps(frame, ensure_ascii=rng.random() < 0.5)
    except ValueError:  # a lone surrogate cannot be written un-escaped
        return json.dumps(frame, ensure_ascii=True)


def raw_frame(rng: random.Random) -> tuple[str | None, bytes | None]:
    text = encode(rng, valid_frame(rng))
    return rng.choice(
        [
            lambda: (text[: rng.randint(0, len(text) - 1)], None),  # cut short
            lambda: (text.replace('"', "'"), None),
            lambda: (json.dumps(rng.choice([[], [1], 1, "ping", None, True])), None),
            lambda: ('{"type": "ping"' + ', "a": [' * 1200, None),  # deep and cut short
            lambda: ('{"type": "ping", "a": ' + "[" * 1200 + "]" * 1200 + "}", None),
            lambda: (
                '{"type": "context.update", "context": ' + '{"a":' * 900 + "1" + "}" * 901,
                None,
            ),
            lambda: ('{"type": "ping", "n": ' + "9" * 5000 + "}", None),
            lambda: ('{"type": "ping", "n": NaN}', None),
            lambda: ('{"type": "ping", "pad": "' + "x" * 20_000 + '"}', None),
            lambda: (None, text.encode()),
            lambda: (None, bytes(rng.randrange(256) for _ in range(16))),
            lambda: ("", None),
        ]
    )()


def generate(rng: random.Random) -> tuple[str | None, bytes | None, bool]:
    """(text, bytes, whether the frame is valid by construction)."""
    pick = rng.random()
    if pick < 0.3:
        return encode(rng, valid_frame(rng)), None, True
    if pick < 0.85:
        return encode(rng, mutate(rng, valid_frame(rng))), None, False
    text, data = raw_frame(rng)
    return text, data, False


def storable(value: Any) -> bool:
    return protocol.tree_problem(value, protocol.Limits.JSON_DEPTH) is None


def check_parse(text: str | None, data: bytes | None, valid: bool) -> protocol.ClientFrame | None:
    """Parse one frame and check the documented outcome; the frame or None if refused."""
    try:
        frame = protocol.parse(text, data)
    except FrameError as exc:
        assert not valid, (text, exc.code, exc.message)
        assert exc.code in REFUSAL_CODES, (text, exc.code)
        assert exc.message and protocol.valid_text(exc.message), exc.message
        encoded = json.loads(protocol.Error.from_frame_error(exc).encode())
        assert encoded["code"] == exc.code and protocol.valid_text(encoded.get("ref", ""))
        return None
    assert type(frame) is protocol.CLIENT_FRAMES[frame.type]
    assert json.loads(text)["type"] == frame.type
    assert storable(frame.model_dump()), text
    return frame


@pytest.mark.parametrize("seed", [SEED], ids=lambda s: f"seed={s}")
def test_parse_answers_every_generated_frame_as_documented(seed, settings):
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for _ in range(BULK):
        text, data, valid = generate(rng)
        frame = check_parse(text, data, valid)
        outcome = frame.type if frame else "refused"
        seen[outcome] = seen.get(outcome, 0) + 1
    assert set(seen) == {*protocol.CLIENT_FRAMES, "refused"}, seen
    assert seen["refused"] > BULK // 3, seen


# --- Through the app --------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


async def send_raw(comm, text: str | None, data: bytes | None) -> None:
    """As the server hands a frame to the app (the communicator refuses an empty text)."""
    key, value = ("text", text) if text is not None else ("bytes", data)
    await comm.send_input({"type": "websocket.receive", key: value})


@sync_to_async
def rows() -> tuple[int, int, int, list[Any]]:
    return (
        Conversation.objects.count(),
        Message.objects.count(),
        Feedback.objects.count(),
        list(Conversation.objects.values_list("page_context", flat=True)),
    )


WAITING = "\x00waiting"  # in `acked`: a person was asked for (no message id is this)


async def answer(comm, frame: protocol.ClientFrame, acked: set[str]) -> None:
    """The documented answer to an accepted frame on a started session (`acked`: the
    message ids sent so far: sent again, they are acknowledged again and not answered;
    and WAITING once a person was asked for: from then on no agent answers)."""
    if isinstance(frame, protocol.Ping):
        assert await recv(comm) == {"type": "pong"}
    elif isinstance(frame, protocol.SessionStart):  # a second one on this socket
        reply = await recv(comm)
        assert (reply["type"], reply["code"]) == ("error", "bad_frame")
    elif isinstance(frame, protocol.Feedback | protocol.ApprovalRespond):  # no such id here
        reply = await recv(comm)
        assert (reply["type"], reply["code"]) == ("error", "not_found"), reply
    elif isinstance(frame, protocol.HumanRequest):  # asked for, or already (idempotent)
        reply = await recv(comm)
        assert (reply["type"], reply["status"]) == ("conversation.status", "waiting"), reply
        acked.add(WAITING)
    elif isinstance(frame, protocol.Csat):  # never resolved here
        reply = await recv(comm)
        assert (reply["type"], reply["code"]) == ("error", "bad_frame"), reply
    elif isinstance(frame, protocol.ContactEmail):
        reply = await recv(comm)
        expected = "conversation.status" if "@" in frame.email else "error"
        assert reply["type"] == expected, reply
    elif isinstance(frame, protocol.MessageSend) and (frame.id in acked or WAITING in acked):
        # Sent again, or a person was asked for: acknowledged, and no agent answers.
        acked.add(frame.id)
        reply = await recv(comm)
        assert (reply["type"], reply["id"]) == ("message.ack", frame.id), reply
        assert await comm.receive_nothing(timeout=0.05)
    elif isinstance(frame, protocol.MessageSend):
        acked.add(frame.id)
        while (reply := await recv(comm))["type"] != "turn.done":
            assert reply["type"] != "error", reply
    else:  # turn.cancel, context.update: no reply
        assert await comm.receive_nothing(timeout=0.01)


@pytestmark_db
@pytest.mark.parametrize("seed", [SEED], ids=lambda s: f"seed={s}")
async def test_the_socket_answers_generated_frames_as_documented(team, connect, caplog, seed):
    caplog.set_level(logging.ERROR)
    rng = random.Random(seed + 1)
    comm = await connect()
    await start(comm)
    sent = turns = 0
    acked: set[str] = set()
    while sent < 300:
        text, data, valid = generate(rng)
        frame = check_parse(text, data, valid)
        if isinstance(frame, protocol.MessageSend) and turns >= 3:
            continue  # a few real turns are enough
        turns += isinstance(frame, protocol.MessageSend)
        before = await rows()
        await send_raw(comm, text, data)
        sent += 1
        if frame is None:
            reply = await recv(comm)
            assert reply["type"] == "error" and reply["code"] in REFUSAL_CODES, reply
            assert await rows() == before, text
        else:
            await answer(comm, frame, acked)
    await send(comm, {"type": "ping"})
    assert await recv(comm) == {"type": "pong"}  # still open
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytestmark_db
@pytest.mark.parametrize("seed", [SEED], ids=lambda s: f"seed={s}")
async def test_a_refused_first_frame_closes_with_4400_and_stores_nothing(
    team, connect, caplog, seed
):
    caplog.set_level(logging.ERROR)
    rng = random.Random(seed + 2)
    tried = 0
    while tried < 40:
        text, data, valid = generate(rng)
        if check_parse(text, data, valid) is not None:
            continue
        tried += 1
        comm = await connect()
        await send_raw(comm, text, data)
        reply = await recv(comm)
        assert reply["type"] == "error" and reply["code"] in REFUSAL_CODES, reply
        await expect_close(comm, 4400)
    assert (await rows())[:3] == (0, 0, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
