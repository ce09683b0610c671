"""Run rollups against the raw runs they sum: the dashboard's figures read with rollups
equal those read from raw runs alone (counts, errors, tokens, turns, costs exactly;
percentiles within the histograms' bound), the minutes not rolled up yet are read raw,
and rolling up again or from scratch changes nothing."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum
from django.utils import timezone

from orchestrator import privacy, rollups, stats
from orchestrator.domain import rollups as histograms
from orchestrator.models import AgentRun, AgentRunRollup, AgentRunRollupMark, ModelPrice

pytestmark = pytest.mark.django_db

AGENTS = ("billing", "customer_support", "tech")
MODELS = ("m1", "m2")
KINDS = ("timeout", "server_error", "rate_limited")


def _runs(now, *, n=600, hours=5, seed=1) -> list[AgentRun]:
    """Random runs over the last `hours`: turns of 1 to 3 runs a few seconds apart (some
    across a minute's end), errors of several kinds, and a few a dead process left open."""
    r = random.Random(seed)
    out = []
    while len(out) < n:
        turn, conversation = uuid.uuid4(), uuid.uuid4()
        at = now - timedelta(seconds=r.uniform(0, hours * 3600))
        for _ in range(r.choice([1, 1, 2, 3])):
            status = r.choices(["ok", "handoff", "error", "running"], [80, 10, 8, 2])[0]
            out.append(
                AgentRun(
                    agent_slug=r.choice(AGENTS),
                    conversation_id=conversation,
                    turn_id=turn,
                    provider="openai_compatible",
                    model_name=r.choice(MODELS),
                    started_at=at,
                    status=status,
                    duration_ms=None if status == "running" else int(r.lognormvariate(6, 1)),
                    ttft_ms=int(r.uniform(20, 900)) if status in ("ok", "handoff") else None,
                    error_kind=r.choice(KINDS) if status == "error" else "",
                    input_tokens=r.randint(0, 3000),
                    output_tokens=r.randint(0, 500),
                )
            )
            at += timedelta(seconds=r.uniform(0.5, 20))
    AgentRun.objects.bulk_create(out)
    return out


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def priced():
    ModelPrice.objects.create(
        model_name="m1", input_per_million=Decimal("2"), output_per_million=Decimal("8")
    )


def _without_rollups(fn):
    """`fn()` read from raw runs alone (the mark forgotten), then the mark put back."""
    mark = list(AgentRunRollupMark.objects.values())
    AgentRunRollupMark.objects.all().delete()
    try:
        return fn()
    finally:
        for row in mark:
            AgentRunRollupMark.objects.create(**row)


def _close(estimate, exact):
    if exact is None or estimate is None:
        return estimate == exact
    if exact == 0:
        return estimate == 0
    return abs(estimate - exact) / exact <= histograms.REL_ERROR + 1e-9


EXACT = ("runs", "turns", "ok", "errors", "finished", "input_tokens", "output_tokens")


@pytest.mark.parametrize("by", ["agent", "model"])
@pytest.mark.parametrize("window", ["hour", "day", "week"])
def test_figures_from_rollups_equal_the_raw_ones(now, priced, window, by):
    _runs(now)
    assert rollups.rollups_update(now=now) > 0
    plan = rollups.window_plan(*stats.window_bounds(window, now))
    assert plan.minutes and plan.raw
    assert bool(plan.hours) == (window != "hour")
    rolled = {f.key: f for f in stats.figures(window=window, by=by, now=now)}
    exact = _without_rollups(
        lambda: {f.key: f for f in stats.figures(window=window, by=by, now=now)}
    )
    assert rolled.keys() == exact.keys()
    for key, fig in rolled.items():
        want = exact[key]
        assert [getattr(fig, f) for f in EXACT] == [getattr(want, f) for f in EXACT], key
        assert fig.error_kinds == want.error_kinds and fig.share == pytest.approx(want.share)
        assert (fig.cost, fig.unpriced) == (want.cost, want.unpriced)
        for name in ("p50_ms", "p95_ms", "p99_ms", "ttft_p50_ms"):
            assert _close(getattr(fig, name), getattr(want, name)), (key, name)


def test_the_counts_are_the_stored_runs_and_turns(now):
    runs = _runs(now, hours=20)
    rollups.rollups_update(now=now)
    figs = {f.key: f for f in stats.figures(window="day", now=now)}
    for agent in AGENTS:
        mine = AgentRun.objects.filter(agent_slug=agent)
        agg = mine.aggregate(n=Count("id"), i=Sum("input_tokens"), o=Sum("output_tokens"))
        assert (figs[agent].runs, figs[agent].input_tokens) == (agg["n"], agg["i"])
        assert figs[agent].output_tokens == agg["o"]
        # No turn is under way at the window's start: turns are the distinct ones.
        assert figs[agent].turns == mine.values("turn_id").distinct().count()
        assert figs[agent].errors == mine.filter(status="error").count()
    assert sum(f.runs for f in figs.values()) == len(runs)


def test_a_turn_across_a_minutes_end_counts_once(now):
    turn = uuid.uuid4()
    edge = histograms.floor_minute(now) - timedelta(minutes=30)
    for at in (edge - timedelta(seconds=2), edge + timedelta(seconds=3)):
        AgentRun.objects.create(
            agent_slug="billing",
            conversation_id=uuid.uuid4(),
            turn_id=turn,
            provider="x",
            model_name="m1",
            started_at=at,
            status="ok",
            duration_ms=100,
        )
    rollups.rollups_update(now=now)
    assert AgentRunRollup.objects.filter(span=60).count() == 2
    (fig,) = stats.figures(window="hour", now=now)
    assert (fig.runs, fig.turns) == (2, 1)


def test_a_turn_whose_first_run_was_rolled_up_earlier_counts_once(now):
    turn = uuid.uuid4()

    def run(ago):
        AgentRun.objects.create(
            agent_slug="billing",
            conversation_id=uuid.uuid4(),
            turn_id=turn,
            provider="x",
            model_name="m1",
            started_at=now - ago,
            status="ok",
            duration_ms=100,
        )

    run(timedelta(minutes=40))
    rollups.rollups_update(now=now - timedelta(minutes=30))
    run(timedelta(minutes=20))  # a workflow step's run, say: same turn id, much later
    rollups.rollups_update(now=now)
    assert AgentRunRollup.objects.filter(span=60).count() == 2
    (fig,) = stats.figures(window="hour", now=now)
    assert (fig.runs, fig.turns) == (2, 1)
    (by_model,) = stats.figures(window="hour", by="model", now=now)
    assert by_model.turns == 1


def test_the_minutes_not_rolled_up_yet_are_read_raw_and_exact(now):
    _runs(now, n=200)
    rollups.rollups_update(now=now)
    reached = AgentRunRollupMark.objects.get().minutes_until
    assert reached <= now - timedelta(minutes=3)
    before = {f.key: f for f in stats.figures(window="hour", now=now)}
    # Runs of the current minute, one of them still running: counted at once.
    for status, ms in (("ok", 77), ("running", None), ("error", 5)):
        AgentRun.objects.create(
            agent_slug="billing",
            conversation_id=uuid.uuid4(),
            turn_id=uuid.uuid4(),
            provider="x",
            model_name="m1",
            started_at=now - timedelta(seconds=1),
            status=status,
            duration_ms=ms,
            input_tokens=10,
        )
    after = {f.key: f for f in stats.figures(window="hour", now=now)}
    b, a = before["billing"], after["billing"]
    assert (a.runs, a.finished, a.errors, a.ok) == (
        b.runs + 3,
        b.finished + 2,
        b.errors + 1,
        b.ok + 1,
    )
    assert a.input_tokens == b.input_tokens + 30
    assert AgentRunRollupMark.objects.get().minutes_until == reached  # nothing rolled on read


def test_without_rollups_the_percentiles_are_exact(now):
    for ms in (100, 200, 300, 400):
        AgentRun.objects.create(
            agent_slug="billing",
            conversation_id=uuid.uuid4(),
            turn_id=uuid.uuid4(),
            provider="x",
            model_name="m1",
            started_at=now - timedelta(minutes=1),
            status="ok",
            duration_ms=ms,
        )
    (fig,) = stats.figures(window="hour", now=now)
    assert fig.p50_ms == 250  # percentile_cont; a histogram would give a bucket's value


def test_rolling_up_again_or_from_scratch_changes_nothing(now):
    _runs(now)
    rollups.rollups_update(now=now)

    def rows():
        return sorted(
            tuple(r.values())
            for r in AgentRunRollup.objects.values(
                "span", "start", *rollups.KEY_FIELDS, *rollups.COUNT_FIELDS
            )
        )

    first = rows()
    assert rollups.rollups_update(now=now) == 0 and rows() == first
    assert rollups.rollups_rebuild(now=now) > 0 and rows() == first
    assert rollups.rollups_rebuild(now=now) > 0 and rows() == first


def test_hour_rows_are_the_sum_of_their_minutes(now):
    _runs(now, hours=4)
    rollups.rollups_update(now=now)
    hours = AgentRunRollup.objects.filter(span=3600)
    assert hours.exists()
    mark = AgentRunRollupMark.objects.get()
    assert mark.hours_until == histograms.floor_hour(mark.minutes_until)
    for hour in hours:
        minutes = AgentRunRollup.objects.filter(
            span=60,
            start__gte=hour.start,
            start__lt=hour.start + timedelta(hours=1),
            agent_slug=hour.agent_slug,
            model_name=hour.model_name,
            error_kind=hour.error_kind,
        ).aggregate(**{f: Sum(f) for f in ("runs", "errors", "input_tokens", "d10", "t20")})
        assert minutes == {f: getattr(hour, f) for f in minutes}


def test_the_charts_from_rollups_equal_the_raw_ones(now, team):
    _runs(now, hours=20)
    rollups.rollups_update(now=now)
    for window in ("hour", "day", "week"):
        rolled = stats.series(window=window, now=now)
        exact = _without_rollups(lambda w=window: stats.series(window=w, now=now))
        assert rolled["runs"] == exact["runs"] and rolled["labels"] == exact["labels"]
        assert rolled["error_rate"] == exact["error_rate"]
        for got, want in zip(rolled["p95_ms"], exact["p95_ms"], strict=True):
            # rounded to whole milliseconds on both sides
            assert got == want or _close(got, want) or abs(got - want) <= 1


def test_a_dead_processs_run_is_closed_before_its_minute_is_rolled_up(now):
    run = AgentRun.objects.create(
        agent_slug="billing",
        conversation_id=uuid.uuid4(),
        turn_id=uuid.uuid4(),
        provider="x",
        model_name="m1",
        started_at=now - timedelta(minutes=30),
    )
    rollups.rollups_update(now=now)
    run.refresh_from_db()
    assert run.status == "error"
    row = AgentRunRollup.objects.get(span=60)
    assert (row.runs, row.errors, row.finished) == (1, 1, 1)


def test_erasing_a_conversation_keeps_its_counts_in_the_rollups(now):
    """Rollups hold agent, model, minute and counts only (docs/privacy.md): they stay."""
    runs = _runs(now - timedelta(minutes=10), n=50)  # all in minutes that get rolled up
    rollups.rollups_update(now=now)
    before = sum(f.runs for f in stats.figures(window="day", now=now))
    gone = runs[0].conversation_id
    privacy.records_delete(conversation_ids=[gone])
    assert not AgentRun.objects.filter(conversation_id=gone).exists()
    fields = {f.name for f in AgentRunRollup._meta.get_fields()}
    assert not fields & {"conversation_id", "turn_id", "error", "uuid"}
    assert sum(f.runs for f in stats.figures(window="day", now=now)) == before == len(runs)


def test_the_command_rolls_up_and_rebuilds(now, capsys):
    _runs(now, n=30)
    call_command("rollup_runs")
    assert "Rolled up" in capsys.readouterr().out
    call_command("rollup_runs")
    assert "up to date" in capsys.readouterr().out
    count = AgentRunRollup.objects.count()
    call_command("rollup_runs", "--rebuild")
    assert "Rolled up" in capsys.readouterr().out and AgentRunRollup.objects.count() == count


def test_after_a_turn_the_rollups_are_updated_at_most_once_an_interval(settings, monkeypatch):
    calls = []
    monkeypatch.setattr(rollups, "_update_in_thread", lambda: calls.append(1))
    rollups.throttle.reset()
    settings.SUPERORCH_ROLLUP_INTERVAL = 0
    assert rollups.rollups_maybe_update() is None  # 0: never after turns
    settings.SUPERORCH_ROLLUP_INTERVAL = 60
    thread = rollups.rollups_maybe_update()
    assert thread is not None
    thread.join(5)
    assert rollups.rollups_maybe_update() is None and calls == [1]
    rollups.throttle.reset()


def test_beat_rolls_up_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["rollup-runs"]
    assert entry == {"task": "orchestrator.rollup_runs", "schedule": 60.0}


def test_the_dashboard_answers_with_rollups(admin_client, team, now):
    runs = _runs(now, n=100)
    rollups.rollups_update()
    assert admin_client.get("/admin/orchestrator/agentrun/dashboard/").status_code == 200
    response = admin_client.get("/admin/orchestrator/agentrun/dashboard/series.json?window=day")
    assert response.status_code == 200 and sum(
        sum(v) for v in response.json()["runs"].values()
    ) == len(runs)
