"""Reads: performance figures from recorded AgentRuns, computed in the database.

Per agent or per model, over a window (last hour, day, week): runs and turns,
median / p95 / p99 response time, median time to first token, success and error
rates, share of the load, tokens in and out and their estimated cost (ModelPrice),
and runs in flight now. On PostgreSQL the percentiles are `percentile_cont` in the
query; on SQLite (the embedded default) they are computed from the window's
durations in Python, with the same interpolation.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Func, IntegerField, Q, QuerySet, Sum
from django.utils import timezone

from . import selectors
from .domain.enums import RunStatus
from .models import AgentProfile, AgentRun, ModelPrice

WINDOWS: dict[str, tuple[timedelta, timedelta]] = {  # span, chart bucket
    "hour": (timedelta(hours=1), timedelta(minutes=5)),
    "day": (timedelta(days=1), timedelta(hours=1)),
    "week": (timedelta(days=7), timedelta(hours=6)),
}
DONE = Q(status__in=(RunStatus.OK, RunStatus.HANDOFF))
ERROR = Q(status="error")
FINISHED = ~Q(status=RunStatus.RUNNING)


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont(p) WITHIN GROUP (ORDER BY expr)."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


class EpochBucket(Func):
    """Which chart bucket of `seconds` a timestamp falls in (seconds since the epoch / n)."""

    output_field = IntegerField()

    def __init__(self, expression, seconds: int):
        super().__init__(expression)
        self.seconds = int(seconds)

    def as_postgresql(self, compiler, connection, **extra):
        template = f"FLOOR(EXTRACT(EPOCH FROM %(expressions)s) / {self.seconds})::bigint"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # '%%%%s': one '%' survives the template and the driver's placeholder pass.
        template = f"CAST(strftime('%%%%s', %(expressions)s) AS INTEGER) / {self.seconds}"
        return super().as_sql(compiler, connection, template=template, **extra)


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Figures:
    key: str  # agent slug or model name
    runs: int = 0
    turns: int = 0
    ok: int = 0
    errors: int = 0
    finished: int = 0
    in_flight: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    ttft_p50_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)  # at the prices in ModelPrice
    unpriced: bool = False  # it used a model that has no price: cost leaves it out
    share: float = 0.0
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def success_rate(self) -> float | None:
        return self.ok / self.finished if self.finished else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.finished if self.finished else None


def window_bounds(window: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    if window not in WINDOWS:
        raise ValueError(f"Unknown window {window!r}: use one of {', '.join(WINDOWS)}.")
    now = now or timezone.now()
    return now - WINDOWS[window][0], now


def figures(
    *, window: str = "day", by: str = "agent", now: datetime | None = None
) -> list[Figures]:
    """One row per agent (by="agent") or model (by="model") that ran in the window."""
    group = {"agent": "agent_slug", "model": "model_name"}[by]
    since, until = window_bounds(window, now)
    runs = AgentRun.objects.filter(started_at__gte=since, started_at__lt=until)
    postgres = connection.vendor == "postgresql"
    out = _counts(runs, group, postgres=postgres)
    if not postgres:
        _percentiles_in_python(runs, group, out)
    _costs_and_error_kinds(runs, group, out)
    # In flight now (whatever the window): runs still open, but not ones a dead server left.
    flying = selectors.agent_runs_in_flight().values(group).annotate(n=Count("id"))
    for row in flying:
        fig = out.setdefault(row[group], Figures(key=row[group]))
        fig.in_flight = row["n"]
    return sorted(out.values(), key=lambda f: (-f.runs, f.key))


def _counts(runs: QuerySet[AgentRun], group: str, *, postgres: bool) -> dict[str, Figures]:
    """Runs, turns, outcomes and tokens per group in one query (and, on PostgreSQL, the
    percentiles too)."""
    aggregates: dict[str, Any] = {
        "n_runs": Count("id"),
        "n_turns": Count("turn_id", distinct=True),
        "n_ok": Count("id", filter=DONE),
        "n_errors": Count("id", filter=ERROR),
        "n_finished": Count("id", filter=FINISHED),
        "tokens_in": Sum("input_tokens"),
        "tokens_out": Sum("output_tokens"),
    }
    if postgres:
        aggregates |= {
            "p50": Percentile("duration_ms", 0.5, filter=FINISHED),
            "p95": Percentile("duration_ms", 0.95, filter=FINISHED),
            "p99": Percentile("duration_ms", 0.99, filter=FINISHED),
            "ttft": Percentile("ttft_ms", 0.5, filter=DONE),
        }
    rows = {r[group]: r for r in runs.values(group).annotate(**aggregates).order_by(group)}
    total = sum(r["n_runs"] for r in rows.values()) or 1
    return {
        key: Figures(
            key=key,
            runs=r["n_runs"],
            turns=r["n_turns"],
            ok=r["n_ok"],
            errors=r["n_errors"],
            finished=r["n_finished"],
            input_tokens=r["tokens_in"] or 0,
            output_tokens=r["tokens_out"] or 0,
            share=r["n_runs"] / total,
            p50_ms=r.get("p50"),
            p95_ms=r.get("p95"),
            p99_ms=r.get("p99"),
            ttft_p50_ms=r.get("ttft"),
        )
        for key, r in rows.items()
    }


def _percentiles_in_python(runs: QuerySet[AgentRun], group: str, out: dict[str, Figures]) -> None:
    """SQLite has no percentile_cont: compute them from the durations."""
    durations: dict[str, list[float]] = defaultdict(list)
    for key, ms in runs.filter(FINISHED, duration_ms__isnull=False).values_list(
        group, "duration_ms"
    ):
        durations[key].append(ms)
    ttfts: dict[str, list[float]] = defaultdict(list)
    for key, ms in runs.filter(DONE, ttft_ms__isnull=False).values_list(group, "ttft_ms"):
        ttfts[key].append(ms)
    for key, fig in out.items():
        fig.p50_ms = percentile_cont(durations[key], 0.5)
        fig.p95_ms = percentile_cont(durations[key], 0.95)
        fig.p99_ms = percentile_cont(durations[key], 0.99)
        fig.ttft_p50_ms = percentile_cont(ttfts[key], 0.5)


def _costs_and_error_kinds(runs: QuerySet[AgentRun], group: str, out: dict[str, Figures]) -> None:
    """Tokens per model (for the cost) and errors per kind, in one more pass."""
    prices = {p.model_name: p for p in ModelPrice.objects.all()}
    detail = runs.values(group, "model_name", "error_kind").annotate(
        i=Sum("input_tokens"), o=Sum("output_tokens"), e=Count("id", filter=ERROR)
    )
    for row in detail:
        fig = out.setdefault(row[group], Figures(key=row[group]))  # a run that just arrived
        if row["e"] and row["error_kind"]:
            kinds = fig.error_kinds
            kinds[row["error_kind"]] = kinds.get(row["error_kind"], 0) + row["e"]
        if not (row["i"] or row["o"]):
            continue
        price = prices.get(row["model_name"])
        if price is None:
            fig.unpriced = True
            continue
        fig.cost += (
            Decimal(row["i"] or 0) * price.input_per_million
            + Decimal(row["o"] or 0) * price.output_per_million
        ) / Decimal(1_000_000)


def bucket_labels(
    window: str, since: datetime, until: datetime
) -> tuple[int, list[int], list[str]]:
    """A chart's x axis over the window: the bucket's length in seconds, the buckets
    (EpochBucket numbers) from `since` to `until`, and their labels in local time."""
    bucket = int(WINDOWS[window][1].total_seconds())
    buckets = list(range(int(since.timestamp()) // bucket, int(until.timestamp()) // bucket + 1))
    labels = [
        timezone.localtime(
            datetime.fromtimestamp(b * bucket, tz=timezone.get_current_timezone())
        ).strftime("%H:%M" if window != "week" else "%a %H:%M")
        for b in buckets
    ]
    return bucket, buckets, labels


def series(*, window: str = "day", now: datetime | None = None) -> dict[str, Any]:
    """Chart data: per bucket, runs per agent, error rate and p95 response time (one scan)."""
    since, until = window_bounds(window, now)
    bucket, buckets, labels = bucket_labels(window, since, until)
    runs = AgentRun.objects.filter(started_at__gte=since, started_at__lt=until).annotate(
        bucket=EpochBucket("started_at", bucket)
    )
    slugs = sorted(AgentProfile.objects.values_list("slug", flat=True))
    overall = _bucket_rows(runs, slugs)

    def rate(b: int) -> float | None:
        row = overall.get(b)
        return round(row["errors"] / row["finished"], 4) if row and row["finished"] else None

    def p95(b: int) -> int | None:
        value = overall[b]["p95"] if b in overall else None
        return round(value) if value is not None else None

    return {
        "window": window,
        "bucket_seconds": bucket,
        "labels": labels,
        "runs": _runs_per_agent(overall, slugs, buckets),
        "error_rate": [rate(b) for b in buckets],
        "p95_ms": [p95(b) for b in buckets],
    }


def _bucket_rows(runs: QuerySet[AgentRun], slugs: list[str]) -> dict[int, dict[str, Any]]:
    """Per bucket: runs (in all and per agent, as a{i}), errors, finished runs, p95."""
    aggregates: dict[str, Any] = {
        "n": Count("id"),
        "errors": Count("id", filter=ERROR),
        "finished": Count("id", filter=FINISHED),
        **{f"a{i}": Count("id", filter=Q(agent_slug=slug)) for i, slug in enumerate(slugs)},
    }
    postgres = connection.vendor == "postgresql"
    if postgres:
        aggregates["p95"] = Percentile("duration_ms", 0.95, filter=FINISHED)
    overall = {r["bucket"]: r for r in runs.values("bucket").annotate(**aggregates).order_by()}
    if not postgres:
        durations: dict[int, list[float]] = defaultdict(list)
        timed = runs.filter(FINISHED, duration_ms__isnull=False)
        for b, ms in timed.values_list("bucket", "duration_ms"):
            durations[b].append(ms)
        for b, row in overall.items():
            row["p95"] = percentile_cont(durations[b], 0.95)
    return overall


def _runs_per_agent(
    overall: dict[int, dict[str, Any]], slugs: list[str], buckets: list[int]
) -> dict[str, list[int]]:
    agents: dict[str, list[int]] = {}
    for i, slug in enumerate([*slugs, "other"]):
        counts = []
        for b in buckets:
            row = overall.get(b)
            if row is None:
                counts.append(0)
            elif slug == "other":  # agents no longer in the registry
                counts.append(row["n"] - sum(row[f"a{j}"] for j in range(len(slugs))))
            else:
                counts.append(row[f"a{i}"])
        if any(counts):
            agents[slug] = counts
    return agents


def rule_figure(
    *, metric: str, agent_slug: str, since: datetime, until: datetime
) -> tuple[float | None, int]:
    """An alert rule's figure over its window, and how many finished runs it rests on."""
    runs = AgentRun.objects.filter(FINISHED, started_at__gte=since, started_at__lt=until)
    if agent_slug:
        runs = runs.filter(agent_slug=agent_slug)
    if metric == "error_rate":
        agg = runs.aggregate(n=Count("id"), errors=Count("id", filter=ERROR))
        return (agg["errors"] / agg["n"] if agg["n"] else None), agg["n"]
    timed = runs.filter(duration_ms__isnull=False)
    if connection.vendor == "postgresql":
        agg = timed.aggregate(n=Count("id"), p95=Percentile("duration_ms", 0.95))
        return agg["p95"], agg["n"]
    values = list(timed.values_list("duration_ms", flat=True))
    return percentile_cont(values, 0.95), len(values)


