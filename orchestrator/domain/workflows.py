"""Workflow definitions: parsing, validation, templates, conditions and planning.

Pure logic over plain data (no ORM, no Celery, no SDK). A definition is JSON that
staff edit in the admin:

    {"steps": [
      {"id": "checks", "parallel": [
        {"id": "invoice", "agent": "billing", "instruction": "Check the invoice: {input}"},
        {"id": "account", "agent": "customer_support", "instruction": "Check the account: {input}"}
      ]},
      {"id": "decide", "if": {"step": "invoice", "contains": ["duplicate", "refund"]},
       "then": [{"id": "approve", "agent": "billing", "instruction": "..."}],
       "else": [{"id": "escalate", "agent": "customer_support", "instruction": "..."}]},
      {"id": "reply", "agent": "customer_support",
       "instruction": "Draft the reply from {steps.invoice} and {steps.account}"}
    ]}

A step is an agent step (`agent` + `instruction`), a parallel group (`parallel`: a
list of agent steps that run at the same time) or a condition (`if`, `then`,
`else`). Agent steps take `timeout` (seconds), `retries`, `backoff` (seconds,
doubled per retry), `fallback` ({"agent": slug} or {"message": text}) and `save_as`
(a context key their output is merged into). Instructions may use `{input}`,
`{steps.<id>}` and `{context.<key>}`; a step may only refer to steps before it, so
a definition cannot loop. `plan()` says what to do next from the steps' states.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .enums import StepStatus
from .exceptions import DefinitionError as DefinitionError  # raised by parse()

MAX_STEPS = 50
MAX_TIMEOUT = 600
MAX_RETRIES = 5
MAX_BACKOFF = 60
DEFAULT_TIMEOUT = 60
_ID = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_AGENT_KEYS = {"id", "agent", "instruction", "timeout", "retries", "backoff", "fallback", "save_as"}
_CONDITION_KEYS = {"id", "if", "then", "else"}


@dataclass(frozen=True)
class Fallback:
    agent: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class AgentStep:
    id: str
    agent: str
    instruction: str
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 0
    backoff: float = 1.0
    fallback: Fallback | None = None
    save_as: str | None = None


@dataclass(frozen=True)
class Parallel:
    id: str
    steps: tuple[AgentStep, ...]


@dataclass(frozen=True)
class Condition:
    id: str
    test: Mapping[str, Any]
    then: tuple[Node, ...]
    otherwise: tuple[Node, ...]


Node = AgentStep | Parallel | Condition


@dataclass(frozen=True)
class Definition:
    steps: tuple[Node, ...]

    def agent_steps(self) -> dict[str, AgentStep]:
        return {s.id: s for s in _walk_agents(self.steps)}

    def find(self, step_id: str) -> AgentStep:
        step = self.agent_steps().get(step_id)
        if step is None:
            raise KeyError(step_id)
        return step


def _walk_agents(nodes: Iterable[Node]) -> Iterable[AgentStep]:
    for node in nodes:
        if isinstance(node, AgentStep):
            yield node
        elif isinstance(node, Parallel):
            yield from node.steps
        else:
            yield from _walk_agents(node.then)
            yield from _walk_agents(node.otherwise)


# --- parsing and validation -----------------------------------------------------------


class _Parser:
    def __init__(self, agents: set[str] | None) -> None:
        self.agents = agents  # None: do not check agent slugs
        self.seen: list[str] = []  # ids in document order
        self.count = 0

    def sequence(self, raw: Any, where: str) -> tuple[Node, ...]:
        if not isinstance(raw, list):
            raise DefinitionError(f"{where} must be a list of steps.")
        return tuple(self.node(item, f"{where}, step {i + 1}") for i, item in enumerate(raw))

    def _id(self, raw: Mapping[str, Any], where: str) -> str:
        step_id = raw.get("id")
        if not isinstance(step_id, str) or not _ID.match(step_id):
            raise DefinitionError(
                f"{where}: every step needs an id of lowercase letters, digits and "
                "underscores, starting with a letter."
            )
        if step_id in self.seen:
            raise DefinitionError(f"{where}: the id {step_id!r} is used twice.")
        self.seen.append(step_id)
        self.count += 1
        if self.count > MAX_STEPS:
            raise DefinitionError(f"A workflow may have at most {MAX_STEPS} steps.")
        return step_id

    def node(self, raw: Any, where: str) -> Node:
        if not isinstance(raw, dict):
            raise DefinitionError(f"{where} must be an object.")
        kinds = [k for k in ("agent", "parallel", "if") if k in raw]
        if len(kinds) != 1:
            raise DefinitionError(
                f"{where}: a step has exactly one of 'agent' (an agent step), "
                "'parallel' (a group) or 'if' (a condition)."
            )
        if kinds[0] == "agent":
            return self.agent_step(raw, where)
        if kinds[0] == "parallel":
            unknown = set(raw) - {"id", "parallel"}
            if unknown:
                raise DefinitionError(f"{where}: unknown field {sorted(unknown)[0]!r}.")
            step_id = self._id(raw, where)
            group = raw["parallel"]
            if not isinstance(group, list) or not group:
                raise DefinitionError(f"{where} ({step_id}): a parallel group needs steps.")
            members: list[AgentStep] = []
            start = len(self.seen)
            for i, item in enumerate(group):
                if not isinstance(item, dict) or "agent" not in item:
                    raise DefinitionError(
                        f"{where} ({step_id}), step {i + 1}: a parallel group holds agent steps."
                    )
                # Members run at the same time: none may refer to another.
                members.append(self.agent_step(item, f"{where} ({step_id}), step {i + 1}", start))
            return Parallel(step_id, tuple(members))
        unknown = set(raw) - _CONDITION_KEYS
        if unknown:
            raise DefinitionError(f"{where}: unknown field {sorted(unknown)[0]!r}.")
        step_id = self._id(raw, where)
        test = self.condition(raw["if"], f"{where} ({step_id})")
        then = self.sequence(raw.get("then", []), f"{where} ({step_id}) 'then'")
        otherwise = self.sequence(raw.get("else", []), f"{where} ({step_id}) 'else'")
        if not then and not otherwise:
            raise DefinitionError(f"{where} ({step_id}): a condition needs a 'then' or 'else'.")
        return Condition(step_id, test, then, otherwise)

    def agent_step(
        self, raw: Mapping[str, Any], where: str, visible: int | None = None
    ) -> AgentStep:
        unknown = set(raw) - _AGENT_KEYS
        if unknown:
            raise DefinitionError(f"{where}: unknown field {sorted(unknown)[0]!r}.")
        before = self.seen[: visible if visible is not None else len(self.seen)]
        step_id = self._id(raw, where)
        where = f"{where} ({step_id})"
        agent = raw.get("agent")
        self._agent(agent, where)
        instruction = raw.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise DefinitionError(f"{where}: the instruction is empty.")
        self._template(instruction, where, before, step_id)
        timeout = self._number(raw, "timeout", DEFAULT_TIMEOUT, 1, MAX_TIMEOUT, where)
        retries = int(self._number(raw, "retries", 0, 0, MAX_RETRIES, where, integer=True))
        backoff = self._number(raw, "backoff", 1.0, 0, MAX_BACKOFF, where)
        fallback = None
        if raw.get("fallback") is not None:
            fb = raw["fallback"]
            if not isinstance(fb, dict) or len(fb) != 1 or not ({"agent", "message"} & set(fb)):
                raise DefinitionError(
                    f'{where}: fallback is {{"agent": "<slug>"}} or {{"message": "<text>"}}.'
                )
            if "agent" in fb:
                self._agent(fb["agent"], f"{where} fallback")
                fallback = Fallback(agent=fb["agent"])
            else:
                if not isinstance(fb["message"], str) or not fb["message"].strip():
                    raise DefinitionError(f"{where}: the fallback message is empty.")
                fallback = Fallback(message=fb["message"])
        save_as = raw.get("save_as")
        if save_as is not None and (not isinstance(save_as, str) or not 0 < len(save_as) <= 100):
            raise DefinitionError(f"{where}: save_as is a context key of 1 to 100 characters.")
        return AgentStep(
            step_id, agent, instruction, timeout, retries, backoff, fallback, save_as or None
        )

    def _agent(self, agent: Any, where: str) -> None:
        if not isinstance(agent, str) or not agent:
            raise DefinitionError(f"{where}: name the agent by its slug.")
        if self.agents is not None and agent not in self.agents:
            raise DefinitionError(f"{where}: there is no enabled agent {agent!r}.")

    def _template(self, text: str, where: str, before: list[str], own: str) -> None:
        for name in _PLACEHOLDER.findall(text):
            if name == "input" or (name.startswith("context.") and len(name) > 8):
                continue
            if name.startswith("steps."):
                ref = name[6:]
                if ref in before:
                    continue
                if ref == own or ref in self.seen:
                    raise DefinitionError(
                        f"{where}: {{{name}}} refers to a step that has not run yet at this point "
                        "(that would be a cycle)."
                    )
                # Steps later in the document are registered as they are parsed.
                raise DefinitionError(
                    f"{where}: {{{name}}} refers to a step that is not before this one "
                    "(a step may only use the output of earlier steps)."
                )
            raise DefinitionError(
                f"{where}: unknown placeholder {{{name}}}; use {{input}}, {{steps.<id>}} "
                "or {context.<key>}."
            )

    def condition(self, raw: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(raw, dict):
            raise DefinitionError(f"{where}: 'if' must be an object.")
        unknown = set(raw) - {"step", "context", "contains", "equals", "exists", "not"}
        if unknown:
            raise DefinitionError(f"{where}: unknown condition field {sorted(unknown)[0]!r}.")
        sources = [k for k in ("step", "context") if k in raw]
        tests = [k for k in ("contains", "equals", "exists") if k in raw]
        if len(sources) != 1 or len(tests) != 1:
            raise DefinitionError(
                f"{where}: a condition looks at one 'step' or 'context' key and tests it with "
                "one of 'contains', 'equals' or 'exists'."
            )
        if not isinstance(raw.get(sources[0]), str):
            raise DefinitionError(f"{where}: '{sources[0]}' names a step id or a context key.")
        if "step" in raw and raw["step"] not in self.seen:
            raise DefinitionError(
                f"{where}: the condition looks at step {raw['step']!r}, which is not before it."
            )
        if "contains" in raw:
            words = raw["contains"]
            words = [words] if isinstance(words, str) else words
            if (
                not isinstance(words, list)
                or not words
                or not all(isinstance(w, str) and w.strip() for w in words)
            ):
                raise DefinitionError(f"{where}: 'contains' is a word or a list of words.")
        return dict(raw)

    @staticmethod
    def _number(raw, key, default, low, high, where, *, integer=False) -> float:
        value = raw.get(key, default)
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or not low <= value <= high:
            kind = "a whole number" if integer else "a number"
            raise DefinitionError(f"{where}: {key} must be {kind} from {low} to {high}.")
        return float(value)


def parse(data: Any, *, agents: Iterable[str] | None = None) -> Definition:
    """A validated definition; DefinitionError says what is wrong. `agents`: known slugs."""
    if not isinstance(data, dict):
        raise DefinitionError('A workflow definition is an object with a "steps" list.')
    unknown = set(data) - {"steps"}
    if unknown:
        raise DefinitionError(f"Unknown field {sorted(unknown)[0]!r}: only 'steps' is expected.")
    parser = _Parser(set(agents) if agents is not None else None)
    steps = parser.sequence(data.get("steps"), "steps")
    if not steps:
        raise DefinitionError("A workflow needs at least one step.")
    return Definition(steps)


# --- templates and conditions ---------------------------------------------------------


def render(template: str, *, input: str, outputs: Mapping[str, str], context: Mapping) -> str:
    """Fill the placeholders (values are inserted as text, never re-expanded)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "input":
            return input
        if name.startswith("steps."):
            return outputs.get(name[6:], "(this step did not run)")
        if name.startswith("context."):
            found = context.get(name[8:])
            return "(not set)" if found is None else _text(found)
        return match.group(0)

    return _PLACEHOLDER.sub(value, template)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


