"""What an agent may use, checked when a tool is called (not only when tools are built).

Pure: the caller passes the registry as it is now (a fresh `Team` snapshot), so a grant
staff withdrew a moment ago, or a tool the model made up, is refused whatever the model
asks. Each refusal is plain words, for the model and for the transcript.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from .team import AgentSpec, Team


def tool_refusal(team: Team, agent_slug: str, tool: str) -> str | None:
    """Why this agent may not call this tool now (None when it may)."""
    spec = team.get(agent_slug)
    if spec is None or not spec.enabled:
        return "This agent is not available any more."
    if tool in spec.tools:
        return None
    if tool in spec.actions:
        action = team.actions.get(tool)
        if action is not None and action.enabled:
            return None
        return f"The action {tool} is switched off."
    return f"This agent is not allowed to use {tool}."


def knowledge_refusal(spec: AgentSpec, knowledge_base: str) -> str | None:
    """Agents search their own articles, and those of the agents staff listed."""
    if not knowledge_base or knowledge_base == spec.slug or knowledge_base in spec.knowledge:
        return None
    return f"This agent is not allowed to search the {knowledge_base} knowledge base."


def context_key_allowed(spec: AgentSpec, key: str) -> bool:
    return any(fnmatchcase(key, pattern) for pattern in spec.context_keys)


def context_refusal(spec: AgentSpec, key: str) -> str | None:
    if context_key_allowed(spec, key):
        return None
    return f"This agent is not allowed to use the context key {key!r}."


def visible_context(shared: dict, spec: AgentSpec) -> dict:
    """The shared notes an agent is shown: the keys it may use."""
    return {k: v for k, v in shared.items() if context_key_allowed(spec, k)}
