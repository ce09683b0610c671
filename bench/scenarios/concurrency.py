"""Concurrency: N simultaneous conversations, one server process, each streaming a reply
from the simulated model (first token after 0.2 s, then 20 tokens/s, 40 words).

For each N: errors (error frames), lost messages (sent but not acknowledged, or
acknowledged but not in the database afterwards), late replies (no message.done
within the client's wait: the message is stored and is answered later, in order),
and the added latency per token: the gaps between consecutive deltas as the client
sees them, minus the model's own pace (50 ms). Targets: no errors, nothing lost, no
reply late, p99 added latency <= 100 ms at the largest N.

    python -m bench concurrency [--json] [--levels 10,100,500,1000] [--timeout 120]
                                [--max-active-turns N]
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
    parser.add_argument(
        "--max-active-turns",
        type=int,
        help="the server's SUPERORCH_MAX_ACTIVE_TURNS (default: the app's default)",
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
        if args.max_active_turns is not None:
            extra["SUPERORCH_MAX_ACTIVE_TURNS"] = str(args.max_active_turns)
        with harness.fresh_database(**extra) as env, harness.server(env) as url:
            harness.loadgen(url, "--mode", "turns", "--count", "2", "--fresh")  # warm up
            stored_before = _user_messages(env)
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
                stored = _user_messages(env)
                rows.append(
                    {
                        "conversations": n,
                        "errors": r["errors"],
                        "lost": n - min(r["acked"], stored - stored_before),
                        "late": r["lost"],
                        "added_p50_ms": round(max(r["gap_p50_ms"] - pace_ms, 0.0), 1),
                        "added_p99_ms": round(max(r["gap_p99_ms"] - pace_ms, 0.0), 1),
                        "ttft_p50_ms": round(r["ttft_p50_ms"]),
                        "ttft_p95_ms": round(r["ttft_p95_ms"]),
                        "seconds": round(r["seconds"], 1),
                    }
                )
                stored_before = stored
    last = rows[-1]
    late = f", 0 late (wait {args.timeout:.0f} s)"
    return {
        "scenario": "concurrency",
        "model": {"first_token_s": 0.2, "tokens_per_second": TOKENS_PER_SECOND, "words": 40},
        "levels": rows,
        "ratio": round(last["added_p99_ms"] / TARGET_P99_MS, 3),
        "client_wait_s": args.timeout,
        "target": f"0 errors, 0 lost{late}, p99 added <= {TARGET_P99_MS:.0f} ms at "
        f"{last['conversations']}",
        "meets": last["errors"] == 0
        and last["lost"] == 0
        and last["late"] == 0
        and last["added_p99_ms"] <= TARGET_P99_MS,
    }


def _user_messages(env: dict[str, str]) -> int:
    """User messages stored in the server's database."""
    return harness.sql(env, "SELECT count(*) FROM chat_message WHERE role = 'user'")[0]


def report(r: dict[str, Any]) -> str:
    lines = [
        "| conversations | errors | lost | late | added per token p50 (ms) | p99 (ms) | "
        "first token p50 / p95 (ms) | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for x in r["levels"]:
        lines.append(
            f"| {x['conversations']} | {x['errors']} | {x['lost']} | {x.get('late', '?')} | "
            f"{x['added_p50_ms']} | "
            f"{x['added_p99_ms']} | {x['ttft_p50_ms']} / {x['ttft_p95_ms']} | {x['seconds']} |"
        )
    lines.append(f"target: {r['target']}: {'met' if r['meets'] else 'NOT met'}")
    return "\n".join(lines)
