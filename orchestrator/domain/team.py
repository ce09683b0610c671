"""A read-only snapshot of the agent registry, as the runtime and router use it.

Plain data (no ORM, no SDK) so it can cross threads and be cached per version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .actions import ActionSpec
from .enums import AgentRole
from .mcp import McpServerSpec, McpToolSpec


@dataclass(frozen=True)
class AgentSpec:
    slug: str
    name: str
    role: str
    instructions: str
    handoff_description: str
    provider: str
    model_name: str
    enabled: bool
    tools: tuple[str, ...] = ()
    handoffs: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()  # knowledge article titles and tags
    id: int | None = None
    degraded: bool = False
    max_concurrency: int = 0  # 0: no limit
    alternative: str | None = None
    timeout: float = 30.0  # seconds of model silence before an attempt fails (0: none)
    # What it may use beyond its tools (domain.permissions): actions by name, other agents'
    # knowledge bases by slug (its own always), context keys (fnmatch patterns; "*": all).
    actions: tuple[str, ...] = ()
    knowledge: tuple[str, ...] = ()
    context_keys: tuple[str, ...] = ("*",)
    mcp_servers: tuple[str, ...] = ()  # MCP servers by name (their allowed tools)


@dataclass(frozen=True)
class WorkflowSpec:
    slug: str
    name: str
    description: str
    triggers: tuple[str, ...] = ()  # lower-case phrases the offline model starts it on

    def triggered_by(self, text: str) -> bool:
        lowered = f" {' '.join(re.findall(r'[a-z0-9]+', text.lower()))} "
        return any(f" {' '.join(re.findall(r'[a-z0-9]+', t))} " in lowered for t in self.triggers)


@dataclass(frozen=True)
class Team:
    agents: dict[str, AgentSpec]
    version: str = ""
    workflows: tuple[WorkflowSpec, ...] = ()  # the enabled ones
    actions: dict[str, ActionSpec] = field(default_factory=dict)  # every action, by name
    mcp_servers: dict[str, McpServerSpec] = field(default_factory=dict)  # every one, by name
    _by_name: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({a.name: a.slug for a in self.agents.values()})

    def get(self, slug: str | None) -> AgentSpec | None:
        return self.agents.get(slug or "")

    def by_name(self, name: str) -> AgentSpec | None:
        return self.agents.get(self._by_name.get(name, ""))

    def enabled(self) -> list[AgentSpec]:
        return [a for a in self.agents.values() if a.enabled]

    @property
    def orchestrator(self) -> AgentSpec | None:
        return next((a for a in self.enabled() if a.role == AgentRole.ORCHESTRATOR), None)

    @property
    def fallback(self) -> AgentSpec | None:
        return next((a for a in self.enabled() if a.role == AgentRole.FALLBACK), None)

    def specialists(self) -> list[AgentSpec]:
        return [a for a in self.enabled() if a.role == AgentRole.SPECIALIST]

    def actions_of(self, spec: AgentSpec) -> list[ActionSpec]:
        """The enabled actions this agent may use, in its order."""
        found = (self.actions.get(name) for name in spec.actions)
        return [a for a in found if a is not None and a.enabled]

    def mcp_tools_of(self, spec: AgentSpec) -> list[tuple[McpServerSpec, McpToolSpec]]:
        """The allowed tools of this agent's enabled MCP servers, in its order."""
        found = (self.mcp_servers.get(name) for name in spec.mcp_servers)
        return [(s, t) for s in found if s is not None and s.enabled for t in s.allowed()]

    def workflow(self, slug: str) -> WorkflowSpec | None:
        return next((w for w in self.workflows if w.slug == slug), None)

    def workflow_for(self, text: str) -> WorkflowSpec | None:
        """The first enabled workflow one of whose triggers the text contains."""
        return next((w for w in self.workflows if w.triggered_by(text)), None)
