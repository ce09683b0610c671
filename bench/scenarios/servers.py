"""Servers and layers: daphne vs uvicorn, the in-memory vs the Redis channel layer,
chat turns in the web process vs on a Celery worker.

The same app and the same loads on each combination, in one run: bare echo round trips
(10 sockets) and full chat turns on the offline model with no delay (10 conversations,
4 messages each). The daphne + in-memory row also gives the `transport` scenario's
figures (`derived`). The Celery row runs the turns on one worker process (threads pool,
10 threads; SUPERORCH_TURN_RUNNER=celery, Redis as the broker).

    python -m bench servers [--json] [--redis redis://127.0.0.1:6379/8]
        [--broker redis://127.0.0.1:6379/7]
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import harness
from bench.scenarios import transport

PROCESSES_TARGET = 1.6  # two web processes over one, turns/s, on this 2-core machine


def _measure(
    env: dict[str, str],
    kind: str,
    layer: str,
    count: int,
    turns: str = "inline",
    raw=None,
    *,
    processes: int = 1,
    conns: int = 10,
    database: str = "sqlite",
    spread: bool = True,
) -> dict[str, Any]:
    """One row; `raw` (a dict), when given, receives the load generator's reports."""
    row: dict[str, Any] = {
        "server": kind if spread or processes == 1 else f"{kind} --workers",
        "layer": layer, "turns": turns, "processes": processes, "database": database,
    }  # fmt: skip
    try:
        with harness.server(env, kind=kind, workers=processes, spread=spread) as url:
            for _ in range(processes):  # warm up every process (a new socket each)
                harness.loadgen(url, "--mode", "turns", "--count", "2")
            echo = harness.loadgen(
                url, "--mode", "echo", "--conns", str(conns), "--count", str(count)
            )
            turns = harness.loadgen(url, "--mode", "turns", "--conns", str(conns), "--count", "4")
            if raw is not None:
                raw.update(echo=echo, turns=turns)
    except RuntimeError as exc:  # a combination that breaks is a finding, not a crash
        last = [line for line in str(exc).strip().splitlines() if line.strip()][-1]
        return row | {
            "echo_per_second": None,
            "turns_per_second": 0.0,
            "errors": None,
            "failure": last[:200],
        }
    return row | {
        "echo_per_second": round(echo["per_second"], 1),
        "turns_per_second": round(turns["per_second"], 2),
        "errors": turns["errors"] + turns["failed"],
    }


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench servers")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/7")
    args = parser.parse_args(argv)
    rows = []
    bare: dict[str, Any] = {}  # daphne + memory: the transport scenario's figures
    for layer in ("memory", "redis"):
        extra = {"REDIS_URL": args.redis} if layer == "redis" else {}
        # uvicorn on the in-memory layer only: the comparisons below are one change at a
        # time against daphne + memory (a uvicorn + Redis row would add a minute).
        kinds = ("daphne", "uvicorn") if layer == "memory" else ("daphne",)
        with harness.fresh_database(**extra) as env:
            for kind in kinds:
                raw = bare if (kind, layer) == ("daphne", "memory") else None
                rows.append(_measure(env, kind, layer, args.count, raw=raw))
    # Turns on Celery workers: the web server queues each conversation's turn on the
    # broker; a worker (threads pool) runs it and streams through the Redis layer.
    celery = {
        "REDIS_URL": args.redis,
        "CELERY_BROKER_URL": args.broker,
        "SUPERORCH_TURN_RUNNER": "celery",
    }
    with harness.fresh_database(**celery) as env, harness.celery_worker(env, concurrency=10):
        rows.append(_measure(env, "daphne", "redis", args.count, turns="celery worker"))
    # Processes: make serve's web tier, uvicorn with one and with two worker processes on
    # one port, PostgreSQL and the Redis layer, turns in the web processes; 20 sockets so
    # that two processes have work enough.
    # Two ways to two processes: make serve's (superorch_site.web, a listening socket
    # each) and uvicorn's own --workers (one socket shared).
    with harness.fresh_postgres(REDIS_URL=args.redis) as env:
        for processes, spread in ((1, True), (2, True), (2, False)):
            rows.append(
                _measure(env, "uvicorn", "redis", args.count, processes=processes, conns=20,
                         database="postgresql", spread=spread)
            )  # fmt: skip
    base = rows[0]
    best = max(rows, key=lambda r: r["turns_per_second"])

    def versus(a: tuple, b: tuple, key: str) -> float | None:
        """Row a's figure over row b's (server, layer, turns[, processes, database]),
        None if either failed."""
        by = {
            (r["server"], r["layer"], r["turns"], r["processes"], r["database"]): r.get(key)
            for r in rows
        }
        x, y = by.get(_key(a)), by.get(_key(b))
        return round(x / y, 2) if x and y else None

    one, two = ("uvicorn", "redis", "inline", 1, "postgresql"), (
        "uvicorn", "redis", "inline", 2, "postgresql",
    )  # fmt: skip

    memory, redis = ("daphne", "memory", "inline"), ("daphne", "redis", "inline")
    return {
        "uvicorn_vs_daphne_turns": versus(
            ("uvicorn", "memory", "inline"), memory, "turns_per_second"
        ),
        "uvicorn_vs_daphne_echo": versus(
            ("uvicorn", "memory", "inline"), memory, "echo_per_second"
        ),
        "redis_vs_memory_turns": versus(redis, memory, "turns_per_second"),
        "two_vs_one_process_turns": versus(two, one, "turns_per_second"),
        "two_vs_one_process_echo": versus(two, one, "echo_per_second"),
        "shared_socket_vs_one_process_turns": versus(
            ("uvicorn --workers", "redis", "inline", 2, "postgresql"), one, "turns_per_second"
        ),
        "processes_target": PROCESSES_TARGET,
        "celery_vs_inline_turns": versus(
            ("daphne", "redis", "celery worker"), redis, "turns_per_second"
        ),
        "scenario": "servers",
        "rows": rows,
        "ratio": round(best["turns_per_second"] / base["turns_per_second"], 3),
        "best": f"{best['server']} x{best['processes']} on {best['database']} + {best['layer']} "
        f"+ turns {best['turns']}",
        "derived": (
            {"transport": transport.summarize(bare["echo"], bare["turns"], conns=10)}
            if bare
            else {}
        ),
    }