def holds(test: Mapping[str, Any], *, outputs: Mapping[str, str], context: Mapping) -> bool:
    if "step" in test:
        present, subject = test["step"] in outputs, outputs.get(test["step"], "")
    else:
        present, subject = test["context"] in context, context.get(test["context"])
    if "exists" in test:
        result = present == bool(test["exists"])
    elif "equals" in test:
        result = present and subject == test["equals"]
    else:
        words = test["contains"]
        words = [words] if isinstance(words, str) else words
        haystack = _text(subject).lower() if present else ""
        result = any(w.lower() in haystack for w in words)
    return not result if test.get("not") else result


# --- planning -------------------------------------------------------------------------

DONE = frozenset({StepStatus.OK, StepStatus.FALLBACK})  # an agent step that produced an output
FINAL = DONE | {StepStatus.FAILED}


@dataclass(frozen=True)
class StepState:
    status: str  # queued, running, retrying, ok, fallback, failed
    output: str = ""


@dataclass(frozen=True)
class Plan:
    action: Literal["dispatch", "wait", "finish", "fail"]
    steps: tuple[AgentStep, ...] = ()
    decisions: tuple[tuple[str, str], ...] = ()  # (condition id, "then" | "else"), new ones
    output: str = ""
    reason: str = ""
    total: int = 0  # agent steps on the path (undecided conditions: their longer branch)
    done: int = 0


