"""Model failures as the OpenAI client raises them, for scripted models in tests."""

from __future__ import annotations

import httpx2 as httpx
import openai

REQUEST = httpx.Request("POST", "http://model.invalid/v1/chat/completions")


def connection_error() -> openai.APIConnectionError:
    """The client's error for a model server that cannot be reached."""
    return openai.APIConnectionError(request=REQUEST)
