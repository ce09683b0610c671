"""The simulated model for the benchmarks: tests/support's OpenAI-compatible server with
a set time to first token, tokens per second and reply length.

    python -m bench.model_server --port P [--first-token S] [--tokens-per-second N]
                                 [--words N] [--script reply|handoff]

`reply` answers every request with text; `route`: the orchestrator hands off to
Billing, which replies; `handoff` plays a full turn: the orchestrator hands off to
Billing, Billing calls search_knowledge, then replies. Every call waits --first-token.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from tests.support.openai_server import OpenAICompatibleServer, Step


def _after_handoff(messages: list[dict]) -> bool:
    """Whether the last tool result is a handoff's (the specialist has not acted yet)."""
    for message in reversed(messages):
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if calls:
            return calls[-1]["function"]["name"].startswith("transfer_to_")
    return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-token", type=float, default=0.0)
    parser.add_argument("--tokens-per-second", type=float, default=0.0)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--script", choices=["reply", "route", "handoff"], default="reply")
    args = parser.parse_args()
    text = " ".join(f"word{i}" for i in range(args.words))
    delay = 1 / args.tokens_per_second if args.tokens_per_second else 0.0

    def reply() -> Step:
        return Step(text=text, first_token_delay=args.first_token, token_delay=delay)

    def respond(body) -> Step:
        if args.script == "reply":
            return reply()
        tools = {t["function"]["name"] for t in body.get("tools") or ()}
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "tool" and not _after_handoff(messages):
            return reply()  # the answer to a tool result (search_knowledge's)
        if "transfer_to_billing" in tools:
            return Step(
                tool_calls=[("transfer_to_billing", {})], first_token_delay=args.first_token
            )
        if args.script == "handoff" and "search_knowledge" in tools:
            return Step(
                tool_calls=[("search_knowledge", {"query": "charged twice"})],
                first_token_delay=args.first_token,
            )
        return reply()

    server = OpenAICompatibleServer(port=args.port)
    server.responder = respond
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