@dataclass
class _Walk:
    states: Mapping[str, StepState]
    decided: Mapping[str, str]
    input: str
    context: Mapping[str, Any]
    new_decisions: list[tuple[str, str]] = field(default_factory=list)
    last_output: str = ""

    @property
    def outputs(self) -> dict[str, str]:
        return {k: s.output for k, s in self.states.items() if s.status in DONE}


def _size(nodes: Iterable[Node]) -> int:
    total = 0
    for node in nodes:
        if isinstance(node, AgentStep):
            total += 1
        elif isinstance(node, Parallel):
            total += len(node.steps)
        else:
            total += max(_size(node.then), _size(node.otherwise))
    return total


def plan(
    definition: Definition,
    *,
    states: Mapping[str, StepState],
    decided: Mapping[str, str],
    input: str,
    context: Mapping[str, Any],
) -> Plan:
    """What to do next: dispatch steps, wait for running ones, finish or fail."""
    walk = _Walk(states, decided, input, context)
    result = _plan_sequence(definition.steps, walk)
    total = _path_size(definition.steps, walk)
    done = sum(1 for s in states.values() if s.status in FINAL)
    if result is None:
        return Plan(
            "finish",
            decisions=tuple(walk.new_decisions),
            output=walk.last_output,
            total=total,
            done=done,
        )
    return Plan(
        result.action,
        result.steps,
        tuple(walk.new_decisions),
        result.output,
        result.reason,
        total,
        done,
    )


