"""Overhead: full chat turns over WebSocket against the same agents run by the SDK alone.

A full turn: the message is stored and acknowledged, routed, the orchestrator hands
off to Billing, Billing calls search_knowledge, streams its reply, and every
message, turn, event and agent run is recorded. The model is the simulated one with
no latency (tool call, handoff and a 40-word reply, streamed), so what is measured is
our work around it. The limit is the SDK alone running the same agents in one
process (bench/sdk_alone.py). Target: ours >= 0.6 of the SDK-alone rate.

    python -m bench overhead [--json] [--turns N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from typing import Any

from bench import harness
from bench.scenarios.ttft import ORCHESTRATOR_FIRST

TARGET = 0.6


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench overhead")
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    with harness.simulated_model(0.0, 0.0, 40, "handoff") as model:
        extra = {
            "OPENAI_BASE_URL": model,
            "OPENAI_API_KEY": "bench",
            "SUPERORCH_DEFAULT_MODEL": "sim",
        }
        with harness.fresh_database(**extra) as env:
            # Every turn starts at the orchestrator, so every turn has its handoff.
            harness.manage(env, "shell", "-c", ORCHESTRATOR_FIRST)
            done = subprocess.run(
                [
                    harness.PY,
                    "-m",
                    "bench.sdk_alone",
                    "--turns",
                    str(args.turns),
                    "--concurrency",
                    str(args.concurrency),
                ],
                cwd=harness.ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode:
                raise RuntimeError(done.stderr[-3000:])
            alone = json.loads(done.stdout.strip().splitlines()[-1])
            with harness.server(env) as url:
                harness.loadgen(url, "--mode", "turns", "--count", "2", "--fresh")  # warm up
                ours = harness.loadgen(
                    url,
                    "--mode",
                    "turns",
                    "--conns",
                    str(args.concurrency),
                    "--count",
                    str(max(args.turns // args.concurrency, 1)),
                    "--fresh",
                )
    ratio = ours["per_second"] / alone["per_second"]
    return {
        "scenario": "overhead",
        "concurrency": args.concurrency,
        "ours_turns_per_second": round(ours["per_second"], 2),
        "sdk_alone_turns_per_second": round(alone["per_second"], 2),
        "errors": ours["failed"] + ours["errors"],
        "lost": ours["lost"],
        "ratio": round(ratio, 3),
        "target": TARGET,
        "meets": ratio >= TARGET,
    }


def report(r: dict[str, Any]) -> str:
    return (
        f"Full turns over WebSocket: {r['ours_turns_per_second']} turns/s; the SDK alone: "
        f"{r['sdk_alone_turns_per_second']} turns/s ({r['concurrency']} at a time).\n"
        f"  ratio {r['ratio']} (target >= {r['target']}): {'met' if r['meets'] else 'NOT met'}; "
        f"errors {r['errors']}, lost {r['lost']}"
    )
