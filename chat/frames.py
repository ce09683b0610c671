"""Validation of client frames (protocol v1). Errors carry plain words for a person."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

KNOWN_TYPES = {"session.start", "message.send", "turn.cancel", "feedback", "ping", "context.update"}


@dataclass
class FrameError(Exception):
    code: str
    message: str
    ref: str | None = None


def _str(frame: dict, key: str, *, required: bool, max_len: int, label: str) -> str | None:
    value = frame.get(key)
    if value is None:
        if required:
            raise FrameError("bad_frame", f"The {label} is missing.")
        return None
    if not isinstance(value, str):
        raise FrameError("bad_frame", f"The {label} must be text.")
    if len(value) > max_len:
        raise FrameError("bad_frame", f"The {label} is too long (at most {max_len} characters).")
    return value


def parse(text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
    """Decode and validate one client frame; returns it with normalised fields."""
    if text_data is None:
        raise FrameError("bad_frame", "Frames must be JSON text, not binary.")
    if len(text_data.encode("utf-8")) > settings.SUPERORCH_MAX_FRAME_BYTES:
        raise FrameError(
            "too_large",
            f"That was too large to send (the limit is {settings.SUPERORCH_MAX_FRAME_BYTES // 1024} KB).",
        )
    try:
        frame = json.loads(text_data)
    except ValueError:
        raise FrameError("bad_frame", "That frame was not valid JSON.") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("bad_frame", "Each frame must be a JSON object with a text field 'type'.")
    kind = frame["type"]
    if kind not in KNOWN_TYPES:
        raise FrameError("unknown_type", f"The frame type {kind[:40]!r} is not known.")
    return _VALIDATORS[kind](frame)


def _session_start(frame: dict) -> dict:
    protocol = frame.get("protocol", 1)
    if protocol != 1:
        raise FrameError("bad_frame", "This server speaks protocol version 1.")
    site = _str(frame, "site", required=False, max_len=64, label="site key") or "demo"
    token = _str(frame, "token", required=False, max_len=200, label="conversation token")
    since = _str(frame, "since", required=False, max_len=64, label="'since' message id")
    user = frame.get("user")
    if user is not None:
        if not isinstance(user, dict):
            raise FrameError("bad_frame", "The user must be an object.")
        for key in ("id", "name", "email", "hash"):
            _str(user, key, required=False, max_len=254, label=f"user {key}")
    context = frame.get("context")
    if context is not None and not isinstance(context, dict):
        raise FrameError("bad_frame", "The context must be an object.")
    return {
        **frame,
        "site": site,
        "token": token,
        "since": since,
        "user": user or {},
        "context": context or {},
    }


def _message_send(frame: dict) -> dict:
    client_id = _str(frame, "id", required=True, max_len=100, label="message id")
    if not client_id.strip():
        raise FrameError("bad_frame", "The message id is missing.")
    try:
        text = _str(
            frame,
            "text",
            required=True,
            max_len=settings.SUPERORCH_MAX_MESSAGE_CHARS,
            label="message",
        )
    except FrameError as exc:
        if "too long" in exc.message:
            exc.code = "too_large"
        exc.ref = client_id
        raise
    if not text.strip():
        raise FrameError("bad_frame", "The message is empty.", ref=client_id)
    return {**frame, "id": client_id, "text": text.strip()}


def _feedback(frame: dict) -> dict:
    message = _str(frame, "message", required=True, max_len=64, label="message id")
    value = frame.get("value")
    if value not in ("up", "down"):
        raise FrameError("bad_frame", "Feedback must be 'up' or 'down'.", ref=message)
    comment = _str(frame, "comment", required=False, max_len=2000, label="comment") or ""
    return {**frame, "message": message, "value": value, "comment": comment}


def _context_update(frame: dict) -> dict:
    context = frame.get("context")
    if not isinstance(context, dict):
        raise FrameError("bad_frame", "The context must be an object.")
    return {**frame, "context": context}


_VALIDATORS = {
    "context.update": _context_update,
    "session.start": _session_start,
    "message.send": _message_send,
    "feedback": _feedback,
    "turn.cancel": lambda f: f,
    "ping": lambda f: f,
}
