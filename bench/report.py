"""`make bench`: run every scenario, one after the other, and rewrite docs/benchmarks.md.

    python -m bench.report [--only overhead,ttft] [--dry-run]

Each scenario runs as `python -m bench NAME --json` in its own process, with the
bounded arguments below (so the whole run stays under ten minutes on a 2-core
machine). Results are kept in var/bench/results.json, each with the date it was
measured, so `--only` reruns some scenarios and keeps the others' last figures. The
page is bench/benchmarks.md.in with its `{{ ... }}` fields filled in:

- `{{ meta.date }}`, `{{ meta.machine }}`, `{{ meta.total_seconds }}`;
- `{{ NAME.report }}`: the scenario's own table (its `report()`);
- `{{ NAME.verdict }}`: "met" or "**not met**" against its target;
- `{{ NAME.command }}`: the command that produced it; `{{ NAME.measured }}`: its date;
  `overhead` and `transport` come from the `peer` and `servers` runs (DERIVED);
- `{{ NAME.KEY }}`: any figure of its JSON result (`{{ overhead.ratio }}`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness
from bench.__main__ import SCENARIOS

# The order they run in, and the arguments `make bench` gives them.
PLAN: dict[str, list[str]] = {
    "routing": [],
    "database": ["--rows", "1000000", "--repeat", "2"],
    "ttft": ["--turns", "12"],
    "peer": ["--turns", "40", "--concurrency", "4"],
    "servers": [],
    "concurrency": ["--levels", "10,100,500,1000", "--timeout", "80"],
    "memory": ["--idle", "1000", "--streaming", "100"],
    "people": ["--samples", "50", "--streams", "50"],
}
# Scenarios whose figures come from another's run (its result's "derived"): the peer
# rounds hold the overhead ones, the servers' daphne + in-memory row the transport one.
DERIVED = {"overhead": "peer", "transport": "servers"}
RESULTS = harness.ROOT / "var" / "bench" / "results.json"
TEMPLATE = Path(__file__).with_name("benchmarks.md.in")
PAGE = harness.ROOT / "docs" / "benchmarks.md"
FIELD = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def command(name: str) -> str:
    name = DERIVED.get(name, name)
    return " ".join([".venv/bin/python -m bench", name, *PLAN.get(name, [])])


def run_scenario(name: str) -> dict[str, Any]:
    started = time.monotonic()
    done = subprocess.run(
        [harness.PY, "-m", "bench", name, "--json", *PLAN[name]],
        cwd=harness.ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    seconds = round(time.monotonic() - started, 1)
    meta = {"measured": dt.date.today().isoformat(), "seconds": seconds, "command": command(name)}
    if done.returncode:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return meta | {"failure": (lines[-1] if lines else f"exit code {done.returncode}")[:300]}
    return meta | json.loads(done.stdout.strip().splitlines()[-1])


def store(results: dict[str, Any], name: str, result: dict[str, Any]) -> None:
    """Keep a scenario's result, and each result derived from the same run."""
    derived = result.pop("derived", {})
    results[name] = result
    meta = {k: result[k] for k in ("measured", "seconds", "command")}
    for other, source in DERIVED.items():
        if source == name:
            results[other] = meta | (
                derived[other]
                if other in derived
                else {"failure": result.get("failure") or f"the {name} run gave no {other} figures"}
            )


def machine() -> str:
    def first(cmd: list[str], pattern: str) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        except OSError:
            return "?"
        match = re.search(pattern, out, re.M)
        return match.group(1).strip() if match else "?"

    cpu = first(["lscpu"], r"^Model name:\s*(.+)$")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    services = []
    try:
        import psycopg

        with psycopg.connect(
            os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
            connect_timeout=3,
        ) as conn:
            services.append("PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0])
    except Exception:  # noqa: BLE001 (a service that is not there is simply not listed)
        pass
    try:
        import redis

        info = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=3).info()
        services.append(f"Redis {info['redis_version']}")
    except Exception:  # noqa: BLE001
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.platform(terse=True)}, "
        f"Python {platform.python_version()}" + (", " + ", ".join(services) if services else "")
    )


def render(results: dict[str, Any], meta: dict[str, Any]) -> str:
    def value(path: str) -> str:
        head, _, rest = path.partition(".")
        if head == "meta":
            return str(meta.get(rest, "?"))
        r = results.get(head)
        if r is None:
            return f"(not measured yet: `{command(head)}`)"
        if rest == "seconds" and head in DERIVED:
            return f"in the {DERIVED[head]} scenario's {r.get(rest, '?')}"
        if r.get("failure") and rest in ("report", "verdict", "failure"):
            return f"(the last run failed: {r['failure']})"
        if rest == "report":
            return importlib.import_module(SCENARIOS[head]).report(r)
        if rest == "verdict":
            return "met" if r.get("meets") else "**not met**"
        node: Any = r
        for key in rest.split("."):
            if not isinstance(node, dict) or key not in node:
                return f"(no figure {path})"
            node = node[key]
        return f"{node:,}" if isinstance(node, int) and not isinstance(node, bool) else str(node)

    return FIELD.sub(lambda m: value(m.group(1)), TEMPLATE.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--only", help="comma-separated scenarios; the rest keep their figures")
    parser.add_argument("--dry-run", action="store_true", help="rewrite the page, run nothing")
    args = parser.parse_args(argv)
    # Routing (issue 4's CLINC150 figures, four minutes of training) runs only when asked:
    # `python -m bench.report --only routing`; its last figures stay on the page.
    asked = args.only.split(",") if args.only else [n for n in PLAN if n != "routing"]
    names = list(dict.fromkeys(DERIVED.get(n, n) for n in asked))  # overhead: the peer run
    unknown = [n for n in names if n not in PLAN]
    if unknown:
        known = ", ".join([*PLAN, *DERIVED])
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; known: {known}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    started = time.monotonic()
    if not args.dry_run:
        for name in names:
            print(f"bench: {command(name)}", file=sys.stderr, flush=True)
            store(results, name, run_scenario(name))
            print(f"  {results[name]['seconds']} s", file=sys.stderr, flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1))
    total = round(time.monotonic() - started)
    meta = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "total_seconds": round(
            sum(r.get("seconds", 0) for n, r in results.items() if n not in DERIVED)
        ),
    }
    PAGE.write_text(render(results, meta))
    print(f"bench: wrote {PAGE.relative_to(harness.ROOT)} ({total} s)", file=sys.stderr)
    return 0 if all(not r.get("failure") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
