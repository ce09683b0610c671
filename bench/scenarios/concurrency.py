"""Concurrency: N simultaneous conversations, one server process, each streaming a reply
from the simulated model (first token after 0.2 s, then 20 tokens/s, 40 words).

For each N: errors (error frames or turns not ok), lost messages (no message.done),
and the added latency per token: the gaps between consecutive deltas as the client
sees them, minus the model's own pace (50 ms). Targets: no errors, nothing lost,
p99 added latency <= 100 ms at the largest N.

    python -m bench concurrency [--json] [--levels 10,100,500,1000] [--timeout 120]
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import harness

TOKENS_PER_SECOND = 20.0
TARGET_P99_MS = 100.0


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench concurrency")
    parser.add_argument("--levels", default="10,100,500,1000")
    parser.add_argument(
        "--timeout", type=float, default=120, help="seconds a client waits for its reply"
    )
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    pace_ms = 1000 / TOKENS_PER_SECOND
    rows = []
    with harness.simulated_model(0.2, TOKENS_PER_SECOND, 40, "reply") as model:
        extra = {
            "OPENAI_BASE_URL": model,
            "OPENAI_API_KEY": "bench",
            "SUPERORCH_DEFAULT_MODEL": "sim",
        }
        with harness.fresh_database(**extra) as env, harness.server(env) as url:
            harness.loadgen(url, "--mode", "turns", "--count", "2", "--fresh")  # warm up
            for n in levels:
                r = harness.loadgen(
                    url,
                    "--mode",
                    "turns",
                    "--conns",
                    str(n),
                    "--count",
                    "1",
                    "--timeout",
                    str(args.timeout),
                    timeout=900,
                )
                rows.append(
                    {
                        "conversations": n,
                        "errors": r["errors"] + r["failed"],
                        "lost": r["lost"],
                        "added_p50_ms": round(max(r["gap_p50_ms"] - pace_ms, 0.0), 1),
                        "added_p99_ms": round(max(r["gap_p99_ms"] - pace_ms, 0.0), 1),
                        "ttft_p50_ms": round(r["ttft_p50_ms"]),
                        "ttft_p95_ms": round(r["ttft_p95_ms"]),
                        "seconds": round(r["seconds"], 1),
                    }
                )
    last = rows[-1]
    return {
        "scenario": "concurrency",
        "model": {"first_token_s": 0.2, "tokens_per_second": TOKENS_PER_SECOND, "words": 40},
        "levels": rows,
        "ratio": round(last["added_p99_ms"] / TARGET_P99_MS, 3),
        "target": f"0 errors, 0 lost, p99 added <= {TARGET_P99_MS:.0f} ms at {last['conversations']}",
        "meets": last["errors"] == 0
        and last["lost"] == 0
        and last["added_p99_ms"] <= TARGET_P99_MS,
    }


def report(r: dict[str, Any]) -> str:
    lines = [
        "| conversations | errors | lost | added per token p50 (ms) | p99 (ms) | first token p50 / p95 (ms) | s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for x in r["levels"]:
        lines.append(
            f"| {x['conversations']} | {x['errors']} | {x['lost']} | {x['added_p50_ms']} | "
            f"{x['added_p99_ms']} | {x['ttft_p50_ms']} / {x['ttft_p95_ms']} | {x['seconds']} |"
        )
    lines.append(f"target: {r['target']}: {'met' if r['meets'] else 'NOT met'}")
    return "\n".join(lines)
