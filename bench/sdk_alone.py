"""The SDK alone: the same agents (built from the registry by orchestrator.runtime),
run with Runner.run_streamed in this one process, no server, no socket, no records.

    python -m bench.sdk_alone --turns N --concurrency C --text T

Needs the same environment as the server (DATABASE_URL, OPENAI_BASE_URL, ...). Prints
one JSON object: turns per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid


async def main_async(args) -> dict:
    from agents import RunConfig, Runner
    from asgiref.sync import sync_to_async

    from orchestrator import selectors
    from orchestrator.sdk.context import TurnContext
    from orchestrator.sdk.team import build_team

    team = await sync_to_async(selectors.team_snapshot)()
    built = await sync_to_async(lambda: build_team(team, router=selectors.router_for(team)))()
    start = built.agents[team.orchestrator.slug]

    async def one_turn() -> None:
        result = Runner.run_streamed(
            start,
            input=[{"role": "user", "content": args.text}],
            context=TurnContext(uuid.uuid4(), uuid.uuid4(), team),
            run_config=RunConfig(tracing_disabled=True),
        )
        async for _ in result.stream_events():
            pass

    await one_turn()  # warm up
    queue = list(range(args.turns))

    async def worker() -> None:
        while queue:
            queue.pop()
            await one_turn()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    return {"turns": args.turns, "seconds": elapsed, "per_second": args.turns / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--text", default="I was charged twice for my subscription")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "superorch_site.settings.local")
    import django

    django.setup()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
