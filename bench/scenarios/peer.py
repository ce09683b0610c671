"""Peer: our full WebSocket turns against the same agents served by OpenAI's ChatKit.

The peer is stock ChatKit (`openai-chatkit`, a bench-only dependency): a minimal
`ChatKitServer` with an in-memory store, no database for its threads, whose `respond`
runs the same agents as the SDK alone (bench/sdk_alone.py) through `Runner.run_streamed`
and `stream_agent_response`, served over HTTP by uvicorn (bench/peer_chatkit.py). The
load generator (bench/loadgen.py, mode chatkit) sends each turn as `threads.create` with
the same message and reads its SSE stream to the end, with the same concurrency and
number of turns. The model is the simulated one with no latency (the `handoff` script).

In one run, on one model server, ROUNDS rounds of: the SDK alone, our WebSocket turns
(exactly as the `overhead` scenario measures them), then ChatKit over HTTP; figures
are medians, ratios the median of the rounds' ratios. The result also holds the
`overhead` scenario's figures from the same rounds (`derived`). Target: ours beat ChatKit (ratio ours / ChatKit
>= 1), with everything of ours persisted and ChatKit keeping nothing but memory.

    python -m bench peer [--json] [--turns N] [--concurrency C] [--rounds R]

Needs `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
from contextlib import ExitStack
from functools import partial
from typing import Any

from bench import harness
from bench.scenarios import overhead

TARGET = 1.0
INSTALL = "pip install -e '.[bench]'"


def _require_chatkit() -> None:
    """Exit with one line (no traceback) when the bench-only dependencies are missing."""
    try:
        version = importlib.metadata.version("openai-chatkit")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is None or importlib.util.find_spec("uvicorn") is None:
        raise SystemExit(
            "bench peer needs openai-chatkit and uvicorn (the bench extras): " + INSTALL
        )
    major, minor = (int(p) for p in version.split(".")[:2])
    if major != 1 or minor < 6:
        raise SystemExit(f"bench peer needs openai-chatkit>=1.6,<2 (found {version}): {INSTALL}")


def _chatkit(stack: ExitStack, env: dict[str, str], *, turns: int, concurrency: int):
    """ChatKit over HTTP with uvicorn, on the same model server and team; its own
    threads and items stay in memory. Returns a function that measures one round."""
    url = stack.enter_context(harness.server(env, "uvicorn", "bench.peer_chatkit:app"))
    harness.loadgen(url, "--mode", "chatkit", "--count", "2")  # warm up

    def one_round() -> dict[str, Any]:
        return harness.loadgen(
            url, "--mode", "chatkit", "--conns", str(concurrency),
            "--count", str(max(turns // concurrency, 1)),
        )  # fmt: skip

    return one_round


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench peer")
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    _require_chatkit()
    # Rounds of: the SDK alone, our full turns over WebSocket (as `overhead` runs them),
    # then ChatKit, all on one model server.
    r = overhead.measure(
        turns=args.turns,
        concurrency=args.concurrency,
        rounds=args.rounds,
        others={
            "chatkit": partial(_chatkit, turns=args.turns, concurrency=args.concurrency),
            # Ours on `make serve`'s server too (one process), in the same rounds.
            "ours_uvicorn": overhead.ours_on(
                "uvicorn", turns=args.turns, concurrency=args.concurrency
            ),
        },
    )
    ratio = overhead.median_ratio(r["ours"], r["chatkit"])
    uvicorn_ratio = overhead.median_ratio(r["ours_uvicorn"], r["chatkit"])
    uvicorn_errors, uvicorn_lost = overhead.failures(r["ours_uvicorn"])
    chatkit_errors, chatkit_lost = overhead.failures(r["chatkit"])
    ours_errors, ours_lost = overhead.failures(r["ours"])
    return {
        "scenario": "peer",
        "concurrency": args.concurrency,
        "turns": args.turns,
        "rounds": args.rounds,
        "chatkit_version": importlib.metadata.version("openai-chatkit"),
        "sdk_alone_turns_per_second": overhead.median_rate(r["sdk_alone"]),
        "chatkit_turns_per_second": overhead.median_rate(r["chatkit"]),
        "ours_turns_per_second": overhead.median_rate(r["ours"]),
        "chatkit_vs_sdk_alone": overhead.median_ratio(r["chatkit"], r["sdk_alone"]),
        "ours_vs_sdk_alone": overhead.median_ratio(r["ours"], r["sdk_alone"]),
        "chatkit_errors": chatkit_errors,
        "chatkit_lost": chatkit_lost,
        "ours_errors": ours_errors,
        "ours_lost": ours_lost,
        "ratio": ratio,
        "target": TARGET,
        "meets": ratio >= TARGET,
        "ours_uvicorn_turns_per_second": overhead.median_rate(r["ours_uvicorn"]),
        "ours_uvicorn_vs_sdk_alone": overhead.median_ratio(r["ours_uvicorn"], r["sdk_alone"]),
        "ours_uvicorn_errors": uvicorn_errors,
        "ours_uvicorn_lost": uvicorn_lost,
        "uvicorn_ratio": uvicorn_ratio,
        "uvicorn_meets": uvicorn_ratio >= TARGET and not uvicorn_errors and not uvicorn_lost,
        # The same rounds give the overhead scenario's figures (make bench runs this once).
        "derived": {
            "overhead": overhead.summarize(
                r, server="daphne", concurrency=args.concurrency, rounds=args.rounds
            )
        },
    }


def report(r: dict[str, Any]) -> str:
    return (
        "| server | turns/s (median) | of the SDK alone (median of the rounds' ratios) |\n"
        "| --- | --- | --- |\n"
        f"| the SDK alone, in one process, nothing stored | {r['sdk_alone_turns_per_second']} | 1 |\n"
        f"| ChatKit {r['chatkit_version']} over HTTP (uvicorn, in-memory store) | "
        f"{r['chatkit_turns_per_second']} | {r['chatkit_vs_sdk_alone']} |\n"
        f"| ours over WebSocket (daphne), everything persisted | {r['ours_turns_per_second']} | "
        f"{r['ours_vs_sdk_alone']} |\n"
        f"| ours over WebSocket (uvicorn, `make serve`'s server), everything persisted | "
        f"{r.get('ours_uvicorn_turns_per_second', '–')} | "
        f"{r.get('ours_uvicorn_vs_sdk_alone', '–')} |\n\n"
        f"Ours / ChatKit: **{r['ratio']}** on daphne, **{r.get('uvicorn_ratio', '–')}** on "
        f"uvicorn (median of {r['rounds']} rounds, {r['concurrency']} at a time, one server "
        f"process each; target >= {r['target']}: daphne "
        f"{'met' if r['meets'] else 'NOT met'}, uvicorn "
        f"{'met' if r.get('uvicorn_meets') else 'NOT met'}). Errors: ours {r['ours_errors']} "
        f"(lost {r['ours_lost']}), on uvicorn {r.get('ours_uvicorn_errors', '–')} (lost "
        f"{r.get('ours_uvicorn_lost', '–')}), ChatKit {r['chatkit_errors']} "
        f"(lost {r['chatkit_lost']})."
    )
