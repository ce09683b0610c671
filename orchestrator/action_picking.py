"""The offline model's actions: pick one, fill its arguments, ask for what is missing,
and answer from what the system returned.

Pure functions over plain values (ActionSpec, the conversation's text, the tool's
output), as orchestrator/answers.py is for articles; the local model
(orchestrator/sdk/providers/local.py) uses them. docs/actions.md says how to write
actions the offline model can use.

- Picking, the way an article is picked, on words: each example is compared with the
  message after the values the schema's `pattern`s recognise are replaced by a slot
  word per argument ("invoice ACME-2024-000123" reads "invoice <number>"), so an example
  with a value fits a message with one (or with one earlier in the conversation), and an
  example without ("what's the status of my invoice?") fits the general question. An
  action named in the text (a workflow step's "with lookup_invoice") is picked first.
- Filling: each argument from the message's words (a `pattern`, an `enum`, a number),
  each word used once; a required free-text argument gets the message itself.
- Looking up first: a required argument the message lacks but a read can tell (another
  action, a GET needing no approval, whose arguments the message holds and whose answer
  has a field of that name: "refund invoice X" needs the amount, which looking up
  invoice X tells) is filled from that read's answer, then the call is made.
- Asking: a required argument not in the message (nor in a read) is asked for ("Which invoice?"), with
  the value seen earlier in the conversation as a suggestion ("It looks like
  ACME-2024-000123."); the answer ("yes", or the value) completes the same call. What was
  asked is never stored: the question is worked out again from the conversation, and
  recognised because it is exactly what would be asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .answers import Turn
from .domain.actions import (
    APPROVAL_DECLINED,
    APPROVAL_EXPIRED,
    ActionSpec,
    data_of_block,
    label,
)
from .domain.enums import ApprovalPolicy
from .text import tokenize

FITS = 0.75  # share of an example's words the message must have
MIN_WORDS = 2  # and at least this many of them
MAX_DEPTH = 3  # questions in a row that one call may need
_SLOT = "zzslot"  # a slot word: no real word starts so
_CONTRACTIONS = frozenset({"d", "s", "ll", "m", "re", "ve", "t"})
_EDGES = ".,;:!?()[]{}\"'“”‘’«»<>*_`"
_CURRENCY = "€$£¥"
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_YES = re.compile(
    r"^\s*(yes|yeah|yep|yup|correct|right|exactly|sure|ok(ay)?|please do|go ahead|"
    r"that'?s (it|right|correct|the one)|that one)\b",
    re.IGNORECASE,
)


# A call that was not approved: what the user is told (nothing was done).
# The words are in the conversation's language (chat.turns.runner activates it).
NOT_APPROVED = {
    APPROVAL_DECLINED["user"]: gettext_lazy(
        "All right: I haven't done it, and nothing was changed."
    ),
    APPROVAL_DECLINED["staff"]: gettext_lazy(
        "Our support team declined this request, so nothing was done."
    ),
    APPROVAL_EXPIRED: gettext_lazy(
        "Nobody approved this request in time, so nothing was done. Ask again if you still want it."
    ),
}
ANYTHING_ELSE = gettext_lazy("Is there anything else I can help you with?")
NOT_ASKED = gettext_lazy("The system could not be asked just now.")


@dataclass(frozen=True)
class Pick:
    action: ActionSpec
    arguments: dict[str, Any]
    missing: tuple[str, ...] = ()  # required arguments not given
    suggestions: dict[str, str] = field(default_factory=dict)  # seen earlier, not confirmed


# --- words and values -------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """The message's words with punctuation (and a leading currency sign) taken off."""
    return [w.strip(_EDGES).lstrip(_CURRENCY).strip(_EDGES) for w in text.split()]


def _value(prop: Mapping[str, Any], word: str) -> Any:
    """The argument value this word is, for this argument's schema (None: it is not)."""
    if not word:
        return None
    if isinstance(prop.get("enum"), list):
        return next((v for v in prop["enum"] if str(v).lower() == word.lower()), None)
    pattern = prop.get("pattern")
    if isinstance(pattern, str):
        for candidate in dict.fromkeys((word, word.upper())):
            try:
                if re.fullmatch(pattern, candidate):
                    return candidate
            except re.error:
                return None
        return None
    kind = prop.get("type")
    if kind in ("integer", "number") and _NUMBER.match(word):
        return int(float(word)) if kind == "integer" else float(word)
    return None


def _recognised(prop: Mapping[str, Any]) -> bool:
    return (
        isinstance(prop.get("enum"), list)
        or "pattern" in prop
        or prop.get("type")
        in (
            "integer",
            "number",
        )
    )


