"""Summarise a py-spy profile (collapsed stacks, `BENCH_PROFILE=FILE python -m bench ...`).

    python -m bench.profile_top FILE [--top 25] [--match chat/,orchestrator/]

Prints the share of samples each function is on the stack for (inclusive), for the
project's own functions and for the libraries they call, and the functions the process
spends its own time in (self), busiest first. Idle samples (the event loop waiting in
select/epoll) are left out of the shares.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE_FRAMES = ("select (selectors", "_worker (concurrent/futures/thread.py:81)")
IDLE = re.compile(r"\b(select|poll|epoll|_run_once|wait)\b \((selectors|threading|asyncio)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_top")
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="chat/,orchestrator/,agents/,django/,sqlite3,openai/")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = 0
    for line in Path(args.file).read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if IDLE.search(frames[-1]) or any(i in frames[-1] for i in IDLE_FRAMES):
            continue
        n = int(count)
        busy += n
        own[frames[-1]] += n
        for frame in set(frames):
            if any(m in frame for m in args.match.split(",")):
                inclusive[frame] += n
    print(f"{busy} busy samples")
    print("\non the stack (inclusive):")
    for frame, n in inclusive.most_common(args.top):
        print(f"  {100 * n / busy:5.1f} %  {frame[:150]}")
    print("\nown time (self):")
    for frame, n in own.most_common(args.top):
        print(f"  {100 * n / busy:5.1f} %  {frame[:150]}")


if __name__ == "__main__":
    main()
