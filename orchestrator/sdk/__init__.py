"""The door to the OpenAI Agents SDK: the only package that imports `agents`.

- providers/: the SDK Model for an agent (the local offline model, OpenAI, any
  OpenAI-compatible server);
- team: the registry's agents as SDK Agents with their handoffs and tools;
- tools: the agents' function tools; context: what the SDK hands each tool;
- attempt: one run of the SDK for a turn, its stream mapped to our events;
- recorder: the run hooks that record one AgentRun per agent and feed its breaker;
- errors: which SDK and client exceptions are model failures, of which kind;
- step: one workflow step (one agent, one instruction, no streaming).

An SDK upgrade touches this package only (import-linter checks it, pyproject.toml).
"""

from agents import set_tracing_disabled

# Never upload traces to OpenAI; operators can register their own processor.
set_tracing_disabled(True)
