"""Which provider and model an agent uses, given this process's configuration.

No SDK here: pages, the registry's reads and routing ask this without loading the
Agents SDK (orchestrator.sdk.providers builds the SDK Model for a choice).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .domain.enums import ModelProvider
from .domain.exceptions import ProviderNotConfigured
from .domain.team import AgentSpec

LOCAL_MODEL_NAME = "superorch-offline-1"


@dataclass(frozen=True)
class ModelChoice:
    provider: ModelProvider  # never AUTO: resolved
    model_name: str


def default_provider() -> ModelProvider:
    if settings.OPENAI_BASE_URL:
        return ModelProvider.COMPATIBLE
    if settings.OPENAI_API_KEY:
        return ModelProvider.OPENAI
    return ModelProvider.LOCAL


def offline_mode() -> bool:
    return default_provider() == ModelProvider.LOCAL


def resolve(agent: AgentSpec) -> ModelChoice:
    """The agent's provider and model; raises ProviderNotConfigured when this server
    lacks the key or URL the agent's provider needs."""
    provider = ModelProvider(agent.provider) if agent.provider != "auto" else default_provider()
    if provider == ModelProvider.LOCAL:
        return ModelChoice(provider, LOCAL_MODEL_NAME)
    if provider == ModelProvider.OPENAI and not settings.OPENAI_API_KEY:
        raise ProviderNotConfigured(
            f"{agent.name} is set to use OpenAI, but OPENAI_API_KEY is not set."
        )
    if provider == ModelProvider.COMPATIBLE and not settings.OPENAI_BASE_URL:
        raise ProviderNotConfigured(
            f"{agent.name} is set to use an OpenAI-compatible server, but OPENAI_BASE_URL is "
            "not set."
        )
    return ModelChoice(provider, agent.model_name or settings.SUPERORCH_DEFAULT_MODEL)


def uses_llm(agent: AgentSpec | None) -> bool:
    """Whether the agent runs on a language model (not the offline model)."""
    if agent is None:
        return False
    try:
        return resolve(agent).provider != ModelProvider.LOCAL
    except ProviderNotConfigured:
        return False
