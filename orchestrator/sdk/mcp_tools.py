"""An agent's MCP tools: one SDK function tool per allowed tool of its enabled MCP servers.

Built from the listing the admin's check stored (no connection while an agent is built):
the tool's name is `<server>__<tool>` (domain.mcp.tool_name), its schema the server's.
Calling it runs orchestrator.mcp.mcp_call, which checks the permission again, connects
(sdk/mcp_client.py), records the call and gives the model the answer as data.
"""

from __future__ import annotations

from typing import Any

from agents import FunctionTool

from .. import mcp
from ..actions import CallContext
from ..domain import mcp as mcp_rules
from ..domain.mcp import McpServerSpec, McpToolSpec
from ..domain.team import AgentSpec, Team


def _call_context(ctx: Any, slug: str) -> CallContext:
    context = getattr(ctx, "context", None)
    return CallContext(
        slug, getattr(context, "conversation_id", None), getattr(context, "turn_id", None)
    )


def mcp_tool(spec: AgentSpec, server: McpServerSpec, tool: McpToolSpec) -> FunctionTool:
    exposed = mcp_rules.tool_name(server.name, tool.name)
    server_name, tool_name, slug = server.name, tool.name, spec.slug

    async def invoke(ctx: Any, raw: str) -> str:
        result = await mcp.mcp_call(
            server=server_name,
            tool=tool_name,
            exposed=exposed,
            raw_arguments=raw,
            context=_call_context(ctx, slug),
        )
        return result.output

    return FunctionTool(
        name=exposed,
        description=mcp_rules.description(server, tool),
        params_json_schema=mcp_rules.input_schema(tool),
        on_invoke_tool=invoke,
        strict_json_schema=False,
    )


def mcp_tools_for(spec: AgentSpec, team: Team, taken: set[str]) -> list[FunctionTool]:
    """The agent's MCP tools, leaving out any whose name another of its tools has."""
    tools = []
    for server, tool in team.mcp_tools_of(spec):
        built = mcp_tool(spec, server, tool)
        if built.name not in taken:
            taken.add(built.name)
            tools.append(built)
    return tools


def cache_key(spec: AgentSpec, team: Team | None) -> tuple[Any, ...]:
    """What the built MCP tools depend on: each server's version (its edits and its
    refreshed listing) and allow-list."""
    if team is None:
        return ()
    found = (team.mcp_servers.get(name) for name in spec.mcp_servers)
    return tuple((s.name, s.version, s.enabled, s.allowed_tools) for s in found if s is not None)
