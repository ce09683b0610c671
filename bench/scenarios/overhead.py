"""Overhead: full chat turns over WebSocket against the same agents run by the SDK alone.

A full turn: the message is stored and acknowledged, routed, the orchestrator hands
off to Billing, Billing calls search_knowledge, streams its reply, and every
message, turn, event and agent run is recorded. The model is the simulated one with
no latency (handoff, tool call and a 40-word reply, streamed), so what is measured is
our work around it. Each turn is the first message of a new conversation on a new
socket (a follow-up would stay with Billing and skip the handoff). The limit is the
SDK alone running the same agents in one process (bench/sdk_alone.py). Target: ours
>= 0.6 of the SDK-alone rate.

Every turn runs the input guardrail first (the offline classifier, on the embedding the
router computed); the time it took is recorded on each turn and reported here.

The two are measured in turns, ROUNDS times (SDK alone, then ours), on the same model
server: the figures are the medians, the ratio the median of the rounds' ratios, so a
burst of noise on this small machine moves one round, not the result.

    python -m bench overhead [--json] [--turns N] [--concurrency C] [--rounds R]
                             [--server daphne|uvicorn]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from bench import harness
from bench.scenarios.ttft import routing

TARGET = 0.6
GUARDRAIL_TARGET_MS = 15.0  # the input guardrail's added time per turn, median


def sdk_alone(env: dict[str, str], turns: int, concurrency: int) -> dict[str, Any]:
    done = subprocess.run(
        [harness.PY, "-m", "bench.sdk_alone", "--turns", str(turns),
         "--concurrency", str(concurrency)],
        cwd=harness.ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def ours_on(kind: str, *, turns: int, concurrency: int):
    """Another server process of ours (`kind`: daphne or uvicorn) on the same database:
    an `others` setup for measure(), so both servers run in the same rounds."""

    def setup(stack: ExitStack, env: dict[str, str]) -> Callable[[], dict]:
        url = stack.enter_context(harness.server(env, kind=kind))
        harness.loadgen(url, "--mode", "turns", "--count", "2", "--fresh")  # warm up
        per = max(turns // concurrency, 1)

        def one_round() -> dict[str, Any]:
            return harness.loadgen(
                url, "--mode", "turns", "--conns", str(concurrency), "--count", str(per), "--fresh"
            )

        return one_round

    return setup


def measure(
    *,
    turns: int,
    concurrency: int,
    rounds: int,
    server: str = "daphne",
    others: dict[str, Callable[[ExitStack, dict[str, str]], Callable[[], dict]]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Rounds of: the SDK alone, our turns, then each of `others` (a name -> a setup that
    starts its server on the stack and returns a function measuring one round)."""
    per = max(turns // concurrency, 1)
    results: dict[str, list[dict[str, Any]]] = {"sdk_alone": [], "ours": []}
    with harness.simulated_model(0.0, 0.0, 40, "handoff") as model, ExitStack() as stack:
        extra = {
            "OPENAI_BASE_URL": model,
            "OPENAI_API_KEY": "bench",
            "SUPERORCH_DEFAULT_MODEL": "sim",
        }
        env = stack.enter_context(harness.fresh_database(**extra))
        # Every turn starts at the orchestrator, so every turn has its handoff.
        routing(env, orchestrator_first=True)
        url = stack.enter_context(harness.server(env, kind=server))
        harness.loadgen(url, "--mode", "turns", "--count", "2", "--fresh")  # warm up
        rounds_of = {name: setup(stack, env) for name, setup in (others or {}).items()}
        for name in rounds_of:
            results[name] = []
        for _ in range(rounds):
            results["sdk_alone"].append(sdk_alone(env, per * concurrency, concurrency))
            results["ours"].append(
                harness.loadgen(url, "--mode", "turns", "--conns", str(concurrency),
                                "--count", str(per), "--fresh")
            )  # fmt: skip
            for name, one_round in rounds_of.items():
                results[name].append(one_round())
        # What the input guardrail took in each of these turns, as the server recorded it.
        rows = harness.sql_rows(
            env, "SELECT guardrail_ms FROM chat_turn WHERE guardrail_ms IS NOT NULL"
        )
        results["guardrail_ms"] = [{"ms": ms} for (ms,) in rows]
    return results


def median_rate(rows: list[dict[str, Any]]) -> float:
    return round(statistics.median(r["per_second"] for r in rows), 2)


def median_ratio(top: list[dict[str, Any]], bottom: list[dict[str, Any]]) -> float:
    return round(
        statistics.median(
            a["per_second"] / b["per_second"] for a, b in zip(top, bottom, strict=True)
        ),
        3,
    )


def failures(rows: list[dict[str, Any]]) -> tuple[int, int]:
    return sum(r["failed"] + r["errors"] for r in rows), sum(r["lost"] for r in rows)


def guardrail_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The input guardrail's time per turn (ms, as recorded on each turn of the run)."""
    ms = sorted(row["ms"] for row in rows)
    if not ms:
        return {
            "turns": 0,
            "median_ms": None,
            "p95_ms": None,
            "target_ms": GUARDRAIL_TARGET_MS,
            "meets": False,
        }
    median = round(statistics.median(ms), 2)
    return {
        "turns": len(ms),
        "median_ms": median,
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
        "target_ms": GUARDRAIL_TARGET_MS,
        "meets": median <= GUARDRAIL_TARGET_MS,
    }


def summarize(
    r: dict[str, list[dict[str, Any]]], *, server: str, concurrency: int, rounds: int
) -> dict[str, Any]:
    """The overhead figures of `measure()`'s rounds (the peer scenario reports them too)."""
    ratio = median_ratio(r["ours"], r["sdk_alone"])
    errors, lost = failures(r["ours"])
    return {
        "guardrail": guardrail_figures(r.get("guardrail_ms", [])),
        "scenario": "overhead",
        "server": server,
        "concurrency": concurrency,
        "rounds": rounds,
        "ours_turns_per_second": median_rate(r["ours"]),
        "sdk_alone_turns_per_second": median_rate(r["sdk_alone"]),
        "round_ratios": [
            round(a["per_second"] / b["per_second"], 3)
            for a, b in zip(r["ours"], r["sdk_alone"], strict=True)
        ],
        "errors": errors,
        "lost": lost,
        "ratio": ratio,
        "target": TARGET,
        "meets": ratio >= TARGET and not errors and not lost,
    }


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench overhead")
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    args = parser.parse_args(argv)
    r = measure(
        turns=args.turns, concurrency=args.concurrency, rounds=args.rounds, server=args.server
    )
    return summarize(r, server=args.server, concurrency=args.concurrency, rounds=args.rounds)


def report(r: dict[str, Any]) -> str:
    g = r.get("guardrail") or {}
    guard = (
        f"\n\nInput guardrail (offline classifier), as recorded on the {g['turns']} turns of the "
        f"run: median **{g['median_ms']} ms** per turn, p95 {g['p95_ms']} ms (target <= "
        f"{g['target_ms']:g} ms at the median: {'met' if g['meets'] else 'NOT met'})."
        if g.get("turns")
        else ""
    )
    return _table(r) + guard


def _table(r: dict[str, Any]) -> str:
    return (
        f"| ours: full turns over WebSocket ({r['server']}) | the SDK alone | ratio (median of "
        f"{r['rounds']} rounds) | rounds | errors / lost | target |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        f"| {r['ours_turns_per_second']} turns/s | {r['sdk_alone_turns_per_second']} turns/s | "
        f"**{r['ratio']}** | {', '.join(map(str, r['round_ratios']))} | {r['errors']} / {r['lost']} | "
        f">= {r['target']}: {'met' if r['meets'] else 'NOT met'} |"
    )
