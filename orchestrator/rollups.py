"""Run rollups (docs/monitoring.md): finished AgentRuns summed per minute and per hour,
per agent, model and error kind, with latency histograms, so the dashboard reads a few
thousand rollup rows instead of every run of a day or a week.

Writes: `rollups_update` rolls up every minute that is settled (its runs started before
anything still running can have: selectors.in_flight_since, and a minute more), then
every hour whose minutes are all rolled up; Celery beat runs it every minute
(`orchestrator.rollup_runs`), every process after a turn at most once a
SUPERORCH_ROLLUP_INTERVAL (on a thread), and `manage.py rollup_runs` (`--rebuild`:
from scratch, from the runs that are stored). A GET writes nothing: without any of
these the dashboard reads raw runs, right but slower. One INSERT ... SELECT a
stretch, in one transaction with the mark that says how far the rollups reach.

Reads: `rolled` and `raw` give the rows stats.figures and stats.series merge, for a
window cut by domain.rollups.plan: rollups where they exist, raw runs for the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum

from . import selectors, services
from .domain import rollups as domain
from .domain.enums import RunStatus
from .models import (
    ROLLUP_DURATION_FIELDS,
    ROLLUP_TTFT_FIELDS,
    AgentRun,
    AgentRunRollup,
    AgentRunRollupMark,
)
from .throttle import Throttle

log = logging.getLogger(__name__)

SETTLE_MARGIN = timedelta(minutes=1)  # runs finishing right at the turn timeout
COUNT_FIELDS = (
    "runs",
    "ok",
    "errors",
    "finished",
    "turns_by_agent",
    "turns_by_model",
    "input_tokens",
    "output_tokens",
    *ROLLUP_DURATION_FIELDS,
    *ROLLUP_TTFT_FIELDS,
)
KEY_FIELDS = ("agent_slug", "model_name", "error_kind")
_DONE = f"('{RunStatus.OK.value}', '{RunStatus.HANDOFF.value}')"
_ERROR = f"'{RunStatus.ERROR.value}'"
_RUNNING = f"'{RunStatus.RUNNING.value}'"


def settled_until(now: datetime | None = None) -> datetime:
    """Minutes before this are settled: none of their runs can still change."""
    return domain.floor_minute(selectors.in_flight_since(now) - SETTLE_MARGIN)


# --- writes -----------------------------------------------------------------------


def rollups_update(*, now: datetime | None = None) -> int:
    """Roll up the settled minutes not rolled up yet, and the hours they complete.
    Returns how many minutes it rolled up (0: up to date). Safe to run concurrently:
    the mark row is locked for the transaction."""
    AgentRunRollupMark.objects.get_or_create(pk=1)
    settled = settled_until(now)
    with transaction.atomic():
        mark = AgentRunRollupMark.objects.select_for_update().get(pk=1)
        first = _first_minute()
        start = mark.minutes_until or first
        if start is None or first is None or start >= settled:
            return 0
        # Runs a dead process left `running` are closed first, as they would be later.
        services.agent_runs_abandon(older_than=settled)
        _roll_minutes(start, settled, look_back=start > first)
        hours_from = mark.hours_until or domain.floor_hour(start)
        hours_to = domain.floor_hour(settled)
        if hours_to > hours_from:
            _roll_hours(hours_from, hours_to)
            mark.hours_until = hours_to
        mark.minutes_until = settled
        mark.save()
    return int((settled - start).total_seconds() // 60)


def rollups_rebuild(*, now: datetime | None = None) -> int:
    """Drop every rollup and roll up again from the stored runs (idempotent)."""
    with transaction.atomic():
        AgentRunRollup.objects.all().delete()
        AgentRunRollupMark.objects.all().delete()
    return rollups_update(now=now)


throttle = Throttle()  # when this process last rolled up after a turn


def rollups_maybe_update() -> threading.Thread | None:
    """After a turn: roll up on a background thread if this process has not tried in
    the last SUPERORCH_ROLLUP_INTERVAL seconds (0: never here; beat and the command
    still do). Nothing on the turn's own path: no query, no wait."""
    if not throttle.due(settings.SUPERORCH_ROLLUP_INTERVAL):
        return None
    thread = threading.Thread(target=_update_in_thread, name="run-rollups", daemon=True)
    thread.start()
    return thread