def agent_performance(*, agent_slug: str, window: str = "day") -> dict[str, Any]:
    """One agent's dashboard figures (orchestrator.stats) and health, for agents' tools."""
    fig = next((f for f in figures(window=window) if f.key == agent_slug), None)
    fig = fig or Figures(key=agent_slug)
    profile = AgentProfile.objects.filter(slug=agent_slug).values("enabled", "degraded").first()
    return {
        "agent": agent_slug,
        "known": profile is not None,
        "enabled": bool(profile and profile["enabled"]),
        "health": selectors.breaker_states().get(agent_slug)
        or ("degraded" if profile and profile["degraded"] else "ok"),
        "window": f"last {window}",
        "runs": fig.runs,
        "turns": fig.turns,
        "in_flight": fig.in_flight,
        "errors": fig.errors,
        "error_kinds": fig.error_kinds,
        "success_rate": round(fig.success_rate, 4) if fig.success_rate is not None else None,
        "median_response_ms": round(fig.p50_ms) if fig.p50_ms is not None else None,
        "p95_response_ms": round(fig.p95_ms) if fig.p95_ms is not None else None,
        "median_ttft_ms": round(fig.ttft_p50_ms) if fig.ttft_p50_ms is not None else None,
        "share_of_load": round(fig.share, 4),
    }
