"""`python -m bench SCENARIO [--json]`: run one benchmark scenario and print its figures."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

SCENARIOS = {
    "concurrency": "bench.scenarios.concurrency",
    "database": "bench.scenarios.database",
    "memory": "bench.scenarios.memory",
    "overhead": "bench.scenarios.overhead",
    "peer": "bench.scenarios.peer",
    "people": "bench.scenarios.people",
    "routing": "bench.scenarios.routing",
    "servers": "bench.scenarios.servers",
    "transport": "bench.scenarios.transport",
    "ttft": "bench.scenarios.ttft",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(SCENARIOS[args.scenario])
    result = module.run(rest)
    if args.json:
        print(json.dumps(result))
    else:
        print(module.report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
