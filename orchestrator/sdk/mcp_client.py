"""Talking to an MCP server over streamable HTTP, through the SDK's `MCPServerStreamableHttp`.

One connection per use (a check lists the tools; a call calls one tool), opened with the
server's URL, its secret headers and its timeout, and closed afterwards. Whatever goes
wrong (the server is down, too slow, refuses our credentials, breaks the protocol) is
raised as `McpUnavailable` in plain words: never a stack trace, never a header value
(exceptions are logged by their type only).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agents.mcp import MCPServerStreamableHttp

from ..domain.mcp import McpAnswer, McpEndpoint, McpUnavailable, answer_text

logger = logging.getLogger(__name__)


def _server(endpoint: McpEndpoint, name: str) -> MCPServerStreamableHttp:
    return MCPServerStreamableHttp(
        {
            "url": endpoint.url,
            "headers": dict(endpoint.headers),
            "timeout": endpoint.timeout,
            "sse_read_timeout": endpoint.timeout,
        },
        name=name,
        client_session_timeout_seconds=endpoint.timeout,
        max_retry_attempts=0,
    )


def _words(exc: BaseException, endpoint: McpEndpoint) -> str:
    text = str(exc).lower()  # read for its kind only, never shown (it may carry anything)
    if isinstance(exc, TimeoutError) or "timeout" in text or "timed out" in text:
        return f"The MCP server did not answer within {endpoint.timeout:g} seconds."
    if "http error 401" in text or "http error 403" in text:
        return "The MCP server refused our credentials; our team has to fix its set-up."
    if "http error" in text:
        return "The MCP server answered with an error. Please try again later."
    return "The MCP server could not be reached. Please try again later."


async def _with(endpoint: McpEndpoint, name: str, work: Any) -> Any:
    try:
        async with asyncio.timeout(endpoint.timeout + 1):
            async with _server(endpoint, name) as server:
                return await work(server)
    except asyncio.CancelledError:
        raise
    except McpUnavailable:
        raise
    except BaseException as exc:  # the SDK and anyio raise groups and their own kinds
        if not isinstance(exc, Exception | BaseExceptionGroup):
            raise
        logger.warning("MCP server %s: %s", name, type(exc).__name__)
        raise McpUnavailable(_words(_first(exc), endpoint)) from None


def _first(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def list_tools(endpoint: McpEndpoint, *, name: str) -> list[dict[str, Any]]:
    """The server's tools: [{"name", "description", "input_schema"}]."""

    async def work(server: MCPServerStreamableHttp) -> list[dict[str, Any]]:
        tools = await server.list_tools()
        return [
            {
                "name": tool.name,
                "description": tool.description or "",
                "input_schema": _schema_of(tool),
            }
            for tool in tools
        ]

    return await _with(endpoint, name, work)


def _schema_of(tool: Any) -> dict[str, Any]:
    schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None)
    return dict(schema) if isinstance(schema, dict) else {"type": "object", "properties": {}}


async def call_tool(
    endpoint: McpEndpoint, *, name: str, tool: str, arguments: dict[str, Any]
) -> McpAnswer:
    """Call one tool; its answer's text (an error the tool reports is an answer too)."""

    async def work(server: MCPServerStreamableHttp) -> McpAnswer:
        result = await server.call_tool(tool, arguments)
        is_error = bool(getattr(result, "is_error", None) or getattr(result, "isError", False))
        return McpAnswer(answer_text(result.content or ()), is_error=is_error)

    return await _with(endpoint, name, work)
