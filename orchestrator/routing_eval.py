"""Measure a router on labelled data: the same Router class the live chat uses."""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from .router import Router

FALLBACK_LABEL = "fallback"


class EvalInputError(ValueError):
    """A file that cannot be used; the message says which line and why."""


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalInputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise EvalInputError(f"{path}, line {number}: not valid JSON.") from None
        if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in required):
            raise EvalInputError(
                f"{path}, line {number}: expected an object with text fields {', '.join(required)}."
            )
        rows.append(row)
    if not rows:
        raise EvalInputError(f"{path} has no rows.")
    return rows


def train(examples: Iterable[dict[str, str]], *, embeddings: bool | None = None) -> Router:
    documents: dict[str, list[str]] = defaultdict(list)
    fallback: list[str] = []
    for row in examples:
        (fallback if row["agent"] == FALLBACK_LABEL else documents[row["agent"]]).append(
            row["text"]
        )
    return Router(documents, fallback_examples=fallback, embeddings=embeddings)


def evaluate(
    router: Router, cases: list[dict[str, str]], threshold: float | None = None
) -> dict[str, Any]:
    threshold = router.threshold if threshold is None else threshold
    timings, in_scope, in_scope_ok, fb_expected, fb_hit, fb_predicted = [], 0, 0, 0, 0, 0
    with threadpool_limits(limits=1):  # one query at a time, on one core
        routed = [_timed_route(router, case["text"]) for case in cases]
    for case, (decision, elapsed_ms) in zip(cases, routed, strict=True):
        timings.append(elapsed_ms)
        fits = decision.agent is not None and decision.confidence >= threshold
        predicted = decision.agent if fits else FALLBACK_LABEL
        if case["expected"] == FALLBACK_LABEL:
            fb_expected += 1
            fb_hit += predicted == FALLBACK_LABEL
        else:
            in_scope += 1
            in_scope_ok += predicted == case["expected"]
        fb_predicted += predicted == FALLBACK_LABEL
    return {
        "in_scope_accuracy": round(in_scope_ok / in_scope, 4) if in_scope else None,
        "fallback_recall": round(fb_hit / fb_expected, 4) if fb_expected else None,
        "fallback_precision": round(fb_hit / fb_predicted, 4) if fb_predicted else None,
        "ms_per_route": round(statistics.median(timings), 3),
        "cases": len(cases),
        "threshold": threshold,
        "mode": router.mode,
    }


def _timed_route(router: Router, text: str):
    started = time.perf_counter()
    decision = router.route(text)
    return decision, (time.perf_counter() - started) * 1000


# --- cross-domain protocols -------------------------------------------------------


def timed_train(
    examples: list[dict[str, str]], *, embeddings: bool | None = None
) -> tuple[Router, float]:
    """A router and the seconds its training took (one BLAS thread, as in production)."""
    started = time.perf_counter()
    with threadpool_limits(limits=1):
        router = train(examples, embeddings=embeddings)
    return router, time.perf_counter() - started


def leave_domains_out(
    examples: list[dict[str, str]],
    cases: list[dict[str, str]],
    held_out: int,
    *,
    rotations: int = 5,
    seed: int = 0,
    embeddings: bool | None = None,
) -> dict[str, Any]:
    """Cross-domain check: per rotation, `held_out` agents (domains) chosen at random are
    removed from training and their cases count as out-of-scope; the fallback examples
    stay. Reports each rotation and the mean and worst of the two figures."""
    agents = sorted({row["agent"] for row in examples} - {FALLBACK_LABEL})
    if not 1 <= held_out < len(agents):
        raise EvalInputError(
            f"--leave-domains-out must be between 1 and {len(agents) - 1}: "
            f"the examples have {len(agents)} agents."
        )
    if rotations < 1:
        raise EvalInputError("--rotations must be at least 1.")
    runs = []
    for hidden in _rotations(agents, held_out, rotations, seed):
        kept = [row for row in examples if row["agent"] not in hidden]
        moved = [
            {**case, "expected": FALLBACK_LABEL} if case["expected"] in hidden else case
            for case in cases
        ]
        router, seconds = timed_train(kept, embeddings=embeddings)
        runs.append(
            evaluate(router, moved)
            | {"held_out": sorted(hidden), "train_seconds": round(seconds, 1)}
        )
    summary: dict[str, Any] = {"rotations": runs, "held_out_per_rotation": held_out}
    for key in ("in_scope_accuracy", "fallback_recall"):
        values = [run[key] for run in runs if run[key] is not None]
        summary[f"mean_{key}"] = round(statistics.mean(values), 4) if values else None
        summary[f"worst_{key}"] = min(values) if values else None
    return summary


def _rotations(agents: list[str], held_out: int, rotations: int, seed: int) -> list[set[str]]:
    """`rotations` distinct sets of agents to hold out (fewer if there are not as many)."""
    rng = random.Random(seed)
    wanted = min(rotations, math.comb(len(agents), held_out))
    chosen: list[set[str]] = []
    while len(chosen) < wanted:
        hidden = set(rng.sample(agents, held_out))
        if hidden not in chosen:
            chosen.append(hidden)
    return chosen


def read_clinc_full(path: Path, split: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """CLINC150's original release (data_full.json, with domains.json beside it) as
    examples (train + oos_train as fallback, intents grouped into domain agents) and
    cases (the split's in-scope rows and its oos rows)."""
    data = _read_json(path)
    domains = _read_json(path.parent / "domains.json")
    if split == "train" or not isinstance(data, dict) or not isinstance(domains, dict):
        raise EvalInputError(f"{path}: expected CLINC150's data_full.json and domains.json.")
    owner = {intent: domain for domain, intents in domains.items() for intent in intents}
    missing = [key for key in ("train", "oos_train", split, f"oos_{split}") if key not in data]
    if missing:
        raise EvalInputError(f"{path} has no {', '.join(missing)} rows.")

    def rows(key: str, field: str, label=None) -> list[dict[str, str]]:
        out = []
        for item in data[key]:
            if not (isinstance(item, list) and len(item) == 2 and (label or item[1] in owner)):
                raise EvalInputError(f"{path}: {key} has a row {item!r} of no known domain.")
            out.append({"text": str(item[0]), field: label or owner[item[1]]})
        return out

    examples = rows("train", "agent") + rows("oos_train", "agent", FALLBACK_LABEL)
    cases = rows(split, "expected") + rows(f"oos_{split}", "expected", FALLBACK_LABEL)
    return examples, cases


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalInputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except ValueError:
        raise EvalInputError(f"{path}: not valid JSON.") from None
