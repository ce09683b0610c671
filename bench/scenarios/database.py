"""Dashboard aggregations with 1,000,000 AgentRun rows on PostgreSQL.

Creates a scratch database (`superorch_bench`, dropped afterwards), migrates it, fills
agent_runs with ROWS rows spread over 30 days (10 agents, 3 models, about 5 % errors)
with one INSERT ... SELECT generate_series, and times each dashboard load (the
per-agent table, the per-model table and the charts) for the last hour, day and week:
the median of REPEAT loads, with the project's indexes and then with them dropped, in
the same run. The ratio is without / with.

    python -m bench database [--json] [--rows N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

DB_NAME = "superorch_bench"
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
INDEXES = ("agentrun_time", "agentrun_agent_time", "agentrun_running")
TARGET_MS = 300.0  # each dashboard request (table, charts) on the day window, with the indexes


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
        # As a bulk load is done: the project's indexes are dropped, and built again once
        # the rows are in (faster than keeping them up to date row by row).
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'orchestrator_agentrun' "
            "AND indexname = ANY(%s)",
            [list(INDEXES)],
        )
        definitions = [row[0] for row in cursor.fetchall()]
        for name in INDEXES:
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

        call_command("migrate", verbosity=0)
        fill_s = _fill(args.rows)
        with_indexes = _loads(args.repeat)
        with connection.cursor() as cursor:
            for name in INDEXES:
                cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
            cursor.execute("ANALYZE orchestrator_agentrun")
        without = _loads(args.repeat)
        connection.close()
    finally:
        from django.db import connections

        connections.close_all()
        _admin(f"DROP DATABASE IF EXISTS {DB_NAME}")
    day = max(with_indexes["day"].values())
    day_without = max(without["day"].values())

    def rounded(d):
        return {w: {k: round(v, 1) for k, v in r.items()} for w, r in d.items()}

    return {
        "scenario": "database",
        "rows": args.rows,
        "repeat": args.repeat,
        "fill_seconds": round(fill_s, 1),
        "ms": rounded(with_indexes),
        "ms_without_indexes": rounded(without),
        "ratio": round(day_without / day, 2),
        "target": f"each day-window request <= {TARGET_MS:.0f} ms with the indexes",
        "meets": day <= TARGET_MS,
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Dashboard requests on PostgreSQL with {result['rows']:,} AgentRun rows over 30 days "
        f"(ms, median of {result['repeat']}; filled in {result['fill_seconds']} s):",
        "| window | request | with the indexes | without | without / with |",
        "| --- | --- | --- | --- | --- |",
    ]
    for window, requests in result["ms"].items():
        for name, ms in requests.items():
            other = result["ms_without_indexes"][window][name]
            lines.append(f"| {window} | {name} | {ms} | {other} | {other / ms:.2f} |")
    lines.append(f"target: {result['target']}: {'met' if result['meets'] else 'NOT met'}")
    return "\n".join(lines)