def find_values(spec: ActionSpec, text: str) -> dict[str, Any]:
    """The arguments the text holds, each word used for one argument at most."""
    words, used, found = _words(text), set(), {}
    for name, prop in spec.properties.items():
        if not _recognised(prop):
            continue
        for i, word in enumerate(words):
            value = _value(prop, word) if i not in used else None
            if value is not None:
                found[name] = value
                used.add(i)
                break
    return found


def _slotted(spec: ActionSpec, text: str, also: set[str] = frozenset()) -> set[str]:
    """The text's words for comparing, its values replaced by slot words (and the slots
    of `also`, arguments seen elsewhere in the conversation)."""
    words = _words(text)
    slots = set(also)
    kept = []
    for word in words:
        name = next(
            (
                n
                for n, p in spec.properties.items()
                if _recognised(p) and _value(p, word) is not None
            ),
            None,
        )
        if name is None:
            kept.append(word)
        else:
            slots.add(name)
    tokens = {t for t in tokenize(" ".join(kept)) if t not in _CONTRACTIONS}
    return tokens | {_slot(n) for n in slots}


def _slot(name: str) -> str:
    return _SLOT + re.sub(r"[^a-z0-9]", "", name.lower())


# --- picking ----------------------------------------------------------------------------


def fit(spec: ActionSpec, text: str, earlier: set[str] = frozenset()) -> float:
    """How well the text fits the action: 2 when it names it, else the best share of an
    example's words the text has (0 below MIN_WORDS of them)."""
    if re.search(rf"(?<![a-z0-9_]){re.escape(spec.name)}(?![a-z0-9_])", text):
        return 2.0
    query = _slotted(spec, text, earlier)
    best = 0.0
    for example in spec.examples:
        words = _slotted(spec, example)
        slots = {w for w in words if w.startswith(_SLOT)}
        shared = len(words & query)
        # An example with a value fits a message with one (now or earlier) only.
        if words and shared >= MIN_WORDS and slots <= query:
            best = max(best, shared / len(words))
    return best


def _earlier_values(spec: ActionSpec, history: Sequence[Turn]) -> dict[str, str]:
    """Values of the action's arguments seen in the conversation, the newest first."""
    found: dict[str, str] = {}
    for turn in reversed(history):
        for name, value in find_values(spec, turn.text).items():
            found.setdefault(name, value)
    return found


def pick(actions: Sequence[ActionSpec], *, text: str, history: Sequence[Turn]) -> Pick | None:
    """The call to make (or to ask about) for this message, or None when no action fits."""
    return answer_to_question(actions, text=text, history=history) or _fresh(
        actions, text=text, history=history
    )


def answer_to_question(
    actions: Sequence[ActionSpec], *, text: str, history: Sequence[Turn]
) -> Pick | None:
    """The call this message completes, when the last reply asked for part of it."""
    return _answer_to_question(actions, text=text, history=history, depth=0)


def _fresh(actions: Sequence[ActionSpec], *, text: str, history: Sequence[Turn]) -> Pick | None:
    if not text.strip():
        return None
    scored = []
    for spec in actions:
        earlier = _earlier_values(spec, history)
        score = fit(spec, text, set(earlier))
        if score >= FITS:
            scored.append((score, spec, earlier))
    if not scored:
        return None
    score, spec, earlier = max(scored, key=lambda s: s[0])
    return fill(spec, text, earlier)


def fill(spec: ActionSpec, text: str, earlier: Mapping[str, Any] | None = None) -> Pick:
    arguments = find_values(spec, text)
    for name in spec.required:
        prop = spec.properties.get(name, {})
        if (
            name not in arguments
            and prop.get("type", "string") == "string"
            and not _recognised(prop)
        ):
            limit = prop.get("maxLength") if isinstance(prop.get("maxLength"), int) else 500
            arguments[name] = text.strip()[:limit]
    missing = tuple(n for n in spec.required if n not in arguments)
    suggestions = {n: str(earlier[n]) for n in missing if earlier and n in earlier}
    return Pick(spec, arguments, missing, suggestions)


def _answer_to_question(
    actions: Sequence[ActionSpec], *, text: str, history: Sequence[Turn], depth: int
) -> Pick | None:
    """When the last reply was this model's question about a call, the call with the
    answer filled in (None when it was not, or the answer does not answer it)."""
    if depth >= MAX_DEPTH or not history or history[-1].role != "assistant":
        return None
    asked_at = next((i for i in range(len(history) - 2, -1, -1) if history[i].role == "user"), None)
    if asked_at is None:
        return None
    before, request = history[:asked_at], history[asked_at].text
    earlier = _answer_to_question(actions, text=request, history=before, depth=depth + 1)
    pending = earlier or _fresh(actions, text=request, history=before)
    if pending is None or not pending.missing or ask(pending) != history[-1].text.strip():
        return None
    given = find_values(pending.action, text)
    arguments = dict(pending.arguments)
    for name in pending.missing:
        if name in given:
            arguments[name] = given[name]
    first = pending.missing[0]
    if first not in given and first in pending.suggestions and _YES.match(text):
        arguments[first] = pending.suggestions[first]
    if arguments == pending.arguments:
        return None  # not an answer: a new message of its own
    missing = tuple(n for n in pending.missing if n not in arguments)
    rest = {n: v for n, v in pending.suggestions.items() if n in missing}
    return Pick(pending.action, arguments, missing, rest)


