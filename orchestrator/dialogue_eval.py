"""Measure routing on whole conversations, through the policy the live chat uses.

Each line of a dialogues file is a conversation, `{"turns": [["text", "agent slug"], ...]}`
(a third item names the turn's kind: first, follow_up, topic_change, aside, return,
person; without it the kind is worked out from the expected agents). A line
`{"text": ..., "expected": ...}` is a conversation of one message. Every turn is routed
by routing_policy.decide with the conversation as the live chat builds it from its
history (the agent routing chose answers, so a wrong turn carries on as it would live),
and scored against the expected agent.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from .domain.conversation import conversation_from_history
from .domain.enums import AgentRole, ConversationMove
from .domain.routing_policy import Policy, RankingSource, RoutingDecision, decide
from .domain.team import AgentSpec, Team
from .routing_eval import EvalInputError

KINDS = tuple(ConversationMove)


@dataclass(frozen=True)
class Turn:
    text: str
    expected: str
    kind: ConversationMove | None = None  # None: worked out from the expected agents


@dataclass(frozen=True)
class Dialogue:
    line: int
    turns: tuple[Turn, ...]


def seed_team(path: Path) -> Team:
    """The team a seed file (orchestrator/seed/team.json) creates, without a database:
    the same texts team_seed stores and selectors.team_snapshot reads back."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        agents = {a["slug"]: _seed_agent(a) for a in data["agents"]}
    except OSError as exc:
        raise EvalInputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise EvalInputError(f"{path} is not a team seed file ({exc}).") from None
    return Team(agents=agents)


def _seed_agent(spec: dict[str, Any]) -> AgentSpec:
    articles = spec.get("articles", [])
    return AgentSpec(
        slug=spec["slug"],
        name=spec["name"],
        role=spec["role"],
        instructions=spec.get("instructions", ""),
        handoff_description=spec.get("handoff_description", ""),
        provider="local",
        model_name="",
        enabled=True,
        examples=tuple(spec.get("routing_examples", [])),
        topics=tuple(
            f"{a['title']} {', '.join(a.get('tags', [])).replace(',', ' ')}" for a in articles
        ),
    )


def read_dialogues(path: Path, team: Team) -> list[Dialogue]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalInputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    dialogues = [
        _parse_line(f"{path}, line {number}", line, team, number)
        for number, line in enumerate(lines, 1)
        if line.strip()
    ]
    if not dialogues:
        raise EvalInputError(f"{path} has no dialogues.")
    return dialogues


def _parse_line(where: str, line: str, team: Team, number: int) -> Dialogue:
    try:
        row = json.loads(line)
    except ValueError:
        raise EvalInputError(f"{where}: not valid JSON.") from None
    if isinstance(row, dict) and isinstance(row.get("text"), str) and "turns" not in row:
        row = {
            "turns": [[row["text"], row.get("expected"), *([row["kind"]] if "kind" in row else [])]]
        }
    turns = row.get("turns") if isinstance(row, dict) else None
    if not isinstance(turns, list) or not turns:
        raise EvalInputError(
            f'{where}: expected {{"turns": [["text", "agent"], ...]}} with at least one turn.'
        )
    return Dialogue(number, tuple(_parse_turn(where, i, t, team) for i, t in enumerate(turns, 1)))


def _parse_turn(where: str, index: int, item: Any, team: Team) -> Turn:
    shape = isinstance(item, list) and len(item) in (2, 3) and all(isinstance(x, str) for x in item)
    if not shape or not item[0].strip():
        raise EvalInputError(
            f'{where}, turn {index}: expected ["text", "agent"] or ["text", "agent", "kind"].'
        )
    if item[1] not in team.agents:
        known = ", ".join(sorted(team.agents))
        raise EvalInputError(f"{where}, turn {index}: unknown agent {item[1]!r} (known: {known}).")
    kind = None
    if len(item) == 3:
        if item[2] not in KINDS:
            raise EvalInputError(
                f"{where}, turn {index}: unknown kind {item[2]!r} (kinds: {', '.join(KINDS)})."
            )
        kind = ConversationMove(item[2])
    return Turn(item[0], item[1], kind)


