"""Using an MCP server's tools: check the server, then for each call check, connect, record.

`mcp_server_check` is the admin's "check the server": it connects, lists the tools and
stores the listing (or the reason it could not). `mcp_call` is what an agent's MCP tool
runs (orchestrator/sdk/mcp_tools.py only adapts it): the agent's permission is checked
against the registry as it is now (the server still enabled, still granted to the agent,
the tool still on its allow-list), the host against SUPERORCH_ACTION_HOSTS, the arguments
against the tool's listed schema; then the tool is called (orchestrator/sdk/mcp_client.py)
and its answer handed to the model as data. Every call, whatever happened, leaves one
ActionCall row (`tool` is the name the model called, `<server>__<tool>`).

Header values are read from the stored secrets at the moment of the call, held by
`McpEndpoint` (whose repr hides them) and sent in headers only: never in the record, a
log line or what the model is shown (an answer that echoes one has it blanked out).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.utils import timezone

from . import selectors
from .actions import CallContext, CallResult, action_call_record, parse_arguments, refusal_output
from .aio import db_call
from .domain import actions as rules
from .domain import mcp as mcp_rules
from .domain.enums import ActionCallStatus
from .domain.mcp import McpEndpoint, McpServerSpec, McpToolSpec, McpUnavailable
from .models import ActionSecret, McpServer
from .sdk import mcp_client

MAX_ANSWER_CHARS = 20_000  # of a tool's text the model is shown


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str  # for staff, in plain words
    tools: list[str] = field(default_factory=list)


def mcp_endpoint(server: McpServer) -> McpEndpoint | None:
    """The server's address with its header secrets' values (None: one cannot be read)."""
    wanted = {str(h): str(n) for h, n in (server.headers or {}).items()}
    stored = {s.name: s.reveal() for s in ActionSecret.objects.filter(name__in=wanted.values())}
    headers = {h: stored.get(n) for h, n in wanted.items()}
    if any(not v for v in headers.values()):
        return None
    return McpEndpoint(
        url=server.url,
        timeout=float(server.timeout_seconds),
        headers={h: v for h, v in headers.items() if v},
    )


# --- the admin's check ---------------------------------------------------------------------


def mcp_server_check(*, server: McpServer) -> CheckResult:
    """Connect, list the tools, store the listing; the outcome in words for staff."""
    refusal = rules.host_refusal(server.url, settings.SUPERORCH_ACTION_HOSTS)
    endpoint = mcp_endpoint(server)
    listing: list[dict[str, Any]] = []
    if refusal:
        error = refusal.replace("The action's address", "The address")
    elif endpoint is None:
        error = "A header's stored secret is missing or cannot be read; enter it again."
    else:
        try:
            listing = async_to_sync(mcp_client.list_tools)(endpoint, name=server.name)
            error = ""
        except McpUnavailable as exc:
            error = str(exc)
    server.checked_at = timezone.now()
    server.last_error = error
    fields = ["checked_at", "last_error", "updated_at"]
    if not error:
        server.tools = listing
        fields.append("tools")
    server.save(update_fields=fields)
    if error:
        return CheckResult(False, f"Could not check the {server.name} MCP server: {error}")
    names = [str(t["name"]) for t in listing]
    allowed = [n for n in names if n in (server.allowed_tools or [])]
    gone = [n for n in (server.allowed_tools or []) if n not in names]
    count = f"{len(names)} tool" + ("" if len(names) == 1 else "s")
    message = f"The {server.name} MCP server lists {count}: {', '.join(names) or 'none'}. "
    message += f"Allowed: {', '.join(allowed) or 'none'}."
    if gone:
        message += f" No longer listed, so not offered: {', '.join(gone)}."
    return CheckResult(True, message, names)


# --- a call ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """A checked call, ready to make. The header values live in `endpoint` only."""

    server: str
    tool: str
    exposed: str
    arguments: dict[str, Any]
    context: CallContext
    endpoint: McpEndpoint = field(repr=False)

    @property
    def secrets(self) -> list[str]:
        return list(self.endpoint.headers.values())


def _refuse(
    exposed: str, context: CallContext, status: ActionCallStatus, error: str, arguments: Any
) -> CallResult:
    call_id = action_call_record(
        tool=exposed, context=context, status=status, arguments=arguments, error=error
    )
    return CallResult(status, refusal_output(error), call_id)


def _permission(context: CallContext, server: str, tool: str) -> tuple[McpServerSpec | None, str]:
    team = selectors.team_snapshot()
    spec = team.get(context.agent_slug)
    if spec is None or not spec.enabled:
        return None, "This agent is not available any more."
    found = team.mcp_servers.get(server)
    reason = mcp_rules.call_refusal(found, spec.mcp_servers, server, tool)
    return found, reason or ""


def _argument_errors(tool: McpToolSpec | None, arguments: dict[str, Any]) -> list[str]:
    if tool is None:
        return []
    schema = mcp_rules.input_schema(tool)
    if rules.schema_problems(schema):
        return []  # a schema we cannot read: the server checks its own arguments
    return rules.argument_errors(
        rules.ActionSpec(name=tool.name, description="", schema=schema), arguments
    )


def mcp_prepare(
    *, server: str, tool: str, exposed: str, raw_arguments: Any, context: CallContext
) -> _Prepared | CallResult:
    """Check a call (permission now, host, arguments, secrets): the call to make, or the
    refusal already recorded."""
    arguments, problem = parse_arguments(raw_arguments)
    shown = arguments if arguments is not None else raw_arguments
    found, reason = _permission(context, server, tool)
    if reason or found is None:
        return _refuse(exposed, context, ActionCallStatus.REFUSED, reason, shown)
    refusal = rules.host_refusal(found.url, settings.SUPERORCH_ACTION_HOSTS)
    if refusal:
        error = refusal.replace("The action's address", "The MCP server's address")
        return _refuse(exposed, context, ActionCallStatus.REFUSED, error, shown)
    listed = next((t for t in found.tools if t.name == tool), None)
    errors = [problem] if arguments is None else _argument_errors(listed, arguments)
    if errors:
        return _refuse(exposed, context, ActionCallStatus.INVALID, " ".join(errors), shown)
    assert arguments is not None
    row = McpServer.objects.filter(name=server).first()
    endpoint = mcp_endpoint(row) if row is not None else None
    if endpoint is None:
        error = "This MCP server's stored secrets cannot be read; our team has to enter them again."
        return _refuse(exposed, context, ActionCallStatus.FAILED, error, arguments)
    return _Prepared(server, tool, exposed, arguments, context, endpoint)


def _shown(text: str) -> Any:
    """A tool's text for the model: its JSON when it is JSON, else the text."""
    if len(text) > MAX_ANSWER_CHARS:
        return text[:MAX_ANSWER_CHARS] + " [cut: the answer was longer]"
    try:
        return json.loads(text) if text.strip()[:1] in ("{", "[") else text
    except ValueError:
        return text


