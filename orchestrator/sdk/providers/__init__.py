"""SDK Models for a provider choice: the local offline model, OpenAI, and any
OpenAI-compatible server (orchestrator.model_choice says which an agent uses).
"""

from __future__ import annotations

from functools import lru_cache

from agents import OpenAIChatCompletionsModel, OpenAIResponsesModel
from django.conf import settings
from openai import AsyncOpenAI

from ...domain.enums import ModelProvider
from ...domain.team import AgentSpec, Team
from ...model_choice import ModelChoice
from ...router import Router
from .local import LocalModel


@lru_cache(maxsize=4)
def _client(base_url: str, api_key: str):
    # No retries in the client: the runtime retries (with backoff), records every attempt
    # and feeds the circuit breaker (SUPERORCH_MODEL_RETRIES).
    client = AsyncOpenAI(base_url=base_url or None, api_key=api_key or "not-needed", max_retries=0)
    completions = client.chat.completions
    create = completions.create

    async def checked_create(*args, **kwargs):
        result = await create(*args, **kwargs)
        return _CheckedStream(result) if kwargs.get("stream") else result

    completions.create = checked_create  # type: ignore[method-assign]
    return client


class StreamBroken(ConnectionError):
    """The server's stream ended before the model finished (no finish_reason)."""


class _CheckedStream:
    """A Chat Completions stream that fails loudly when it is cut short.

    A stream that just stops (the connection closed mid-answer) would otherwise end the
    SDK's turn "successfully" with half an answer; servers other than OpenAI's own are
    not checked for a finish_reason by the SDK.
    """

    def __init__(self, stream) -> None:
        self._stream = stream

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    async def __aiter__(self):
        finished = False
        async for chunk in self._stream:
            if any(getattr(c, "finish_reason", None) for c in chunk.choices or ()):
                finished = True
            yield chunk
        if not finished:
            raise StreamBroken("The model's stream ended before its answer was finished.")


def build_model(choice: ModelChoice, *, agent: AgentSpec, team: Team, router: Router | None):
    if choice.provider == ModelProvider.LOCAL:
        assert router is not None, "the offline model needs the router"
        return LocalModel(
            agent=agent,
            team=team,
            router=router,
            delay=settings.SUPERORCH_LOCAL_MODEL_DELAY,
            reply_seconds=settings.SUPERORCH_LOCAL_MODEL_REPLY_SECONDS,
        )
    if choice.provider == ModelProvider.COMPATIBLE:
        client = _client(settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY)
        return OpenAIChatCompletionsModel(model=choice.model_name, openai_client=client)
    client = _client("", settings.OPENAI_API_KEY)
    return OpenAIResponsesModel(model=choice.model_name, openai_client=client)