def _key(row: tuple) -> tuple:
    """(server, layer, turns) rows are one process on SQLite."""
    return row if len(row) == 5 else (*row, 1, "sqlite")


def report(r: dict[str, Any]) -> str:
    lines = [
        "| server | processes | database | channel layer | turns run | echo round trips/s "
        "| offline turns/s | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for x in r["rows"]:
        where = (
            f"| {x['server']} | {x.get('processes', 1)} | {x.get('database', 'sqlite')} | "
            f"{x['layer']} | {x.get('turns', 'inline')} |"
        )
        if x.get("failure"):
            lines.append(f"{where} failed: {x['failure']} | | |")
            continue
        lines.append(f"{where} {x['echo_per_second']} | {x['turns_per_second']} | {x['errors']} |")
    lines.append(f"\nfastest for turns: {r['best']} ({r['ratio']}x daphne + memory)")
    if r.get("two_vs_one_process_turns") is not None:
        met = r["two_vs_one_process_turns"] >= r["processes_target"]
        lines.append(
            f"\ntwo web processes / one (uvicorn, PostgreSQL, Redis): turns "
            f"**{r['two_vs_one_process_turns']}x**, echo {r['two_vs_one_process_echo']}x "
            f"(target >= {r['processes_target']}x for turns: {'met' if met else 'NOT met'}); "
            f"uvicorn's own --workers 2 (one socket shared): "
            f"{r.get('shared_socket_vs_one_process_turns')}x"
        )
    return "\n".join(lines)