# --- looking up first -------------------------------------------------------------------


def lookup_for(actions: Sequence[ActionSpec], chosen: Pick, *, text: str) -> Pick | None:
    """A read whose answer has what the chosen call still needs (None if none does)."""
    if not chosen.missing:
        return None
    for spec in actions:
        if (
            spec.name == chosen.action.name
            or spec.method != "GET"
            or spec.approval != ApprovalPolicy.NONE
        ):
            continue
        if not set(chosen.missing) <= set(spec.response_fields):
            continue
        values = find_values(spec, text)
        if spec.required and all(n in values for n in spec.required):
            return Pick(spec, values)
    return None


def completed_by(chosen: Pick, output: Any) -> Pick | None:
    """The chosen call with what it lacked taken from a read's answer (None when the
    answer does not have all of it, or has values the arguments' patterns refuse)."""
    data = data_of_block(output) if isinstance(output, str) else None
    if not isinstance(data, Mapping) or not chosen.missing:
        return None
    arguments = dict(chosen.arguments)
    for name in chosen.missing:
        value = data.get(name)
        if value is None or isinstance(value, Mapping | list):
            return None
        value = _value(chosen.action.properties.get(name, {}), str(value))
        if value is None:
            return None
        arguments[name] = value
    return Pick(chosen.action, arguments)


# --- the words --------------------------------------------------------------------------


def ask(chosen: Pick) -> str:
    """The question for the first missing argument, with what was seen earlier."""
    name = chosen.missing[0]
    prop = chosen.action.properties.get(name, {})
    question = str(
        prop.get("x-question") or _("Which %(thing)s?") % {"thing": label(chosen.action, name)}
    )
    if name in chosen.suggestions:
        return _("%(question)s It looks like %(value)s.") % {
            "question": question,
            "value": chosen.suggestions[name],
        }
    hint = prop.get("description")
    if not hint:
        return question
    return _("%(question)s Please tell me %(hint)s.") % {"question": question, "hint": hint}


def _subject(spec: ActionSpec, arguments: Mapping[str, Any]) -> str:
    name = next((n for n in spec.required if "pattern" in spec.properties.get(n, {})), None)
    if name is None or name not in arguments:
        return ""
    return _(" for %(thing)s %(value)s") % {"thing": label(spec, name), "value": arguments[name]}


def _line(key: str, value: Any) -> str:
    words = key.replace("_", " ").strip().capitalize()
    if isinstance(value, Mapping):
        value = ", ".join(f"{k}: {v}" for k, v in value.items())
    return f"- {words}: {value}"


def _item(value: Any) -> str:
    if isinstance(value, Mapping):
        return "- " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in value.items())
    return f"- {value}"


def reply(spec: ActionSpec, arguments: Mapping[str, Any], output: Any) -> str:
    """The answer from the action's output: what the system returned, or why not."""
    text = output if isinstance(output, str) else ""
    data = data_of_block(text)
    if data is None:
        error = _error_of(text)
        if error in NOT_APPROVED:  # nothing was done, and that is the answer
            return f"{NOT_APPROVED[error]} {ANYTHING_ELSE}"
        return _("I'm sorry, I couldn't do that. %(error)s") % {"error": error}
    subject = _subject(spec, arguments)
    opening = (
        _("Here's what I found%(subject)s:") % {"subject": subject}
        if spec.method == "GET"
        else _("Done. Here's what the system recorded%(subject)s:") % {"subject": subject}
    )
    if isinstance(data, Mapping) and data:
        lines = [_line(k, v) for k, v in data.items()]
    elif isinstance(data, list) and data:
        lines = [_item(v) for v in data[:10]] + (
            [_("- and %(count)s more") % {"count": len(data) - 10}] if len(data) > 10 else []
        )
    elif isinstance(data, list):
        lines = [_("- nothing")]
    else:
        lines = [_("- the system confirmed it, with no details to show")]
    return "\n\n".join([opening, "\n".join(lines), str(ANYTHING_ELSE)])


def _error_of(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return str(NOT_ASKED)
    error = data.get("error") if isinstance(data, dict) else None
    return str(error) if error else str(NOT_ASKED)
