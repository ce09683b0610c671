"""Routing on CLINC150: `manage.py routing_eval` on the dev cases, against the target.

Ten CLINC150 domains as ten agents, out-of-scope as `fallback`; trained on
examples.jsonl, measured on dev_cases.jsonl, one query at a time on one thread, with
the router class the live chat uses. Target: in-scope accuracy >= 0.97 and fallback
recall >= 0.90 at the same threshold, <= 20 ms per route (median).

    python -m bench routing [--json] [--without-embeddings] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import harness

DATA = harness.ROOT.parent / "shared" / "datasets" / "clinc150"
TARGET = {"in_scope_accuracy": 0.97, "fallback_recall": 0.90, "ms_per_route": 20.0}


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench routing")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--without-embeddings", action="store_true")
    args = parser.parse_args(argv)
    flags = ["--without-embeddings"] if args.without_embeddings else []
    out = harness.manage(
        harness.base_env(),
        "routing_eval",
        "--examples",
        str(args.data / "examples.jsonl"),
        "--cases",
        str(args.data / "dev_cases.jsonl"),
        "--json",
        *flags,
        timeout=900,
    )
    r = json.loads(out.strip().splitlines()[-1])
    meets = (
        r["in_scope_accuracy"] >= TARGET["in_scope_accuracy"]
        and r["fallback_recall"] >= TARGET["fallback_recall"]
        and r["ms_per_route"] <= TARGET["ms_per_route"]
    )
    return {
        "scenario": "routing",
        "router": "TF-IDF only" if args.without_embeddings else "TF-IDF + MiniLM (default)",
        **{k: r[k] for k in ("in_scope_accuracy", "fallback_recall", "fallback_precision")},
        "ms_per_route": r["ms_per_route"],
        "train_seconds": r.get("train_seconds"),
        "cases": r["cases"],
        "ratio": round(r["in_scope_accuracy"] / TARGET["in_scope_accuracy"], 4),
        "target": "in-scope >= 0.97 and fallback recall >= 0.90 at one threshold, <= 20 ms",
        "meets": meets,
    }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| router | in-scope accuracy | fallback recall | fallback precision | ms per route (median) | training (s) |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {r['router']} | {r['in_scope_accuracy']} | {r['fallback_recall']} | "
            f"{r['fallback_precision']} | {r['ms_per_route']} | {r['train_seconds']} |",
            "| target | >= 0.97 | >= 0.90 (same threshold) | – | <= 20 | – |",
            f"{r['cases']} cases; target {'met' if r['meets'] else 'NOT met'}",
        ]
    )
