"""Reads: performance figures from recorded AgentRuns, computed in the database.

Per agent or per model, over a window (last hour, day, week): runs and turns,
median / p95 / p99 response time, median time to first token, success and error
rates, share of the load, tokens in and out and their estimated cost (ModelPrice),
and runs in flight now. The window is read from the run rollups (orchestrator.rollups)
where they reach and from the raw runs for the rest (the partial minutes at its ends,
the last minutes not settled yet): counts and tokens are exact; percentiles are exact
when no rollup is in them, else estimated from merged histograms within
domain.rollups.REL_ERROR (9.05 %). Alert rules (`rule_figure`) read raw runs:
`percentile_cont` in the query on PostgreSQL, the same interpolation in Python on SQLite.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Func, IntegerField, Q
from django.utils import timezone

from . import rollups, selectors
from .domain import rollups as histograms
from .domain.enums import RunStatus
from .models import (
    ROLLUP_DURATION_FIELDS,
    ROLLUP_TTFT_FIELDS,
    AgentProfile,
    AgentRun,
    ModelPrice,
)

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
    """One row per agent (by="agent") or model (by="model") that ran in the window:
    rollups for the minutes and hours they cover, raw runs for the rest."""
    group = {"agent": "agent_slug", "model": "model_name"}[by]
    since, until = window_bounds(window, now)
    plan = rollups.window_plan(since, until)
    tally = _Tally(by)
    if plan.minutes or plan.hours:
        for row in rollups.rolled_sums(rollups.rolled(plan), *rollups.KEY_FIELDS):
            tally.add_rolled(row)
    if plan.raw:
        for run in rollups.raw(plan).values(*_RAW_FIELDS):
            tally.add_raw(run)
    out = tally.figures()
    _costs(out, tally.tokens)
    # In flight now (whatever the window): runs still open, but not ones a dead server left.
    flying = selectors.agent_runs_in_flight().values(group).annotate(n=Count("id"))
    for row in flying:
        fig = out.setdefault(row[group], Figures(key=row[group]))
        fig.in_flight = row["n"]
    return sorted(out.values(), key=lambda f: (-f.runs, f.key))


_RAW_FIELDS = (
    "agent_slug",
    "model_name",
    "error_kind",
    "status",
    "duration_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "later_a",
    "later_m",
)
_DONE_VALUES = (RunStatus.OK.value, RunStatus.HANDOFF.value)


@dataclass
class _Group:
    fig: Figures
    durations: list[int] = field(default_factory=list)  # raw runs' values, exact
    ttfts: list[int] = field(default_factory=list)
    duration_hist: list[int] = field(default_factory=lambda: [0] * histograms.BUCKETS)
    ttft_hist: list[int] = field(default_factory=lambda: [0] * histograms.BUCKETS)


class _Tally:
    """Rollup rows and raw runs summed into one Figures per agent or model."""

    def __init__(self, by: str) -> None:
        self.key = "agent_slug" if by == "agent" else "model_name"
        self.turns = "turns_by_agent" if by == "agent" else "turns_by_model"
        self.later = "later_a" if by == "agent" else "later_m"
        self.groups: dict[str, _Group] = {}
        self.tokens: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])

    def _group(self, key: str) -> _Group:
        if key not in self.groups:
            self.groups[key] = _Group(Figures(key=key))
        return self.groups[key]

    def _common(self, fig: Figures, row: dict[str, Any], errors: int) -> None:
        if errors and row["error_kind"]:
            fig.error_kinds[row["error_kind"]] = fig.error_kinds.get(row["error_kind"], 0) + errors
        tokens = self.tokens[(fig.key, row["model_name"])]
        tokens[0] += row["input_tokens"] or 0
        tokens[1] += row["output_tokens"] or 0
        fig.input_tokens += row["input_tokens"] or 0
        fig.output_tokens += row["output_tokens"] or 0

    def add_rolled(self, row: dict[str, Any]) -> None:
        g = self._group(row[self.key])
        fig = g.fig
        fig.runs += row["runs"]
        fig.turns += row[self.turns]
        fig.ok += row["ok"]
        fig.errors += row["errors"]
        fig.finished += row["finished"]
        self._common(fig, row, row["errors"])
        histograms.merge(g.duration_hist, rollups.histogram_of(row, ROLLUP_DURATION_FIELDS))
        histograms.merge(g.ttft_hist, rollups.histogram_of(row, ROLLUP_TTFT_FIELDS))

    def add_raw(self, run: dict[str, Any]) -> None:
        g = self._group(run[self.key])
        fig, status = g.fig, run["status"]
        fig.runs += 1
        fig.turns += 0 if run[self.later] else 1
        fig.ok += status in _DONE_VALUES
        error = status == RunStatus.ERROR.value
        fig.errors += error
        fig.finished += status != RunStatus.RUNNING.value
        self._common(fig, run, int(error))
        if status != RunStatus.RUNNING.value and run["duration_ms"] is not None:
            g.durations.append(run["duration_ms"])
        if status in _DONE_VALUES and run["ttft_ms"] is not None:
            g.ttfts.append(run["ttft_ms"])

    def figures(self) -> dict[str, Figures]:
        total = sum(g.fig.runs for g in self.groups.values()) or 1
        for g in self.groups.values():
            fig = g.fig
            fig.share = fig.runs / total
            fig.p50_ms = _percentile(g.duration_hist, g.durations, 0.5)
            fig.p95_ms = _percentile(g.duration_hist, g.durations, 0.95)
            fig.p99_ms = _percentile(g.duration_hist, g.durations, 0.99)
            fig.ttft_p50_ms = _percentile(g.ttft_hist, g.ttfts, 0.5)
        return {key: g.fig for key, g in self.groups.items()}


def _percentile(rolled: list[int], exact: list[int], fraction: float) -> float | None:
    """Exact when every value is at hand (no rollup in it), else from the merged
    histogram, within histograms.REL_ERROR."""
    if not any(rolled):
        return percentile_cont(exact, fraction)
    merged = list(rolled)
    histograms.merge(merged, histograms.histogram(exact))
    return histograms.percentile(merged, fraction)


def _costs(out: dict[str, Figures], tokens: dict[tuple[str, str], list[int]]) -> None:
    """The estimated cost of the tokens per model, at ModelPrice's prices."""
    prices = {p.model_name: p for p in ModelPrice.objects.all()}
    for (key, model_name), (i, o) in tokens.items():
        if not (i or o):
            continue
        price = prices.get(model_name)
        if price is None:
            out[key].unpriced = True
            continue
        out[key].cost += (
            Decimal(i) * price.input_per_million + Decimal(o) * price.output_per_million
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
    """Chart data: per bucket, runs per agent, error rate and p95 response time."""
    since, until = window_bounds(window, now)
    bucket, buckets, labels = bucket_labels(window, since, until)
    plan = rollups.window_plan(since, until, use_hours=bucket % 3600 == 0)
    slugs = sorted(AgentProfile.objects.values_list("slug", flat=True))
    cells: dict[int, _Cell] = defaultdict(_Cell)
    if plan.minutes or plan.hours:
        rows = rollups.rolled(plan).annotate(bucket=EpochBucket("start", bucket))
        for row in rollups.rolled_sums(rows, "bucket", "agent_slug", fields=_CHART_FIELDS):
            cells[row["bucket"]].add_rolled(row)
    if plan.raw:
        for started, agent, status, ms in rollups.raw(plan, turns=False).values_list(
            "started_at", "agent_slug", "status", "duration_ms"
        ):
            cells[int(started.timestamp()) // bucket].add_raw(agent, status, ms)

    def rate(b: int) -> float | None:
        cell = cells.get(b)
        return round(cell.errors / cell.finished, 4) if cell and cell.finished else None

    def p95(b: int) -> int | None:
        cell = cells.get(b)
        value = _percentile(cell.hist, cell.durations, 0.95) if cell else None
        return round(value) if value is not None else None

    return {
        "window": window,
        "bucket_seconds": bucket,
        "labels": labels,
        "runs": _runs_per_agent(cells, slugs, buckets),
        "error_rate": [rate(b) for b in buckets],
        "p95_ms": [p95(b) for b in buckets],
    }


_CHART_FIELDS = ("runs", "errors", "finished", *ROLLUP_DURATION_FIELDS)


@dataclass
class _Cell:
    """One chart bucket: runs per agent, errors, finished runs, durations."""

    runs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: int = 0
    finished: int = 0
    durations: list[int] = field(default_factory=list)
    hist: list[int] = field(default_factory=lambda: [0] * histograms.BUCKETS)

    def add_rolled(self, row: dict[str, Any]) -> None:
        self.runs[row["agent_slug"]] += row["runs"]
        self.errors += row["errors"]
        self.finished += row["finished"]
        histograms.merge(self.hist, rollups.histogram_of(row, ROLLUP_DURATION_FIELDS))

    def add_raw(self, agent: str, status: str, ms: int | None) -> None:
        self.runs[agent] += 1
        self.errors += status == RunStatus.ERROR.value
        if status != RunStatus.RUNNING.value:
            self.finished += 1
            if ms is not None:
                self.durations.append(ms)


def _runs_per_agent(
    cells: dict[int, _Cell], slugs: list[str], buckets: list[int]
) -> dict[str, list[int]]:
    known = set(slugs)
    agents: dict[str, list[int]] = {}
    for slug in [*slugs, "other"]:
        counts = []
        for b in buckets:
            cell = cells.get(b)
            if cell is None:
                counts.append(0)
            elif slug == "other":  # agents no longer in the registry
                counts.append(sum(n for a, n in cell.runs.items() if a not in known))
            else:
                counts.append(cell.runs.get(slug, 0))
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
