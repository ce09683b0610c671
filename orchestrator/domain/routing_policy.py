"""Where a turn starts: the router's decision, stickiness, load awareness, "nothing fits".

Pure logic over plain data (no ORM, no SDK), so it is easy to test and runs in a
worker thread. The runtime calls `decide` before each turn and records the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .enums import AgentRole, BreakerState, RoutePath, UnsurePolicy
from .exceptions import NoAgentAvailable
from .team import AgentSpec, Team


@dataclass(frozen=True)
class Ranking:
    """The router's verdict on one message: its pick (None: nothing fits) and every
    candidate, best first, with its confidence."""

    agent: str | None
    confidence: float
    ranked: tuple[tuple[str, float], ...]

    def score_of(self, slug: str) -> float:
        return next((s for a, s in self.ranked if a == slug), 0.0)


class RankingSource(Protocol):
    """What routing needs of a router (orchestrator.router.Router is one)."""

    def route(self, text: str) -> Ranking: ...


@dataclass(frozen=True)
class Policy:
    threshold: float
    when_unsure: UnsurePolicy = UnsurePolicy.FALLBACK
    topic_change_margin: float = 0.15
    llm_available: bool = False  # the orchestrator runs on an LLM, so it can decide when unsure


@dataclass(frozen=True)
class RoutingDecision:
    agent: str  # where the turn starts
    path: RoutePath
    confidence: float
    routed_to: str | None  # the router's own pick, before load checks (None: nothing fits)
    runners_up: tuple[tuple[str, float], ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (agent, why)

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "path": self.path,
            "confidence": round(self.confidence, 4),
            "routed_to": self.routed_to,
            "runners_up": [[a, round(s, 4)] for a, s in self.runners_up],
            "skipped": [list(s) for s in self.skipped],
        }


def unavailable_reason(
    spec: AgentSpec | None, in_flight: Mapping[str, int], circuits: Mapping[str, str] | None = None
) -> str | None:
    if spec is None or not spec.enabled:
        return "disabled"
    if spec.degraded:
        return "degraded"
    if (circuits or {}).get(spec.slug) == BreakerState.OPEN:
        return "degraded: its model keeps failing (circuit open)"
    if spec.max_concurrency and in_flight.get(spec.slug, 0) >= spec.max_concurrency:
        return "at its concurrency limit"
    return None


def decide(
    *,
    team: Team,
    router: RankingSource,
    text: str,
    active: str | None,
    policy: Policy,
    in_flight: Mapping[str, int] | None = None,
    circuits: Mapping[str, str] | None = None,
) -> RoutingDecision:
    route: Ranking = router.route(text)
    best, confidence = route.agent, route.confidence
    confident = best is not None and confidence >= policy.threshold
    target, path = _first_choice(team, route, active, policy, confident=confident)
    target, path, skipped = _available(team, target, path, in_flight or {}, circuits)
    runners_up = tuple((a, s) for a, s in route.ranked if a != best)[:3]
    return RoutingDecision(
        agent=target,
        path=path,
        confidence=confidence,
        routed_to=best if confident else None,
        runners_up=runners_up,
        skipped=tuple(skipped),
    )


def _first_choice(
    team: Team, route: Ranking, active: str | None, policy: Policy, *, confident: bool
) -> tuple[str, RoutePath]:
    """Where the turn would start if every agent were available."""
    fallback, orchestrator = team.fallback, team.orchestrator
    best, confidence = route.agent, route.confidence
    current = team.get(active)
    sticky = (
        current if current and current.enabled and current.role == AgentRole.SPECIALIST else None
    )
    if sticky is not None and (
        not confident
        or best == sticky.slug
        or confidence < route.score_of(sticky.slug) + policy.topic_change_margin
    ):
        return sticky.slug, RoutePath.STICKY
    if confident and best is not None:
        return best, RoutePath.FAST
    if policy.when_unsure == UnsurePolicy.ORCHESTRATOR and policy.llm_available and orchestrator:
        return orchestrator.slug, RoutePath.ORCHESTRATOR
    if fallback is not None:
        return fallback.slug, RoutePath.FALLBACK
    if orchestrator is not None:
        return orchestrator.slug, RoutePath.ORCHESTRATOR
    raise NoAgentAvailable("The team has no enabled orchestrator or fallback agent.")


def _available(
    team: Team,
    target: str,
    path: RoutePath,
    in_flight: Mapping[str, int],
    circuits: Mapping[str, str] | None,
) -> tuple[str, RoutePath, list[tuple[str, str]]]:
    """Load awareness: skip an unavailable agent for its alternative, else the fallback."""
    fallback, orchestrator = team.fallback, team.orchestrator
    skipped: list[tuple[str, str]] = []
    seen = {target}
    while (reason := unavailable_reason(team.get(target), in_flight, circuits)) is not None:
        skipped.append((target, reason))
        spec = team.get(target)
        options = [
            spec.alternative if spec else None,
            fallback.slug if fallback else None,
            orchestrator.slug if orchestrator else None,
        ]
        nxt = next((o for o in options if o and o not in seen), None)
        if nxt is None:
            raise NoAgentAvailable("No agent is available to answer.")
        seen.add(nxt)
        target = nxt
        if fallback is not None and target == fallback.slug:
            path = RoutePath.FALLBACK
    return target, path, skipped