def _path_size(nodes: Iterable[Node], walk: _Walk) -> int:
    total = 0
    for node in nodes:
        if isinstance(node, Condition):
            branch = walk.decided.get(node.id) or dict(walk.new_decisions).get(node.id)
            if branch is None:
                total += max(_size(node.then), _size(node.otherwise))
            else:
                total += _path_size(node.then if branch == "then" else node.otherwise, walk)
        else:
            total += _size([node])
    return total


def _plan_sequence(nodes: Iterable[Node], walk: _Walk) -> Plan | None:
    for node in nodes:
        if isinstance(node, Condition):
            branch = walk.decided.get(node.id)
            if branch is None:
                ok = holds(node.test, outputs=walk.outputs, context=walk.context)
                branch = "then" if ok else "else"
                walk.new_decisions.append((node.id, branch))
            result = _plan_sequence(node.then if branch == "then" else node.otherwise, walk)
            if result is not None:
                return result
            continue
        members = node.steps if isinstance(node, Parallel) else (node,)
        pending = [s for s in members if s.id not in walk.states]
        failed = [s for s in members if walk.states.get(s.id, StepState("")).status == "failed"]
        running = [s for s in members if s.id in walk.states and s.id not in pending]
        running = [s for s in running if walk.states[s.id].status not in FINAL]
        if failed:
            return Plan("fail", reason=f"Step {failed[0].id!r} failed.")
        if pending or running:
            return Plan("dispatch", tuple(pending)) if pending else Plan("wait")
        walk.last_output = walk.states[members[-1].id].output
        if isinstance(node, Parallel):
            walk.last_output = "\n\n".join(walk.states[s.id].output for s in members)
    return None
