"""Time to first token: our routed turns against a pipeline in the style of the original
design document, which asks the orchestrator's model first on every message.

Both run on the same server build and the same simulated model (400 ms to first
token, 50 tokens/s, 40-word replies): "ours" routes a confident message straight to
Billing (one model call before the first token); "orchestrator first" sets the
routing threshold above 1 with "let the orchestrator's LLM decide", so every turn
starts with the orchestrator's model call and its handoff. Target: ours <= 0.55 of
the orchestrator-first median.

    python -m bench ttft [--json] [--turns N] [--first-token S] [--tokens-per-second N]
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import harness

TARGET = 0.55
ORCHESTRATOR_FIRST = (
    "from orchestrator.models import RoutingSettings;"
    "RoutingSettings.objects.update_or_create(pk=1, defaults="
    "{'threshold': 1.01, 'when_unsure': 'orchestrator'})"
)


def _measure(model_url: str, turns: int, orchestrator_first: bool) -> dict[str, Any]:
    extra = {
        "OPENAI_BASE_URL": model_url,
        "OPENAI_API_KEY": "bench",
        "SUPERORCH_DEFAULT_MODEL": "sim",
    }
    with harness.fresh_database(**extra) as env:
        if orchestrator_first:
            harness.manage(env, "shell", "-c", ORCHESTRATOR_FIRST)
        with harness.server(env) as url:
            harness.loadgen(url, "--mode", "turns", "--count", "2")  # warm up (router, imports)
            # The first message of each conversation: follow-ups stay with their specialist
            # in both pipelines, so only a first message shows the orchestrator's cost.
            return harness.loadgen(
                url, "--mode", "turns", "--conns", "1", "--count", str(turns), "--fresh"
            )


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench ttft")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--first-token", type=float, default=0.4)
    parser.add_argument("--tokens-per-second", type=float, default=50)
    args = parser.parse_args(argv)
    with harness.simulated_model(args.first_token, args.tokens_per_second, 40, "route") as model:
        ours = _measure(model, args.turns, orchestrator_first=False)
        theirs = _measure(model, args.turns, orchestrator_first=True)
    ratio = ours["ttft_p50_ms"] / theirs["ttft_p50_ms"]
    return {
        "scenario": "ttft",
        "model": {"first_token_s": args.first_token, "tokens_per_second": args.tokens_per_second},
        "ours_ttft_p50_ms": round(ours["ttft_p50_ms"], 1),
        "ours_ttft_p95_ms": round(ours["ttft_p95_ms"], 1),
        "orchestrator_first_ttft_p50_ms": round(theirs["ttft_p50_ms"], 1),
        "orchestrator_first_ttft_p95_ms": round(theirs["ttft_p95_ms"], 1),
        "errors": ours["failed"] + theirs["failed"],
        "turns": args.turns,
        "ratio": round(ratio, 3),
        "target": TARGET,
        "meets": ratio <= TARGET,
    }


def report(r: dict[str, Any]) -> str:
    return (
        f"Time to first token (simulated model: {r['model']['first_token_s']} s, "
        f"{r['model']['tokens_per_second']} tokens/s; {r['turns']} turns each):\n"
        f"  ours (routed):      p50 {r['ours_ttft_p50_ms']} ms, p95 {r['ours_ttft_p95_ms']} ms\n"
        f"  orchestrator first: p50 {r['orchestrator_first_ttft_p50_ms']} ms, "
        f"p95 {r['orchestrator_first_ttft_p95_ms']} ms\n"
        f"  ratio {r['ratio']} (target <= {r['target']}): {'met' if r['meets'] else 'NOT met'}; "
        f"errors {r['errors']}"
    )