def _update_in_thread() -> None:
    close_old_connections()
    try:
        rollups_update()
    except Exception:  # the figures are right without rollups, only slower
        log.exception("rolling up agent runs failed")
    finally:
        connection.close()


def _first_minute() -> datetime | None:
    first = AgentRun.objects.order_by("started_at").values_list("started_at", flat=True)[:1]
    return domain.floor_minute(first[0]) if first else None


def _bucket_sql(column: str) -> str:
    if connection.vendor == "postgresql":
        bounds = ",".join(str(b) for b in domain.BOUNDS[1:])
        return f"width_bucket({column}, ARRAY[{bounds}]::integer[])"
    cases = " ".join(f"WHEN {column} < {b} THEN {i}" for i, b in enumerate(domain.BOUNDS[1:]))
    return f"CASE {cases} ELSE {domain.BUCKETS - 1} END"


def _truncate_sql(column: str, unit: str) -> str:
    if connection.vendor == "postgresql":
        return f"date_trunc('{unit}', {column})"
    keep, tail = {"minute": (16, ":00"), "hour": (13, ":00:00")}[unit]
    return f"(substr({column}, 1, {keep}) || '{tail}')"


def _columns() -> str:
    return ", ".join(("span", "start", *KEY_FIELDS, *COUNT_FIELDS))


def _first_of(column: str, *, look_back: bool) -> str:
    """1 if no earlier run of the same turn has the same agent (or model), else 0: the
    first in the stretch (a window function: one sort, not a probe a run), and with
    `look_back` none before the stretch either (a probe for those first ones only)."""
    runs = AgentRun._meta.db_table
    rank = f"row_number() OVER (PARTITION BY r.turn_id, r.{column} ORDER BY r.started_at, r.id)"
    before = (
        f"WHEN EXISTS (SELECT 1 FROM {runs} e WHERE e.turn_id = r.turn_id "
        f"AND e.{column} = r.{column} AND e.started_at < %s) THEN 0 "
        if look_back
        else ""
    )
    return f"CASE WHEN {rank} > 1 THEN 0 {before}ELSE 1 END"


def _roll_minutes(start: datetime, end: datetime, *, look_back: bool) -> None:
    runs, rollups = AgentRun._meta.db_table, AgentRunRollup._meta.db_table
    histograms = [
        f"SUM(CASE WHEN {col} = {i} THEN 1 ELSE 0 END)"
        for col in ("db", "tb")
        for i in range(domain.BUCKETS)
    ]
    sql = f"""
        INSERT INTO {rollups} ({_columns()})
        SELECT 60, minute, agent_slug, model_name, error_kind, COUNT(*),
          SUM(CASE WHEN status IN {_DONE} THEN 1 ELSE 0 END),
          SUM(CASE WHEN status = {_ERROR} THEN 1 ELSE 0 END),
          SUM(CASE WHEN status <> {_RUNNING} THEN 1 ELSE 0 END),
          SUM(fa), SUM(fm), SUM(input_tokens), SUM(output_tokens), {", ".join(histograms)}
        FROM (
          SELECT {_truncate_sql("r.started_at", "minute")} AS minute, r.agent_slug,
            r.model_name, r.error_kind, r.status, r.input_tokens, r.output_tokens,
            CASE WHEN r.status <> {_RUNNING} AND r.duration_ms IS NOT NULL
              THEN {_bucket_sql("r.duration_ms")} END AS db,
            CASE WHEN r.status IN {_DONE} AND r.ttft_ms IS NOT NULL
              THEN {_bucket_sql("r.ttft_ms")} END AS tb,
            {_first_of("agent_slug", look_back=look_back)} AS fa,
            {_first_of("model_name", look_back=look_back)} AS fm
          FROM {runs} r WHERE r.started_at >= %s AND r.started_at < %s
        ) x
        GROUP BY minute, agent_slug, model_name, error_kind
    """
    AgentRunRollup.objects.filter(span=60, start__gte=start, start__lt=end).delete()
    _execute(sql, *([start, start] if look_back else []), start, end)