@dataclass
class Scores:
    """Turn accuracy overall and by kind, and how well requests for a person are seen."""

    fallback: str | None = None  # the team's fallback agent
    by_kind: Counter = field(default_factory=Counter)
    right_by_kind: Counter = field(default_factory=Counter)
    person_flagged: int = 0  # person requests the decision marked as such
    person_false: int = 0  # other turns marked as asking for a person
    fallback_expected: int = 0  # turns the fallback agent should answer (asides, off-topic)
    fallback_right: int = 0
    mistakes: list[dict[str, Any]] = field(default_factory=list)
    timings: list[float] = field(default_factory=list)  # ms per routing decision

    def add(self, turn: Turn, kind: ConversationMove, decision: RoutingDecision, line: int):
        right = decision.agent == turn.expected
        self.by_kind[kind] += 1
        self.right_by_kind[kind] += right
        if turn.expected == self.fallback:
            self.fallback_expected += 1
            self.fallback_right += right
        if kind == ConversationMove.PERSON:
            self.person_flagged += decision.wants_person
        else:
            self.person_false += decision.wants_person
        if not right:
            self.mistakes.append(
                {
                    "line": line,
                    "kind": kind,
                    "text": turn.text,
                    "expected": turn.expected,
                    "got": decision.agent,
                    "path": decision.path,
                    "move": decision.move,
                    "confidence": round(decision.confidence, 3),
                }  # fmt: skip
            )

    def as_dict(self, dialogues: int) -> dict[str, Any]:
        turns, right = sum(self.by_kind.values()), sum(self.right_by_kind.values())
        kinds = {
            k.value: {"turns": n, "right": self.right_by_kind[k], "accuracy": _ratio(self.right_by_kind[k], n)}
            for k in KINDS
            if (n := self.by_kind[k])
        }  # fmt: skip
        return {
            "dialogues": dialogues,
            "turns": turns,
            "right": right,
            "accuracy": _ratio(right, turns),
            "by_kind": kinds,
            "fallback_expected": self.fallback_expected,
            "fallback_right": self.fallback_right,
            "person_flagged": self.person_flagged,
            "person_false_flags": self.person_false,
            "ms_per_turn": round(statistics.median(self.timings), 2) if self.timings else None,
            "mistakes": self.mistakes,
        }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def evaluate(
    dialogues: Iterable[Dialogue], *, team: Team, router: RankingSource, policy: Policy
) -> dict[str, Any]:
    scores, count = Scores(fallback=team.fallback.slug if team.fallback else None), 0
    with threadpool_limits(limits=1):  # as a live process routes: one BLAS thread
        for dialogue in dialogues:
            count += 1
            _run_dialogue(dialogue, team, router, policy, scores)
    return scores.as_dict(count)


def _run_dialogue(
    dialogue: Dialogue, team: Team, router: RankingSource, policy: Policy, scores: Scores
) -> None:
    """The conversation as the live chat has it: the routed agent answers each turn and
    becomes the active agent; its reply is in the history routing reads next."""
    specialists = [a.slug for a in team.agents.values() if a.role == AgentRole.SPECIALIST]
    history: list[dict[str, str]] = []
    active: str | None = None
    expected: list[str] = []
    for turn in dialogue.turns:
        history.append({"role": "user", "content": turn.text})
        conversation = conversation_from_history(history, active=active, specialists=specialists)
        started = time.perf_counter()
        decision = decide(
            team=team, router=router, text=turn.text, policy=policy, conversation=conversation
        )
        scores.timings.append((time.perf_counter() - started) * 1000)
        kind = turn.kind or infer_kind(expected, turn.expected, team)
        scores.add(turn, kind, decision, dialogue.line)
        expected.append(turn.expected)
        history.append({"role": "assistant", "content": "", "agent": decision.agent})
        active = decision.agent


def infer_kind(before: list[str], expected: str, team: Team) -> ConversationMove:
    """A turn's kind from the expected agents of the turns before it."""
    if not before:
        return ConversationMove.FIRST
    if expected == before[-1]:
        return ConversationMove.FOLLOW_UP
    fallback = team.fallback.slug if team.fallback else None
    if expected == fallback:
        return ConversationMove.ASIDE
    specialists = [e for e in before if e != fallback]
    if before[-1] == fallback and specialists and specialists[-1] == expected:
        return ConversationMove.RETURN
    return ConversationMove.TOPIC_CHANGE


def team_and_router(*, seed: Path | None) -> tuple[Team, RankingSource, Policy]:
    """The team to measure, its router and policy: a seed file's team, trained here with
    the live chat's corpus and default settings; or (seed None) the current registry with
    its trained router and the routing settings staff chose."""
    from . import selectors
    from .router import Router

    if seed is None:
        team = selectors.team_snapshot()
        return team, selectors.router_for(team, wait=True), selectors.routing_policy(team=team)
    team = seed_team(seed)
    documents, fallback, _ = selectors.router_corpus(team)
    return team, Router(documents, fallback_examples=fallback), Policy(threshold=Router.threshold)


def report(result: dict[str, Any], *, mistakes: bool = False) -> str:
    """The result in plain lines, as the management command prints it."""
    lines = [
        f"{result['dialogues']} dialogues, {result['turns']} turns: "
        f"{result['right']} right ({result['accuracy']}).",
        "  by kind:",
    ]
    for kind, row in result["by_kind"].items():
        lines.append(f"    {kind:<13} {row['right']:>4} / {row['turns']:<4} {row['accuracy']}")
    lines.append(
        f"  to the fallback agent as expected: {result['fallback_right']} of {result['fallback_expected']}"
    )
    person = result["by_kind"].get(ConversationMove.PERSON.value, {}).get("turns", 0)
    lines.append(
        f"  requests for a person marked as such: {result['person_flagged']} of {person}; "
        f"other turns marked: {result['person_false_flags']}"
    )
    lines.append(f"  ms per turn         {result['ms_per_turn']} (median, routing only)")
    if mistakes:
        lines.append("  mistakes:")
        lines += [
            f"    line {m['line']} [{m['kind']}] {m['text']!r}: expected {m['expected']}, "
            f"got {m['got']} ({m['path']}, {m['move']}, {m['confidence']})"
            for m in result["mistakes"]
        ]
    return "\n".join(lines)
