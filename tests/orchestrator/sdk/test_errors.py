"""Which failures are the model's, and of which kind (the breaker counts only these)."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest
from agents.exceptions import ModelBehaviorError

from orchestrator.domain.enums import ErrorKind
from orchestrator.sdk.errors import model_error_kind, tool_ok
from orchestrator.sdk.providers import StreamBroken

REQUEST = httpx.Request("POST", "http://model.invalid/v1/chat/completions")


def _status(code: int) -> openai.APIStatusError:
    response = httpx.Response(code, request=REQUEST)
    cls = {429: openai.RateLimitError, 500: openai.InternalServerError}.get(
        code, openai.APIStatusError
    )
    return cls("failed", response=response, body=None)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (openai.APITimeoutError(request=REQUEST), ErrorKind.TIMEOUT),
        (TimeoutError(), ErrorKind.TIMEOUT),
        (_status(429), ErrorKind.RATE_LIMITED),
        (_status(500), ErrorKind.SERVER_ERROR),
        (_status(400), ErrorKind.BAD_RESPONSE),
        (StreamBroken("cut"), ErrorKind.STREAM_BROKEN),
        (openai.APIConnectionError(request=REQUEST), ErrorKind.CONNECTION),
        (ConnectionRefusedError(), ErrorKind.CONNECTION),
        (ModelBehaviorError("no such tool"), ErrorKind.BAD_RESPONSE),
        (ValueError("a bug of ours"), None),
        (KeyError("billing"), None),
    ],
)
def test_model_error_kind(exc, kind):
    assert model_error_kind(exc) == kind


def test_tool_ok_reads_failures():
    assert tool_ok('{"ok": true}') and tool_ok("plain text") and tool_ok({"x": 1})
    assert not tool_ok('{"ok": false, "error": "No agent called x."}')
    assert not tool_ok("An error occurred while running the tool.")
