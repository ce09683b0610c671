"""Measure a router on labelled data: the same Router class the live chat uses."""

from __future__ import annotations

import json
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
