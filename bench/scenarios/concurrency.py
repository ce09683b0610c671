"""Concurrency: N simultaneous conversations, one server process, each streaming a reply
from the simulated model (first token after 0.2 s, then 20 tokens/s, 40 words).

For each N: errors (error frames), lost messages (sent but not acknowledged, or
acknowledged but not in the database afterwards), late replies (no message.done
within the client's wait: the message is stored and is answered later, in order),
and the added latency per token: the gaps between consecutive deltas as the client
sees them, minus the model's own pace (50 ms). Targets: no errors, nothing lost, no
reply late, p99 added latency <= 100 ms at the largest N.

    python -m bench concurrency [--json] [--levels 10,100,500,1000] [--timeout 120]
                                [--max-active-turns N] [--layout one|serve|both]
                                [--web 2] [--worker-threads 40]

`--layout serve` runs the same levels on `make serve`'s layout (PostgreSQL, the Redis
layer and broker, WEB uvicorn processes on one port, the turns on a Celery worker with
WORKER_THREADS threads); `both` (the default) runs one process, then that.
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
    parser.add_argument("--layout", choices=["one", "serve", "both"], default="both")
    parser.add_argument("--web", type=int, default=2, help="serve layout: uvicorn worker processes")
    parser.add_argument(
        "--worker-threads",
        type=int,
        default=40,
        help="serve layout: the Celery worker's threads (each holds a PostgreSQL connection; max_connections is 100 here)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/7")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    layouts = {}
    with harness.simulated_model(0.2, TOKENS_PER_SECOND, 40, "reply") as model:
        extra = {
            "OPENAI_BASE_URL": model,
            "OPENAI_API_KEY": "bench",
            "SUPERORCH_DEFAULT_MODEL": "sim",
        }
        if args.max_active_turns is not None:
            extra["SUPERORCH_MAX_ACTIVE_TURNS"] = str(args.max_active_turns)
        if args.layout in ("one", "both"):
            with harness.fresh_database(**extra) as env, harness.server(env) as url:
                layouts["one"] = _levels(env, url, levels, args.timeout)
        if args.layout in ("serve", "both"):
            # make serve's layout: PostgreSQL, the Redis layer and broker, WEB uvicorn
            # processes, the turns on a Celery worker (threads pool).
            serve = extra | {
                "REDIS_URL": args.redis,
                "CELERY_BROKER_URL": args.broker,
                "SUPERORCH_TURN_RUNNER": "celery",
            }
            with (
                harness.fresh_postgres(**serve) as env,
                harness.celery_worker(env, concurrency=args.worker_threads),
                harness.server(env, kind="uvicorn", workers=args.web) as url,
            ):
                layouts["serve"] = _levels(env, url, levels, args.timeout)
    main = layouts.get("serve") or layouts["one"]
    last = main[-1]
    late = f", 0 late (wait {args.timeout:.0f} s)"
    return {
        "scenario": "concurrency",
        "model": {"first_token_s": 0.2, "tokens_per_second": TOKENS_PER_SECOND, "words": 40},
        "levels": layouts.get("one", []),
        "serve_levels": layouts.get("serve", []),
        "serve": {"web_processes": args.web, "worker_threads": args.worker_threads},
        "ratio": round(last["added_p99_ms"] / TARGET_P99_MS, 3),
        "client_wait_s": args.timeout,
        "target": f"0 errors, 0 lost{late}, p99 added <= {TARGET_P99_MS:.0f} ms at "
        f"{last['conversations']}" + (" (make serve layout)" if "serve" in layouts else ""),
        "meets": last["errors"] == 0
        and last["lost"] == 0
        and last["late"] == 0
        and last["added_p99_ms"] <= TARGET_P99_MS,
    }


def _levels(env: dict[str, str], url: str, levels: list[int], timeout: float) -> list[dict]:
    """Each level N: N conversations at once, one message each, against `url`."""
    pace_ms = 1000 / TOKENS_PER_SECOND
    rows = []
    harness.loadgen(url, "--mode", "turns", "--count", "2", "--fresh")  # warm up
    stored_before = _user_messages(env)
    for n in levels:
        r = harness.loadgen(
            url, "--mode", "turns", "--conns", str(n), "--count", "1",
            "--timeout", str(timeout), timeout=900,
        )  # fmt: skip
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
    return rows


def _user_messages(env: dict[str, str]) -> int:
    """User messages stored in the server's database."""
    return harness.sql(env, "SELECT count(*) FROM chat_message WHERE role = 'user'")[0]


def report(r: dict[str, Any]) -> str:
    lines = [
        "| layout | conversations | errors | lost | late | added per token p50 (ms) | p99 (ms) | "
        "first token p50 / p95 (ms) | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    serve = r.get("serve") or {}
    names = {
        "levels": "one process (daphne, SQLite, in-memory layer)",
        "serve_levels": f"make serve: {serve.get('web_processes')} uvicorn processes, "
        f"PostgreSQL, Redis, turns on a Celery worker ({serve.get('worker_threads')} threads)",
    }
    for key, name in names.items():
        for x in r.get(key, []):
            lines.append(
                f"| {name} | {x['conversations']} | {x['errors']} | {x['lost']} | "
                f"{x.get('late', '?')} | {x['added_p50_ms']} | {x['added_p99_ms']} | "
                f"{x['ttft_p50_ms']} / {x['ttft_p95_ms']} | {x['seconds']} |"
            )
    lines.append(f"target: {r['target']}: {'met' if r['meets'] else 'NOT met'}")
    return "\n".join(lines)
