"""Which exceptions of a run are model failures, and of which kind (for the breaker,
the AgentRun and the dashboard); and how a tool's output reads as success."""

from __future__ import annotations

import json
from typing import Any

import openai
from agents.exceptions import ModelBehaviorError

from ..domain.enums import ErrorKind
from .providers import StreamBroken

# After the timeout, rate-limit and status checks, most specific first (StreamBroken is
# a ConnectionError; every openai error is an OpenAIError).
_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], ErrorKind], ...] = (
    (StreamBroken, ErrorKind.STREAM_BROKEN),
    ((openai.APIConnectionError, ConnectionError), ErrorKind.CONNECTION),
    (
        (ModelBehaviorError, json.JSONDecodeError, openai.APIResponseValidationError),
        ErrorKind.BAD_RESPONSE,
    ),
)


def model_error_kind(exc: BaseException) -> ErrorKind | None:
    """The kind of model failure `exc` is; None when it is not one (a bug of ours)."""
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(exc, openai.RateLimitError):
        return ErrorKind.RATE_LIMITED
    if isinstance(exc, openai.APIStatusError):
        return ErrorKind.SERVER_ERROR if exc.status_code >= 500 else ErrorKind.BAD_RESPONSE
    for types, kind in _KINDS:
        if isinstance(exc, types):
            return kind
    if isinstance(exc, openai.OpenAIError):
        return ErrorKind.SERVER_ERROR
    return None


def call_id(raw: Any) -> str:
    """A tool call's id, from an SDK item's raw item (an object or a dict)."""
    if isinstance(raw, dict):
        return str(raw.get("call_id") or raw.get("id") or "")
    return str(getattr(raw, "call_id", None) or getattr(raw, "id", "") or "")


def tool_name(raw: Any) -> str:
    if isinstance(raw, dict):
        return str(raw.get("name") or "")
    return str(getattr(raw, "name", "") or "")


def tool_ok(output: Any) -> bool:
    """A tool's output reads as a failure when it is `{"ok": false, ...}` or the SDK's
    own error text."""
    if not isinstance(output, str):
        return True
    try:
        data = json.loads(output)
    except ValueError:
        return not output.startswith("An error occurred")
    return not (isinstance(data, dict) and data.get("ok") is False)
