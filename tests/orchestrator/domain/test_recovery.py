"""The recovery policy, without the SDK: what comes after a model failure."""

from __future__ import annotations

from orchestrator.domain.enums import AgentRole
from orchestrator.domain.recovery import Action, Next, Recovery
from orchestrator.domain.team import AgentSpec, Team


def _agent(slug: str, role: str = AgentRole.SPECIALIST, **kw) -> AgentSpec:
    return AgentSpec(
        slug=slug,
        name=slug.title(),
        role=role,
        instructions="",
        handoff_description="",
        provider="local",
        model_name="",
        enabled=kw.pop("enabled", True),
        **kw,
    )


TEAM = Team(
    agents={
        "billing": _agent("billing", alternative="support"),
        "support": _agent("support"),
        "general": _agent("general", AgentRole.FALLBACK),
    }
)


def test_the_same_agent_is_retried_first_with_a_doubling_backoff():
    policy = Recovery(TEAM, retries=2, backoff=1.0)
    assert policy.after_failure("billing", circuits={}, time_left=60) == Next(
        Action.RETRY, "billing", 1.0
    )
    assert policy.after_failure("billing", circuits={}, time_left=60) == Next(
        Action.RETRY, "billing", 2.0
    )
    assert policy.after_failure("billing", circuits={}, time_left=60) == Next(
        Action.ALTERNATIVE, "support"
    )


def test_an_open_circuit_skips_the_retry():
    policy = Recovery(TEAM, retries=1, backoff=1.0)
    step = policy.after_failure("billing", circuits={"billing": "open"}, time_left=60)
    assert step == Next(Action.ALTERNATIVE, "support")


def test_after_the_alternative_comes_the_fallback_then_nothing():
    policy = Recovery(TEAM, retries=0, backoff=0.1)
    assert policy.after_failure("billing", circuits={}, time_left=60).agent == "support"
    assert policy.after_failure("support", circuits={}, time_left=60) == Next(
        Action.FALLBACK, "general"
    )
    assert policy.after_failure("general", circuits={}, time_left=60) is None


def test_an_unavailable_alternative_is_passed_over():
    for circuits, team in [
        ({"support": "open"}, TEAM),
        ({}, Team(agents={**TEAM.agents, "support": _agent("support", enabled=False)})),
        ({}, Team(agents={**TEAM.agents, "support": _agent("support", degraded=True)})),
    ]:
        policy = Recovery(team, retries=0, backoff=0.1)
        assert policy.after_failure("billing", circuits=circuits, time_left=60) == Next(
            Action.FALLBACK, "general"
        )


def test_no_time_left_for_the_backoff_gives_up():
    policy = Recovery(TEAM, retries=3, backoff=5.0)
    assert policy.after_failure("billing", circuits={}, time_left=4.0) is None
