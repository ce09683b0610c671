"""Dashboard aggregations with 1,000,000 (or --rows) AgentRun rows on PostgreSQL.

Creates a scratch database (`superorch_bench`, dropped afterwards), migrates it, fills
agent_runs with ROWS rows spread over 30 days (10 agents, 3 models, about 5 % errors)
with one INSERT ... SELECT generate_series, builds the run rollups from them
(`rollups_rebuild`, what `manage.py rollup_runs --rebuild` does, timed), times one
minute's rollup (what Celery beat does every minute), and times each dashboard load (the
per-agent table, the per-model table and the charts) for the last hour, day and week:
the median of REPEAT loads. Then it checks the day window's figures against exact SQL
aggregates of the raw rows: counts and tokens equal, p50/p95 within the histograms' bound.

    python -m bench database [--json] [--rows N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import timedelta
from typing import Any

DB_NAME = "superorch_bench"
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# Each dashboard request (table, charts) on the day window: <= 100 ms at 1,000,000 runs,
# under 300 ms at 10,000,000.
TARGET_MS = {1_000_000: 100.0, 10_000_000: 300.0}


def _setup_django(url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "superorch_site.settings.integration"
    os.environ["INTEGRATION_DATABASE_URL"] = url
    import django

    django.setup()


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _fill(rows: int) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # As a bulk load is done: every index but the primary key is dropped (the unique
        # uuid constraint too), and built again once the rows are in (one sort each,
        # instead of random inserts into indexes larger than the cache).
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'orchestrator_agentrun'::regclass AND contype = 'u'"
        )
        constraints = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE orchestrator_agentrun DROP CONSTRAINT "{name}"')
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'orchestrator_agentrun' "
            "AND indexname <> 'orchestrator_agentrun_pkey'"
        )
        indexes = cursor.fetchall()
        definitions = [definition for _, definition in indexes]
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        cursor.execute(
            """
            INSERT INTO orchestrator_agentrun
              (agent_slug, conversation_id, turn_id, provider, model_name, started_at,
               ttft_ms, duration_ms, status, error, error_kind, requests, input_tokens,
               output_tokens, uuid)
            SELECT
              'agent_' || (g %% 10),
              md5('c' || (g / 3))::uuid,
              md5('t' || (g / 2))::uuid,
              'openai_compatible',
              (ARRAY['gpt-4.1-mini', 'gpt-4.1', 'local-llama'])[1 + g %% 3],
              now() - (random() * interval '30 days'),
              (100 + random() * 900)::int,
              (200 + exp(random() * 8))::int,
              CASE WHEN random() < 0.05 THEN 'error' WHEN g %% 7 = 0 THEN 'handoff' ELSE 'ok' END,
              '', '', 1, (200 + random() * 2000)::int, (20 + random() * 400)::int,
              md5('u' || g)::uuid
            FROM generate_series(1, %s) AS g
            """,
            [rows],
        )
        for definition in definitions:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(
                f'ALTER TABLE orchestrator_agentrun ADD CONSTRAINT "{name}" {definition}'
            )
    # As autovacuum would: statistics, and the visibility map index-only scans need.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE orchestrator_agentrun")
    return time.perf_counter() - started


def _time(fn, repeat: int) -> float:
    fn()  # warm the cache
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _loads(repeat: int) -> dict[str, dict[str, float]]:
    """Per window, the dashboard's requests: the table (per agent, per model) and the charts."""
    from orchestrator import stats

    out = {}
    for window in stats.WINDOWS:
        out[window] = {
            "agents": _time(lambda w=window: stats.figures(window=w), repeat),
            "models": _time(lambda w=window: stats.figures(window=w, by="model"), repeat),
            "charts": _time(lambda w=window: stats.series(window=w), repeat),
        }
    return out


def _rollups() -> tuple[float, float]:
    """Seconds to build every rollup from scratch, and ms to roll up one more minute."""
    from orchestrator import rollups
    from orchestrator.models import AgentRunRollupMark

    started = time.perf_counter()
    rollups.rollups_rebuild()
    rebuild_s = time.perf_counter() - started
    with connection_cursor() as cursor:
        cursor.execute("VACUUM ANALYZE orchestrator_agentrunrollup")
    mark = AgentRunRollupMark.objects.get()
    AgentRunRollupMark.objects.filter(pk=1).update(
        minutes_until=mark.minutes_until - timedelta(minutes=1)
    )
    started = time.perf_counter()
    rollups.rollups_update()
    return rebuild_s, (time.perf_counter() - started) * 1000


