"""Bare transport: round trips per second through a bare echo consumer on the same
server and settings as the chat (daphne, in-memory channel layer), against full chat
turns on the offline model with no delay. Shows what the transport alone costs.

    python -m bench transport [--json] [--conns N] [--count M]
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import harness


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench transport")
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    with harness.fresh_database() as env, harness.server(env) as url:
        harness.loadgen(url, "--mode", "turns", "--conns", "1", "--count", "3")  # warm up
        echo = harness.loadgen(
            url, "--mode", "echo", "--conns", str(args.conns), "--count", str(args.count)
        )
        turns = harness.loadgen(
            url,
            "--mode",
            "turns",
            "--conns",
            str(args.conns),
            "--count",
            str(max(args.count // 20, 5)),
        )
    return summarize(echo, turns, conns=args.conns)


def summarize(echo: dict[str, Any], turns: dict[str, Any], *, conns: int) -> dict[str, Any]:
    """Transport figures from one echo and one turns load (the servers scenario's
    daphne + in-memory row gives them too)."""
    return {
        "scenario": "transport",
        "server": "daphne",
        "echo_round_trips_per_second": round(echo["per_second"], 1),
        "echo_rtt_p50_ms": round(echo["rtt_p50_ms"], 2),
        "offline_turns_per_second": round(turns["per_second"], 2),
        "turn_errors": turns["errors"] + turns["failed"],
        "ratio": round(turns["per_second"] / echo["per_second"], 4),
        "conns": conns,
    }


def report(r: dict[str, Any]) -> str:
    return (
        f"Bare echo on daphne: {r['echo_round_trips_per_second']} round trips/s "
        f"(p50 {r['echo_rtt_p50_ms']} ms) with {r['conns']} sockets; full offline-model turns: "
        f"{r['offline_turns_per_second']} turns/s (ratio {r['ratio']}); turn errors {r['turn_errors']}."
    )
