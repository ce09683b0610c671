"""The agents' function tools (the design document's tools, made real), and their actions.

Each agent gets the tools its registry row lists and the actions it may call (each an
SDK function tool whose schema is the action's own; orchestrator/actions.py does the
call). Permissions are checked again when a tool is called, against the registry as
it is then (domain.permissions): a tool or action withdrawn since the tools were built,
another agent's knowledge base, a context key outside the agent's list, or a tool the
model made up (`tool_not_found`, through the run config) is refused in plain words and
recorded as an ActionCall, whatever the model asks.

Building a function tool makes its JSON schema with pydantic, which showed in every
turn's profile: tools are built once per (agent, tools, actions) and kept in
`tool_cache` (reset when the registry changes shape, or by tests).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, Literal

from agents import FunctionTool, RunContextWrapper, ToolErrorFormatterArgs, function_tool

from .. import actions, selectors, services, stats
from ..aio import db_call, db_call_parallel
from ..domain.actions import ActionSpec, approval_needed, argument_errors, model_schema
from ..domain.exceptions import ContextError
from ..domain.permissions import context_refusal, knowledge_refusal, tool_refusal
from ..domain.team import AgentSpec, Team
from ..workflow_wait import workflow_run_and_wait
from .context import TurnContext
from .mcp_tools import cache_key as mcp_cache_key
from .mcp_tools import mcp_tools_for


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def _call_context(ctx: RunContextWrapper[TurnContext], slug: str) -> actions.CallContext:
    context = ctx.context
    return actions.CallContext(slug, context.conversation_id, context.turn_id)


async def _current(slug: str) -> AgentSpec | None:
    """The agent as the registry has it now (not as the turn started)."""
    return (await db_call(selectors.team_snapshot)).get(slug)


async def _refuse(ctx, slug: str, tool: str, reason: str, arguments: Any) -> str:
    return await db_call(
        actions.tool_refusal_record,
        tool=tool,
        context=_call_context(ctx, slug),
        reason=reason,
        arguments=arguments,
    )


def _search_knowledge(spec: AgentSpec) -> FunctionTool:
    slug = spec.slug

    @function_tool
    async def search_knowledge(
        ctx: RunContextWrapper[TurnContext], query: str, knowledge_base: str | None = None
    ) -> str:
        """Search this agent's knowledge base: the article sections that best answer the
        query, best first, each with its article's title and a help centre link.

        Args:
            query: What the user asked, in their words or as keywords.
            knowledge_base: Another agent's knowledge base (its slug), if this agent may
                search it; leave empty for its own.
        """
        base = knowledge_base or slug
        current = await _current(slug)
        reason = knowledge_refusal(current, base) if current else "This agent is not available."
        if reason:
            args = {"query": query, "knowledge_base": base}
            return await _refuse(ctx, slug, "search_knowledge", reason, args)
        # Ranking is CPU work (BM25, an embedding): its own thread, not the shared one.
        passages = await db_call_parallel(selectors.knowledge_search, agent_slug=base, query=query)
        return _json({"passages": passages})

    return search_knowledge


def _route_request(spec: AgentSpec) -> FunctionTool:
    @function_tool
    async def route_request(ctx: RunContextWrapper[TurnContext], request_content: str) -> str:
        """Ask the router which agent should handle a request (never a disabled one).

        Args:
            request_content: The user's request.
        """
        team = ctx.context.team
        decision = await db_call_parallel(services.route_decide, text=request_content, team=team)
        chosen = team.agents[decision.agent]
        described = decision.as_dict()
        return _json(
            {
                "agent": chosen.slug,
                "name": chosen.name,
                "confidence": round(decision.confidence, 4),
                "nothing_fits": decision.routed_to is None,
                "path": decision.path,
                "skipped": described["skipped"],
                "runners_up": described["runners_up"],
            }
        )

    return route_request


def _monitor_agent_performance(spec: AgentSpec) -> FunctionTool:
    @function_tool
    async def monitor_agent_performance(
        ctx: RunContextWrapper[TurnContext], agent_name: str
    ) -> str:
        """Recorded performance of one agent over the last 24 hours.

        Args:
            agent_name: The agent's slug or name, e.g. "billing" or "Billing".
        """
        team = ctx.context.team
        target = team.get(agent_name) or team.by_name(agent_name)
        if target is None:
            return _json({"ok": False, "error": f"No agent called {agent_name!r}."})
        return _json(await db_call(stats.agent_performance, agent_slug=target.slug))

    return monitor_agent_performance


# Global keys are read-only to agents: a conversation must never be able to write into
# every other conversation's instructions (staff edit them).
_CONTEXT_OPERATIONS: dict[str, Callable[..., Any]] = {
    "get": lambda conversation_id, key, value: selectors.context_get(
        conversation_id=conversation_id, key=key
    ),
    "set": lambda conversation_id, key, value: services.context_set(
        conversation_id=conversation_id, key=key, value=value
    ),
    "update": lambda conversation_id, key, value: services.context_update(
        conversation_id=conversation_id, key=key, value=value
    ),
    "delete": lambda conversation_id, key, value: services.context_delete(
        conversation_id=conversation_id, key=key
    ),
}


def _parse_value(value: str | None) -> Any:
    try:
        return json.loads(value) if value else value
    except ValueError:
        return value


def _manage_context_operation(spec: AgentSpec) -> FunctionTool:
    @function_tool
    async def manage_context_operation(
        ctx: RunContextWrapper[TurnContext],
        operation: Literal["get", "set", "update", "delete"],
        key: str,
        value: str | None = None,
    ) -> str:
        """Read or change this conversation's shared context (persisted across turns and
        shared by every agent). A get also finds the team's global notes.

        Args:
            operation: get, set, update (merge into an object or append to a list), delete.
            key: The context key.
            value: For set and update: JSON text or a plain string.
        """
        current = await _current(spec.slug)
        reason = context_refusal(current, key) if current else "This agent is not available."
        if reason:
            args = {"operation": operation, "key": key}
            return await _refuse(ctx, spec.slug, "manage_context_operation", reason, args)
        apply = _CONTEXT_OPERATIONS[operation]
        try:
            result = await db_call(
                apply,
                conversation_id=ctx.context.conversation_id,
                key=key,
                value=_parse_value(value),
            )
        except ContextError as exc:
            return _json({"ok": False, "error": str(exc)})
        return _json({"ok": True, "operation": operation, "key": key, "value": result})

    return manage_context_operation


def _execute_workflow(spec: AgentSpec) -> FunctionTool:
    async def execute_workflow(
        ctx: RunContextWrapper[TurnContext], workflow: str, request: str
    ) -> str:
        """Start one of the team's workflows for this conversation and wait for its answer.

        Args:
            workflow: The workflow's slug.
            request: What the user asked, in their words.
        """
        context = ctx.context
        return _json(
            await workflow_run_and_wait(
                team=context.team,
                conversation_id=context.conversation_id,
                turn_id=context.turn_id,
                slug=workflow,
                request=request,
                emit=context.emit,
                claimed=context.claimed_workflows,
            )
        )

    return function_tool(
        execute_workflow,
        description_override=(
            "Start one of the team's multi-step workflows for this conversation and wait "
            "for its answer. Use it when the request matches a workflow; answer the user "
            "from its result."
        ),
    )


def _escalate_to_human(spec: AgentSpec) -> FunctionTool:
    @function_tool
    async def escalate_to_human(ctx: RunContextWrapper[TurnContext], reason: str) -> str:
        """Ask a person from the support team to take over this conversation. Use it when
        the user asks for a person, or when you cannot help (an exception, a complaint,
        an account change you may not make). Then tell the user what the result says.

        Args:
            reason: Why a person is needed, in a sentence for the team.
        """
        return _json(
            await db_call(
                services.human_request,
                conversation_id=ctx.context.conversation_id,
                reason=reason[:500],
            )
        )

    return escalate_to_human


BUILDERS: dict[str, Callable[[AgentSpec], FunctionTool]] = {
    "search_knowledge": _search_knowledge,
    "route_request": _route_request,
    "monitor_agent_performance": _monitor_agent_performance,
    "manage_context_operation": _manage_context_operation,
    "execute_workflow": _execute_workflow,
    "escalate_to_human": _escalate_to_human,
}
# A workflow step cannot start workflows, nor ask for a person (no conversation is live).
STEP_EXCLUDED = frozenset({"execute_workflow", "escalate_to_human"})


def _gated(spec: AgentSpec, tool: FunctionTool) -> FunctionTool:
    """The tool, refusing (and recording) a call once the agent may no longer use it."""
    invoke = tool.on_invoke_tool

    async def gated(ctx: Any, raw: str) -> Any:
        team = await db_call(selectors.team_snapshot)
        reason = tool_refusal(team, spec.slug, tool.name)
        if reason:
            return await _refuse(ctx, spec.slug, tool.name, reason, raw)
        return await invoke(ctx, raw)

    tool.on_invoke_tool = gated
    return tool


def action_description(action: ActionSpec) -> str:
    text = action.description.strip()
    if action.examples:
        text += "\n\nUsers who need it say things like: " + "; ".join(
            f"“{e}”" for e in action.examples[:5]
        )
    return text[:1024]


def action_tool(spec: AgentSpec, action: ActionSpec) -> FunctionTool:
    """An action as an SDK function tool: the action's schema, the call done by
    orchestrator.actions (permission, arguments, the request, the record). A call that
    needs approval stops the run first (the SDK's `needs_approval`): the attempt keeps
    the paused run (orchestrator.approvals), and the resumed run calls it with its grant."""
    name, slug = action.name, spec.slug

    async def invoke(ctx: Any, raw: str) -> str:
        context = ctx.context
        grants = getattr(context, "grants", None) or {}
        result = await actions.action_call(
            name=name,
            raw_arguments=raw,
            context=_call_context(ctx, slug),
            grant=grants.get(getattr(ctx, "tool_call_id", "")),
        )
        return result.output

    async def needs_approval(ctx: Any, arguments: dict[str, Any], call_id: str) -> bool:
        context = ctx.context
        if not getattr(context, "can_pause", False) or call_id in context.grants:
            return False  # a workflow step refuses in the call; a granted call runs
        team = await db_call(selectors.team_snapshot)
        current = team.actions.get(name)
        if tool_refusal(team, slug, name) or current is None or not current.enabled:
            return False  # refused (and recorded) in the call itself
        if not isinstance(arguments, dict) or argument_errors(current, arguments):
            return False  # invalid: the call says what is wrong
        return bool(approval_needed(current, arguments))

    schema = model_schema(action.schema) or {"type": "object", "properties": {}}
    return FunctionTool(
        name=name,
        description=action_description(action),
        params_json_schema=schema,
        on_invoke_tool=invoke,
        strict_json_schema=False,
        needs_approval=needs_approval,
    )


async def tool_not_found(args: ToolErrorFormatterArgs[TurnContext]) -> str | None:
    """A call of a tool the agent was not given (the run config's tool_error_formatter):
    refused, recorded, and the model told so in words."""
    if args.kind != "tool_not_found":
        return None
    context = args.run_context.context
    slug = getattr(context, "agent_slug", "") or ""
    reason = f"This agent is not allowed to use {args.tool_name}."
    output = await db_call(
        actions.tool_refusal_record,
        tool=args.tool_name,
        context=actions.CallContext(
            slug, getattr(context, "conversation_id", None), getattr(context, "turn_id", None)
        ),
        reason=reason,
        arguments=None,
    )
    return output


class ToolCache:
    """Built tools per (agent, its tools, its actions' versions, whether workflows are
    allowed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tools: dict[tuple[Any, ...], list[FunctionTool]] = {}

    def tools_for(
        self, spec: AgentSpec, *, team: Team | None = None, workflows: bool = True
    ) -> list[FunctionTool]:
        granted = team.actions_of(spec) if team is not None else []
        key = (spec.slug, spec.tools, tuple((a.name, a.version) for a in granted), workflows)
        key += (mcp_cache_key(spec, team),)
        with self._lock:
            tools = self._tools.get(key)
        if tools is None:
            tools = [
                _gated(spec, build(spec))
                for name, build in BUILDERS.items()
                if name in spec.tools and (workflows or name not in STEP_EXCLUDED)
            ]
            tools += [action_tool(spec, action) for action in granted]
            if team is not None:
                tools += mcp_tools_for(spec, team, {t.name for t in tools})
            with self._lock:
                self._tools[key] = tools
        return list(tools)

    def reset(self) -> None:
        with self._lock:
            self._tools.clear()


tool_cache = ToolCache()