def connection_cursor():
    from django.db import connection

    return connection.cursor()


def _check(now) -> dict[str, Any]:
    """The day window's figures (rollups and raw tails) against exact SQL on the raw rows."""
    from orchestrator import stats
    from orchestrator.domain.rollups import REL_ERROR

    since, until = stats.window_bounds("day", now)
    with connection_cursor() as cursor:
        cursor.execute(
            """
            SELECT agent_slug, count(*), count(*) FILTER (WHERE status = 'error'),
              sum(input_tokens), sum(output_tokens),
              percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
              percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
            FROM orchestrator_agentrun WHERE started_at >= %s AND started_at < %s
            GROUP BY agent_slug
            """,
            [since, until],
        )
        exact = {row[0]: row[1:] for row in cursor.fetchall()}
    figs = {f.key: f for f in stats.figures(window="day", now=now)}
    counts_exact = figs.keys() == exact.keys() and all(
        (f.runs, f.errors, f.input_tokens, f.output_tokens) == tuple(exact[k][:4])
        for k, f in figs.items()
    )
    worst = max(
        abs(getattr(f, name) - exact[k][i]) / exact[k][i]
        for k, f in figs.items()
        for name, i in (("p50_ms", 4), ("p95_ms", 5))
    )
    return {
        "counts_exact": counts_exact,
        "percentile_max_rel_error": round(worst, 4),
        "bound": round(REL_ERROR, 4),
    }


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench database")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    _admin(f"DROP DATABASE IF EXISTS {DB_NAME}")
    _admin(f"CREATE DATABASE {DB_NAME}")
    try:
        base = ADMIN_URL.rsplit("/", 1)[0]
        _setup_django(f"{base}/{DB_NAME}")
        from django.core.management import call_command
        from django.db import connection
        from django.utils import timezone

        call_command("migrate", verbosity=0)
        fill_s = _fill(args.rows)
        rebuild_s, minute_ms = _rollups()
        loads = _loads(args.repeat)
        check = _check(timezone.now())
        connection.close()
    finally:
        from django.db import connections

        connections.close_all()
        _admin(f"DROP DATABASE IF EXISTS {DB_NAME}")
    day = max(loads["day"].values())
    target = TARGET_MS.get(args.rows, 100.0 if args.rows <= 1_000_000 else 300.0)

    def rounded(d):
        return {w: {k: round(v, 1) for k, v in r.items()} for w, r in d.items()}

    return {
        "scenario": "database",
        "rows": args.rows,
        "repeat": args.repeat,
        "fill_seconds": round(fill_s, 1),
        "rollup_rebuild_seconds": round(rebuild_s, 1),
        "rollup_minute_ms": round(minute_ms, 1),
        "ms": rounded(loads),
        "check": check,
        "target": f"each day-window request {'<=' if target <= 100 else '<'} {target:.0f} ms "
        f"at {args.rows:,} runs",
        "meets": (day <= target if target <= 100 else day < target)
        and check["counts_exact"]
        and check["percentile_max_rel_error"] <= check["bound"],
    }


def report(result: dict[str, Any]) -> str:
    check = result["check"]
    lines = [
        f"Dashboard requests on PostgreSQL with {result['rows']:,} AgentRun rows over 30 days "
        f"(ms, median of {result['repeat']}; filled in {result['fill_seconds']} s; rollups "
        f"built in {result['rollup_rebuild_seconds']} s, one more minute rolled up in "
        f"{result['rollup_minute_ms']} ms):",
        "| window | agents | models | charts |",
        "| --- | --- | --- | --- |",
    ]
    for window, requests in result["ms"].items():
        lines.append(
            f"| {window} | {requests['agents']} | {requests['models']} | {requests['charts']} |"
        )
    lines.append(
        f"check (day window against exact SQL on the raw rows): counts and tokens "
        f"{'exact' if check['counts_exact'] else 'DIFFER'}; p50/p95 at most "
        f"{check['percentile_max_rel_error']:.2%} off (bound {check['bound']:.2%})"
    )
    lines.append(f"target: {result['target']}: {'met' if result['meets'] else 'NOT met'}")
    return "\n".join(lines)
