"""Memory: the server's resident memory per connected conversation, idle and streaming.

One server process (uvicorn, `make serve`'s server, and daphne, `make run`'s) on the
in-memory channel layer and a fresh SQLite database. After two warm-up turns its
resident set size (RSS, every byte the process holds in RAM, from /proc) is the base;
then IDLE conversations are opened and held (a socket each, `session.start` answered,
nothing sent), and the RSS read again once all are open and a few seconds have passed:
(RSS - base) / IDLE is the memory of an idle conversation. A second server of the same
kind, fresh, holds STREAMING conversations each with a reply streaming from the
simulated model (first token after 0.2 s, 20 tokens/s, 400 words: about 20 s each), its
RSS read once every one has had its first token: (RSS - base) / STREAMING. The load
generator is its own process; its memory is not counted.

    python -m bench memory [--json] [--idle 1000] [--streaming 100]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import harness

SETTLE_SECONDS = 3.0
MIB = 1024 * 1024


def _held_rss(env: dict[str, str], kind: str, conns: int, *, stream: bool) -> dict[str, Any]:
    with harness.server(env, kind=kind) as url:
        harness.loadgen(url, "--mode", "turns", "--count", "2", "--fresh")  # warm up
        time.sleep(SETTLE_SECONDS)
        base = harness.server_rss(url)
        with harness.held(url, conns, stream=stream) as ready:
            time.sleep(SETTLE_SECONDS)
            loaded = harness.server_rss(url)
    return {
        "server": kind,
        "conversations": conns,
        "streaming": stream,
        "base_mib": round(base / MIB, 1),
        "loaded_mib": round(loaded / MIB, 1),
        "per_conversation_kib": round((loaded - base) / conns / 1024, 1),
        "open_seconds": round(ready["seconds"], 1),
    }


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench memory")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--streaming", type=int, default=100)
    args = parser.parse_args(argv)
    rows = []
    with harness.simulated_model(0.2, 20.0, 400, "reply") as model:
        extra = {
            "OPENAI_BASE_URL": model,
            "OPENAI_API_KEY": "bench",
            "SUPERORCH_DEFAULT_MODEL": "sim",
        }
        for kind in ("uvicorn", "daphne"):
            with harness.fresh_database(**extra) as env:
                rows.append(_held_rss(env, kind, args.idle, stream=False))
            with harness.fresh_database(**extra) as env:
                rows.append(_held_rss(env, kind, args.streaming, stream=True))
    return {"scenario": "memory", "rows": rows}


def report(r: dict[str, Any]) -> str:
    lines = [
        "| server | conversations held | base RSS (MiB) | with them (MiB) | per conversation (KiB) | all open in (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for x in r["rows"]:
        what = f"{x['conversations']} {'streaming a reply' if x['streaming'] else 'idle'}"
        lines.append(
            f"| {x['server']} | {what} | {x['base_mib']} | {x['loaded_mib']} | "
            f"**{x['per_conversation_kib']}** | {x['open_seconds']} |"
        )
    return "\n".join(lines)
