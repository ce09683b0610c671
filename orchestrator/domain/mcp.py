"""MCP servers: the tools of a Model Context Protocol server (streamable HTTP) that staff
connected in the admin, as plain rules.

Pure (no ORM, no SDK, no network): a server as the runtime sees it (`McpServerSpec`, with
its stored tool listing and its allow-list), the name each allowed tool gets as an agent's
tool, why a call may not be made now, and what is wrong with a server's settings, in
words for staff. orchestrator/mcp.py makes the calls; docs/actions.md (MCP servers) is
the site owner's guide.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SERVER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SEPARATOR = "__"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_TOOL_NAME = 64  # what the model APIs accept for a function's name


class McpUnavailable(Exception):
    """The server could not be used (down, too slow, refused us): its words are for people."""


@dataclass(frozen=True)
class McpToolSpec:
    """One tool of a server's stored listing."""

    name: str
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class McpServerSpec:
    """One MCP server as the runtime sees it (no header values: those stay in the database
    until the moment of the call)."""

    name: str
    url: str
    enabled: bool = True
    timeout: float = 10.0
    allowed_tools: tuple[str, ...] = ()
    tools: tuple[McpToolSpec, ...] = ()
    id: int | None = None
    version: str = ""  # changes whenever staff edit it or its listing is refreshed

    def allowed(self) -> list[McpToolSpec]:
        """The listed tools on the allow-list (a name on the list the server does not
        offer gives no tool: its schema is unknown)."""
        return [t for t in self.tools if t.name in self.allowed_tools]


@dataclass(frozen=True)
class McpEndpoint:
    """Where and how to connect, secrets included (never printed)."""

    url: str
    timeout: float
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class McpAnswer:
    text: str
    is_error: bool = False


def tool_name(server: str, tool: str) -> str:
    """The name an agent's model calls: `<server>__<tool>`, letters, digits, _ and -, at
    most 64 characters (a longer one keeps its start and a short hash of the whole)."""
    name = _UNSAFE.sub("_", f"{server}{SEPARATOR}{tool}")
    if len(name) <= MAX_TOOL_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_TOOL_NAME - 9]}_{digest}"


def listing_from(raw: Iterable[Mapping[str, Any]]) -> tuple[McpToolSpec, ...]:
    """A stored listing ([{"name", "description", "input_schema"}]) as specs."""
    tools = []
    for item in raw or ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        schema = item.get("input_schema")
        tools.append(
            McpToolSpec(
                name=item["name"],
                description=str(item.get("description") or ""),
                schema=schema if isinstance(schema, Mapping) else {},
            )
        )
    return tuple(tools)


def input_schema(tool: McpToolSpec) -> dict[str, Any]:
    """The tool's arguments schema as a model is given it (always an object)."""
    schema = dict(tool.schema) if isinstance(tool.schema, Mapping) else {}
    if schema.get("type") != "object":
        return {"type": "object", "properties": {}}
    schema.setdefault("properties", {})
    return schema


def description(server: McpServerSpec, tool: McpToolSpec) -> str:
    text = tool.description.strip() or f"The {tool.name} tool."
    return f"{text}\n\n(A tool of the {server.name} MCP server.)"[:1024]


def call_refusal(
    server: McpServerSpec | None, granted: Iterable[str], server_name: str, tool: str
) -> str | None:
    """Why this agent may not call this tool of this server now (None when it may):
    `granted` is the agent's servers as the registry has them now."""
    if server is None or server_name not in granted:
        return f"This agent is not allowed to use the {server_name} MCP server."
    if not server.enabled:
        return f"The {server_name} MCP server is switched off."
    if tool not in server.allowed_tools:
        return f"The tool {tool} of the {server_name} MCP server is not on its allow-list."
    return None


# --- settings, in words for staff ----------------------------------------------------------


def name_problems(name: str, reserved: Iterable[str]) -> list[str]:
    if not SERVER_NAME.match(name or ""):
        return [
            "Use lowercase letters, digits and underscores, starting with a letter, at most "
            "40 characters (its tools are called <name>__<tool>)."
        ]
    if SEPARATOR in name:
        return ["The name may not contain two underscores in a row (they separate the tool)."]
    if name in set(reserved):
        return [f"{name} is a built-in tool's name."]
    return []


def allowed_tools_problems(allowed: Any, listing: tuple[McpToolSpec, ...]) -> list[str]:
    """What is wrong with an allow-list: a list of tool names the server lists (when it
    was checked; before that any names may be entered)."""
    if not isinstance(allowed, list) or not all(isinstance(a, str) and a for a in allowed):
        return ['The allowed tools must be a list of tool names, e.g. ["order_status"].']
    if not listing:
        return []
    known = {t.name for t in listing}
    unknown = [a for a in allowed if a not in known]
    if unknown:
        return [
            "The server does not list " + ", ".join(unknown) + ". Its tools are: "
            + (", ".join(sorted(known)) or "none") + " (check the server to refresh the list)."
        ]  # fmt: skip
    return []


def answer_text(content: Iterable[Any]) -> str:
    """The text parts of a tool's answer, joined (other kinds are named, not shown)."""
    parts = []
    for item in content:
        text = getattr(item, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            parts.append(f"[{getattr(item, 'type', 'content')} not shown]")
    return "\n".join(parts)
