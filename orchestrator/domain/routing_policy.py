"""Where a turn starts: the router's decision read within the conversation (follow-up,
topic change, aside, return, a request for a person), load awareness, "nothing fits".

Pure logic over plain data (no ORM, no SDK), so it is easy to test and runs in a
worker thread. The runtime, the admin's "Try routing" and `routing_eval --dialogues`
call `decide` (through services.route_decide) and record the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .conversation import Conversation, Reading, read_message, request_part, wants_person
from .enums import AgentRole, BreakerState, ConversationMove, RoutePath, UnsurePolicy
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
    # A message with almost no words of its own ("and how much?") changes the topic only
    # when the router is at least this sure, on it and on it read with the previous message.
    bare_topic_change: float = 0.95
    # "Nothing fits" releases a sticky conversation when the router is this unsure (its
    # confidence below this): the message is an aside unless its words go on with the
    # conversation. Between this and the threshold the conversation stays where it is.
    aside_below: float = 0.4


@dataclass(frozen=True)
class RoutingDecision:
    agent: str  # where the turn starts
    path: RoutePath
    confidence: float
    routed_to: str | None  # the router's own pick, before load checks (None: nothing fits)
    runners_up: tuple[tuple[str, float], ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (agent, why)
    move: ConversationMove = ConversationMove.FIRST  # how the message read in the conversation
    # The user asked for a person: the fallback agent answers until staff can take over
    # (the people-in-the-loop path reads this flag off the recorded decision).
    wants_person: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "path": self.path,
            "confidence": round(self.confidence, 4),
            "routed_to": self.routed_to,
            "runners_up": [[a, round(s, 4)] for a, s in self.runners_up],
            "skipped": [list(s) for s in self.skipped],
            "move": self.move,
            "wants_person": self.wants_person,
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
    active: str | None = None,
    policy: Policy,
    in_flight: Mapping[str, int] | None = None,
    circuits: Mapping[str, str] | None = None,
    conversation: Conversation | None = None,
) -> RoutingDecision:
    """Where the turn for `text` starts. `conversation` (default: just `active`) is what
    came before it; its `active` wins over the `active` argument."""
    conversation = conversation or Conversation(active=active)
    text = request_part(text)  # "fixed, thanks. and how do I export?": the question
    route: Ranking = router.route(text)
    best, confidence = route.agent, route.confidence
    confident = best is not None and confidence >= policy.threshold
    choice = _Reader(team, router, policy, conversation).choose(text, route)
    target, path, skipped = _available(team, choice.agent, choice.path, in_flight or {}, circuits)
    runners_up = tuple((a, s) for a, s in route.ranked if a != best)[:3]
    return RoutingDecision(
        agent=target,
        path=path,
        confidence=confidence,
        routed_to=best if confident else None,
        runners_up=runners_up,
        skipped=tuple(skipped),
        move=choice.move,
        wants_person=choice.move == ConversationMove.PERSON,
    )


@dataclass(frozen=True)
class _Choice:
    agent: str
    path: RoutePath
    move: ConversationMove


class _Reader:
    """Reads one message within the conversation: where it would start if every agent
    were available (load is checked after)."""

    def __init__(
        self, team: Team, router: RankingSource, policy: Policy, conversation: Conversation
    ) -> None:
        self.team, self.router, self.policy, self.conversation = team, router, policy, conversation
        self.current = _specialist(team, conversation.active)
        # After an aside (the fallback agent answered) the conversation still belongs to
        # the specialist it was with: the next on-topic message goes back there.
        self.home = self.current or _specialist(team, conversation.previous_specialist)

    def choose(self, text: str, route: Ranking) -> _Choice:
        policy = self.policy
        confident = route.agent is not None and route.confidence >= policy.threshold
        if wants_person(text):
            return self._nobody_fits(ConversationMove.PERSON)
        if self.home is None:
            move = (
                ConversationMove.TOPIC_CHANGE
                if self.conversation.earlier
                else ConversationMove.FIRST
            )
            if confident and route.agent is not None:
                return _Choice(route.agent, RoutePath.FAST, move)
            return self._nobody_fits(move)
        home = self.home.slug
        reading = read_message(text, self.conversation)
        if reading.social:  # thanks, goodbyes: small talk whatever the router makes of it
            return self._nobody_fits(ConversationMove.ASIDE)
        if (
            confident
            and route.agent not in (None, home)
            and self._changes_topic(text, route, reading)
        ):
            return _Choice(str(route.agent), RoutePath.FAST, ConversationMove.TOPIC_CHANGE)
        if not confident and self._aside(route, reading):
            return self._nobody_fits(ConversationMove.ASIDE)
        if self.current is not None:
            return _Choice(home, RoutePath.STICKY, ConversationMove.FOLLOW_UP)
        return _Choice(home, RoutePath.STICKY, ConversationMove.RETURN)

    def _changes_topic(self, text: str, route: Ranking, reading: Reading) -> bool:
        """A confident pick of another specialist is a topic change unless the message,
        read with the user's previous one, stays with the current specialist."""
        if reading.yes_no:
            return False
        if reading.new_topic and not reading.answers:
            return True  # "different question, ...": read on its own
        home = self.home.slug if self.home else ""
        if reading.answers and route.confidence < self.policy.bare_topic_change:
            return False
        earlier = self.conversation.earlier
        together = self.router.route(f"{earlier[-1]} {text}") if earlier else None
        if reading.answers:
            return together is not None and together.agent == route.agent
        if together is not None and together.agent == route.agent:
            return True  # the new topic wins even with the previous message around it
        if together is not None and together.agent == home:
            return False  # read with the previous message, it stays where it was
        return route.confidence >= route.score_of(home) + self.policy.topic_change_margin

    def _aside(self, route: Ranking, reading: Reading) -> bool:
        """Nothing fits the message: an aside if it is small talk, or if the router is
        sure enough of that and the words do not go on with the conversation ("yes", "it
        still crashes", "and members?"). Not read joined to the previous message: joined
        to a clear first message, an aside scores as high as a follow-up (docs/routing.md)."""
        if reading.new_topic:  # "unrelated: ..." that fits no specialist
            return True
        return not reading.follows_up and route.confidence < self.policy.aside_below

    def _nobody_fits(self, move: ConversationMove) -> _Choice:
        fallback, orchestrator = self.team.fallback, self.team.orchestrator
        policy = self.policy
        asks_llm = policy.when_unsure == UnsurePolicy.ORCHESTRATOR and policy.llm_available
        if move != ConversationMove.PERSON and asks_llm and orchestrator:
            return _Choice(orchestrator.slug, RoutePath.ORCHESTRATOR, move)
        if fallback is not None:
            return _Choice(fallback.slug, RoutePath.FALLBACK, move)
        if orchestrator is not None:
            return _Choice(orchestrator.slug, RoutePath.ORCHESTRATOR, move)
        raise NoAgentAvailable("The team has no enabled orchestrator or fallback agent.")


def _specialist(team: Team, slug: str | None) -> AgentSpec | None:
    spec = team.get(slug)
    return spec if spec and spec.enabled and spec.role == AgentRole.SPECIALIST else None


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