def _roll_hours(start: datetime, end: datetime) -> None:
    rollups = AgentRunRollup._meta.db_table
    sums = ", ".join(f"SUM({f})" for f in COUNT_FIELDS)
    sql = f"""
        INSERT INTO {rollups} ({_columns()})
        SELECT 3600, {_truncate_sql("start", "hour")}, agent_slug, model_name, error_kind,
          {sums}
        FROM {rollups} WHERE span = 60 AND start >= %s AND start < %s
        GROUP BY {_truncate_sql("start", "hour")}, agent_slug, model_name, error_kind
    """
    AgentRunRollup.objects.filter(span=3600, start__gte=start, start__lt=end).delete()
    _execute(sql, start, end)


def _execute(sql: str, *params: datetime) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(p) for p in params])


# --- reads ------------------------------------------------------------------------


def window_plan(since: datetime, until: datetime, *, use_hours: bool = True) -> domain.Plan:
    mark = AgentRunRollupMark.objects.filter(pk=1).first()
    return domain.plan(
        since,
        until,
        minutes_until=mark.minutes_until if mark else None,
        hours_until=mark.hours_until if mark else None,
        use_hours=use_hours,
    )


def _spans_q(field: str, spans: Iterable[tuple[datetime, datetime]], **extra: Any) -> Q:
    q = Q(pk__in=[])
    for start, end in spans:
        q |= Q(**{f"{field}__gte": start, f"{field}__lt": end}, **extra)
    return q


def rolled(plan: domain.Plan) -> QuerySet[AgentRunRollup]:
    """The rollup rows that cover the plan's rolled-up stretches."""
    q = _spans_q("start", plan.minutes, span=60) | _spans_q("start", plan.hours, span=3600)
    return AgentRunRollup.objects.filter(q)


def rolled_sums(
    rows: QuerySet[AgentRunRollup], *group: str, fields: tuple[str, ...] = COUNT_FIELDS
) -> list[dict[str, Any]]:
    """These count fields summed per group (names as the fields')."""
    sums = {f"sum_{f}": Sum(f) for f in fields}
    out = []
    for row in rows.values(*group).annotate(**sums).order_by():
        out.append({**{g: row[g] for g in group}, **{f: row[f"sum_{f}"] or 0 for f in fields}})
    return out


def raw(plan: domain.Plan, *, turns: bool = True) -> QuerySet[AgentRun]:
    """The runs of the plan's raw stretches; with `turns`, each marked whether an
    earlier run of its turn had its agent (later_a) or its model (later_m): the
    rollups count a turn where its first run is."""

    def earlier(column: str) -> Exists:
        return Exists(
            AgentRun.objects.filter(
                Q(started_at__lt=OuterRef("started_at"))
                | Q(started_at=OuterRef("started_at"), id__lt=OuterRef("id")),
                turn_id=OuterRef("turn_id"),
                **{column: OuterRef(column)},
            )
        )

    runs = AgentRun.objects.filter(_spans_q("started_at", plan.raw)).order_by()
    if not turns:
        return runs
    return runs.annotate(later_a=earlier("agent_slug"), later_m=earlier("model_name")).order_by()


def histogram_of(row: dict[str, Any], fields: tuple[str, ...]) -> list[int]:
    return [row[f] for f in fields]
