"""One definition of "in flight": a run a dead process left `running` stops counting
once no run can last that long (the turn timeout), for routing and the dashboard alike,
and the abandon sweep closes it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator import selectors, services, stats
from orchestrator.domain.enums import RunStatus
from orchestrator.models import AgentProfile, AgentRun

pytestmark = pytest.mark.django_db

CHARGED_TWICE = "I was charged twice for my subscription this month"


def _run(agent: str, *, age: timedelta) -> AgentRun:
    return AgentRun.objects.create(
        agent_slug=agent,
        conversation_id=uuid.uuid4(),
        turn_id=uuid.uuid4(),
        provider="local",
        model_name="superorch-offline-1",
        started_at=timezone.now() - age,
    )


def test_an_orphaned_run_does_not_hold_an_agent_at_its_concurrency_limit(team):
    AgentProfile.objects.filter(slug="billing").update(max_concurrency=1)
    _run("billing", age=timedelta(days=3))  # left running by a server that died
    decision = services.route_decide(text=CHARGED_TWICE)
    assert decision.agent == "billing"
    assert not decision.skipped


def test_a_live_run_still_counts_against_the_limit(team):
    AgentProfile.objects.filter(slug="billing").update(max_concurrency=1)
    _run("billing", age=timedelta(seconds=5))
    decision = services.route_decide(text=CHARGED_TWICE)
    assert decision.agent != "billing"
    assert ("billing", "at its concurrency limit") in decision.skipped


def test_routing_and_the_dashboard_count_the_same_runs(team, settings):
    settings.SUPERORCH_TURN_TIMEOUT = 60
    _run("billing", age=timedelta(seconds=10))
    _run("billing", age=timedelta(seconds=61))
    AgentProfile.objects.filter(slug="billing").update(max_concurrency=5)
    counted = selectors.in_flight_counts(team=selectors.team_snapshot())
    (billing,) = [f for f in stats.figures(window="day") if f.key == "billing"]
    assert counted == {"billing": 1}
    assert billing.in_flight == 1


def test_the_abandon_sweep_closes_only_runs_older_than_any_live_one(team):
    old = _run("billing", age=timedelta(days=3))
    live = _run("billing", age=timedelta(seconds=5))
    assert services.agent_runs_abandon() == 1
    old.refresh_from_db()
    live.refresh_from_db()
    assert old.status == RunStatus.ERROR and old.error == services.ABANDONED
    assert live.status == RunStatus.RUNNING


def test_a_process_sweeps_once_when_it_starts(team):
    services.process_start.reset()
    _run("billing", age=timedelta(days=3))
    services.process_start()
    assert not AgentRun.objects.filter(status=RunStatus.RUNNING).exists()
    _run("billing", age=timedelta(days=3))
    services.process_start()  # once per process
    assert AgentRun.objects.filter(status=RunStatus.RUNNING).count() == 1
    services.process_start.reset()
