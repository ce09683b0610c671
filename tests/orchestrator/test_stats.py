"""Dashboard figures against hand-computed ones, on a known set of runs (SQLite in
`make test`; the same tests run on PostgreSQL's percentile_cont in `make integration`)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orchestrator import stats
from orchestrator.models import AgentRun, ModelPrice

pytestmark = pytest.mark.django_db


def run(
    agent, ms, *, status="ok", ago=timedelta(minutes=10), model="m1", ttft=None, kind="", i=0, o=0
):
    return AgentRun(
        agent_slug=agent,
        conversation_id=uuid.uuid4(),
        turn_id=uuid.uuid4(),
        provider="openai_compatible",
        model_name=model,
        started_at=timezone.now() - ago,
        duration_ms=ms,
        ttft_ms=ttft,
        status=status,
        error_kind=kind,
        input_tokens=i,
        output_tokens=o,
    )


@pytest.fixture
def runs(team):
    AgentRun.objects.bulk_create(
        [
            run("billing", 100, ttft=10, i=1000, o=100),
            run("billing", 200, ttft=20, i=1000, o=100),
            run("billing", 300, ttft=30, model="m2", i=2000, o=500),
            run("billing", 400, ttft=40),
            run("billing", 1000, status="handoff", ttft=50),
            run("billing", 50, status="error", kind="timeout"),
            run("billing", None, status="running", ago=timedelta(seconds=5)),
            run("customer_support", 10, ttft=5),
            run("customer_support", 20, ttft=7),
            run("billing", 99999, ago=timedelta(days=2)),  # outside the day
        ]
    )
    ModelPrice.objects.create(
        model_name="m1", input_per_million=Decimal("2"), output_per_million=Decimal("8")
    )


def test_per_agent_figures_match_a_hand_computation(runs):
    billing, support = stats.figures(window="day")
    assert billing.key == "billing" and support.key == "customer_support"
    assert (billing.runs, billing.finished, billing.ok, billing.errors) == (7, 6, 5, 1)
    # Finished durations 50, 100, 200, 300, 400, 1000; percentile_cont interpolates.
    assert billing.p50_ms == pytest.approx(250)
    assert billing.p95_ms == pytest.approx(850)
    assert billing.p99_ms == pytest.approx(970)
    assert billing.ttft_p50_ms == pytest.approx(30)  # of the 5 that answered
    assert billing.success_rate == pytest.approx(5 / 6)
    assert billing.error_rate == pytest.approx(1 / 6)
    assert billing.share == pytest.approx(7 / 9)
    assert billing.in_flight == 1
    assert billing.error_kinds == {"timeout": 1}
    assert (billing.input_tokens, billing.output_tokens) == (4000, 700)
    # m1: 2000 in x 2 + 200 out x 8 per million; m2 has no price.
    assert billing.cost == Decimal("0.0056") and billing.unpriced is True
    assert support.p50_ms == pytest.approx(15) and support.error_rate == 0


def test_per_model_figures_and_windows(runs):
    by_model = {f.key: f for f in stats.figures(window="day", by="model")}
    assert by_model["m1"].runs == 8 and by_model["m2"].runs == 1
    assert by_model["m2"].unpriced and not by_model["m1"].unpriced
    assert [f.runs for f in stats.figures(window="week")][0] == 8  # the old run counts now
    assert stats.figures(window="hour")[0].runs == 7
    with pytest.raises(ValueError, match="Unknown window"):
        stats.figures(window="year")


def test_series_puts_runs_in_their_buckets(runs):
    data = stats.series(window="hour")
    assert len(data["labels"]) == len(data["error_rate"]) == len(data["p95_ms"]) == 13
    assert (
        sum(data["runs"]["billing"]) == 7
        and sum(data["runs"]["customer_support"]) == 2
        and "other" not in data["runs"]
    )
    assert sum(1 for r in data["error_rate"] if r) == 1


def test_percentile_cont_interpolates_like_postgres():
    assert stats.percentile_cont([], 0.5) is None
    assert stats.percentile_cont([7], 0.99) == 7
    assert stats.percentile_cont([1, 2, 3, 4], 0.5) == 2.5
