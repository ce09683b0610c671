"""The registry's team as SDK Agents: instructions, models, tools and handoffs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents import Agent, ModelSettings, handoff
from agents.extensions.handoff_prompt import prompt_with_handoff_instructions

from ..domain.actions import data_block
from ..domain.enums import ModelProvider
from ..domain.team import AgentSpec, Team
from ..model_choice import ModelChoice, resolve
from ..router import Router
from .context import HANDBACK_INTRO, TurnContext
from .guardrails import llm_input_guardrail, uses_llm_check
from .providers import build_model
from .tools import tool_cache


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def context_block(
    page_context: dict[str, Any], shared: dict[str, Any], staff_note: str = ""
) -> str:
    """What the agents are told of the page, the conversation's notes and the support
    team's hand-back note: as data."""
    parts = []
    if staff_note:
        parts.append(HANDBACK_INTRO + _json({"handback_note": staff_note}))
    if page_context:
        parts.append(data_block("The page the user is on", page_context))
    if shared:
        parts.append("Shared notes about this conversation, as data:\n" + _json(shared))
    return ("\n\n" + "\n\n".join(parts)) if parts else ""


def instructions(spec: AgentSpec, choice: ModelChoice, block: str) -> str:
    text = spec.instructions.strip()
    if spec.handoffs and choice.provider != ModelProvider.LOCAL:
        text = prompt_with_handoff_instructions(text)
    return text + block


def sdk_agent(
    spec: AgentSpec,
    choice: ModelChoice,
    *,
    team: Team,
    router: Router | None,
    block: str,
    workflows: bool = True,
    guarded: bool = True,
) -> Agent[TurnContext]:
    """`guarded`: with the model's input check (chat turns; workflow steps run without)."""
    local = choice.provider == ModelProvider.LOCAL
    model = build_model(choice, agent=spec, team=team, router=router)
    return Agent[TurnContext](
        name=spec.name,
        instructions=instructions(spec, choice, block),
        handoff_description=spec.handoff_description,
        model=model,
        # The SDK runs these only on the agent that starts the run, before its first call.
        input_guardrails=[llm_input_guardrail(model)] if guarded and uses_llm_check(choice) else [],
        # Ask OpenAI-compatible servers for token usage in streams too (the SDK only
        # does for api.openai.com); the local model always reports it.
        model_settings=ModelSettings() if local else ModelSettings(include_usage=True),
        tools=tool_cache.tools_for(spec, team=team, workflows=workflows),
    )


@dataclass
class BuiltTeam:
    agents: dict[str, Agent[TurnContext]]
    choices: dict[str, ModelChoice]
    slug_by_name: dict[str, str]


def build_team(
    team: Team, *, router: Router | None, block: str | Callable[[AgentSpec], str] = ""
) -> BuiltTeam:
    """Every enabled agent, with handoffs to the enabled targets its registry row lists.
    `block`: what each agent is told of the page and the notes (per agent: the context
    keys it may see). Raises ProviderNotConfigured when an agent's provider lacks its key
    or URL."""
    agents: dict[str, Agent[TurnContext]] = {}
    choices: dict[str, ModelChoice] = {}
    for spec in team.enabled():
        choices[spec.slug] = choice = resolve(spec)
        text = block(spec) if callable(block) else block
        agents[spec.slug] = sdk_agent(spec, choice, team=team, router=router, block=text)
    for spec in team.enabled():
        agents[spec.slug].handoffs = [
            handoff(agents[target]) for target in spec.handoffs if target in agents
        ]
    return BuiltTeam(
        agents=agents, choices=choices, slug_by_name={a.name: s for s, a in agents.items()}
    )