async def mcp_call(
    *, server: str, tool: str, exposed: str, raw_arguments: Any, context: CallContext
) -> CallResult:
    """What an agent's MCP tool does: check, then call, or refuse; always recorded."""
    prepared = await db_call(
        mcp_prepare,
        server=server,
        tool=tool,
        exposed=exposed,
        raw_arguments=raw_arguments,
        context=context,
    )
    if isinstance(prepared, CallResult):
        return prepared
    started = time.monotonic()
    status, output, error = await _send(prepared)
    call_id = await db_call(
        action_call_record,
        tool=exposed,
        context=context,
        status=status,
        arguments=prepared.arguments,
        error=error,
        output=output if status == ActionCallStatus.OK else "",
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return CallResult(status, output, call_id)


async def _send(prepared: _Prepared) -> tuple[ActionCallStatus, str, str]:
    """(status, what the model sees, the error in words)."""
    try:
        answer = await mcp_client.call_tool(
            prepared.endpoint,
            name=prepared.server,
            tool=prepared.tool,
            arguments=prepared.arguments,
        )
    except McpUnavailable as exc:
        return ActionCallStatus.FAILED, refusal_output(str(exc)), str(exc)
    text = rules.scrub(answer.text, prepared.secrets)
    if answer.is_error:
        error = f"The {prepared.tool} tool of the {prepared.server} MCP server reported a problem."
        shown = rules.data_block(f"What the {prepared.exposed} tool said", {"error": _shown(text)})
        return ActionCallStatus.FAILED, shown, f"{error} {text[:1500]}"
    title = f"The answer of the {prepared.exposed} tool"
    return ActionCallStatus.OK, rules.data_block(title, _shown(text)), ""
