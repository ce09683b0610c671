"""Time to first token: our routed turns against a pipeline in the style of the original
design document, which asks the orchestrator's model first on every message.

Both run on the same server and the same simulated model (400 ms to first token, 50
tokens/s, 10-word replies: only the first token is timed): "ours" routes a confident
message straight to Billing (one model call before the first token); "orchestrator
first" sets the routing threshold above 1 with "let the orchestrator's LLM decide", so
every turn starts with the orchestrator's model call and its handoff. The server
reads the routing settings on every turn, so the two are measured in alternating
rounds on one server (the setting switched in the database between rounds), and the
medians are over all turns of each. Target: ours <= 0.55 of the orchestrator-first
median.

    python -m bench ttft [--json] [--turns N] [--rounds R] [--first-token S]
                         [--tokens-per-second N]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from bench import harness
from bench.loadgen import pct

TARGET = 0.55


def routing(env: dict[str, str], *, orchestrator_first: bool) -> None:
    """Orchestrator first: no confidence is enough (threshold above 1) and the
    orchestrator's LLM decides when unsure; else the defaults (calibrated threshold,
    the fallback agent when unsure). The same row staff edit in the admin."""
    threshold, when_unsure = (1.01, "orchestrator") if orchestrator_first else (None, "fallback")
    harness.sql(
        env,
        "INSERT OR REPLACE INTO orchestrator_routingsettings "
        "(id, threshold, when_unsure, topic_change_margin, updated_at) "
        "VALUES (1, ?, ?, 0.15, datetime('now'))",
        threshold,
        when_unsure,
    )


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench ttft")
    parser.add_argument("--turns", type=int, default=20, help="turns of each pipeline")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--first-token", type=float, default=0.4)
    parser.add_argument("--tokens-per-second", type=float, default=50)
    args = parser.parse_args(argv)
    per = max(args.turns // args.rounds, 1)
    ttfts: dict[str, list[float]] = {"ours": [], "orchestrator_first": []}
    failed = 0
    extra = {"OPENAI_API_KEY": "bench", "SUPERORCH_DEFAULT_MODEL": "sim"}
    with (
        harness.simulated_model(args.first_token, args.tokens_per_second, 10, "route") as model,
        harness.fresh_database(OPENAI_BASE_URL=model, **extra) as env,
        harness.server(env) as url,
    ):
        harness.loadgen(url, "--mode", "turns", "--count", "2")  # warm up (router, imports)
        for _ in range(args.rounds):
            for name in ttfts:
                routing(env, orchestrator_first=name == "orchestrator_first")
                # The first message of each conversation: follow-ups stay with their
                # specialist in both pipelines, so only a first message shows the
                # orchestrator's cost.
                r = harness.loadgen(
                    url, "--mode", "turns", "--conns", "1", "--count", str(per), "--fresh",
                    "--samples",
                )  # fmt: skip
                ttfts[name].extend(r["ttft_ms"])
                failed += r["failed"] + r["errors"]
    ours, theirs = ttfts["ours"], ttfts["orchestrator_first"]
    ratio = statistics.median(ours) / statistics.median(theirs)
    return {
        "scenario": "ttft",
        "model": {"first_token_s": args.first_token, "tokens_per_second": args.tokens_per_second},
        "ours_ttft_p50_ms": round(statistics.median(ours), 1),
        "ours_ttft_p95_ms": round(pct(ours, 0.95), 1),
        "orchestrator_first_ttft_p50_ms": round(statistics.median(theirs), 1),
        "orchestrator_first_ttft_p95_ms": round(pct(theirs, 0.95), 1),
        "errors": failed,
        "turns": per * args.rounds,
        "rounds": args.rounds,
        "ratio": round(ratio, 3),
        "target": TARGET,
        "meets": ratio <= TARGET and not failed,
    }


def report(r: dict[str, Any]) -> str:
    return (
        f"Time to first token (simulated model: {r['model']['first_token_s']} s, "
        f"{r['model']['tokens_per_second']} tokens/s; {r['turns']} turns each, in "
        f"{r.get('rounds', 1)} alternating rounds on one server):\n"
        f"  ours (routed):      p50 {r['ours_ttft_p50_ms']} ms, p95 {r['ours_ttft_p95_ms']} ms\n"
        f"  orchestrator first: p50 {r['orchestrator_first_ttft_p50_ms']} ms, "
        f"p95 {r['orchestrator_first_ttft_p95_ms']} ms\n"
        f"  ratio {r['ratio']} (target <= {r['target']}): {'met' if r['meets'] else 'NOT met'}; "
        f"errors {r['errors']}"
    )
