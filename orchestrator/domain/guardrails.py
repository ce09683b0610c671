"""Guardrails' pure parts: reading obfuscated text back, and screening replies as they stream.

`views(text)` returns the message as the classifier should read it (invisible characters
dropped, look-alike and styled letters folded to plain ones, spelled-out letters joined)
followed by what hides inside it, when something does: leetspeak read back, base64
decoded, rot13 and reversed text turned round (only when the result reads more like
English than the original, so ordinary messages get no extra views). The classifier
scores every view and keeps the highest score.

`ReplyScreen` holds back the tail of a streamed reply so that no part of a secret, the
agents' instructions or another person's e-mail address reaches the user: each delta is
checked with the text before it, and only text that can no longer become a leak is
released.

No Django, no SDK: orchestrator.guardrails trains and runs the classifier on top of this.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from .enums import GuardrailName
from .words import _


class GuardrailKind(StrEnum):
    """What kind of attack or leak it was (the labels of orchestrator/seed/guardrails)."""

    JAILBREAK = "jailbreak"
    PROMPT_INJECTION = "prompt_injection"
    INSTRUCTION_LEAK = "instruction_leak"
    SECRETS = "secrets"
    OTHER_USERS_DATA = "other_users_data"


@dataclass(frozen=True)
class Verdict:
    """A guardrail's answer on one message: `blocked` above its threshold."""

    blocked: bool
    guardrail: GuardrailName
    kind: str = ""
    score: float = 0.0
    ms: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "guardrail": str(self.guardrail),
            "kind": self.kind,
            "score": round(self.score, 4),
            "ms": round(self.ms, 2),
            "detail": self.detail,
        }


# What the user is told, in plain words, when a guardrail stops a turn.
BLOCKED_REPLY = _(
    "Sorry, I can't help with that request. I can answer questions about your account, "
    "orders, billing and our products: please ask me in your own words."
)
WITHHELD_REPLY = _(
    "Sorry, I can't share that: part of my answer contained information I must keep "
    "private. Please ask me again in other words, or ask for a person."
)

# --- Reading obfuscated text back -----------------------------------------------------

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff]"
)


def _letter_range(start: int, upper: bool = True) -> dict[int, str]:
    base = ord("A") if upper else ord("a")
    return {start + i: chr(base + i) for i in range(26)}


# Styled letters NFKC leaves alone: negative circled and squared, regional indicators.
_STYLED = {**_letter_range(0x1F150), **_letter_range(0x1F170), **_letter_range(0x1F1E6)}
# Small capitals and other letter-like signs with no compatibility decomposition.
_SMALL_CAPS = {
    ord(small): plain
    for small, plain in zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘǫʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnopqrstuvwyz", strict=True)
}
# Letters of other scripts that look like Latin ones: folded only inside a word that
# also has Latin letters (a Russian or Greek message stays as it is).
_CONFUSABLE = dict(
    zip(
        map(ord, "аеорсухіјѕԁɡһӏԛԝАВЕКМНОРСТХІЈЅαεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧ"),
        "aeopcyxijsdghlqwABEKMHOPCTXIJSaeikvoptuxABEHIKMNOPTYX",
        strict=True,
    )
)
_LEET = str.maketrans("013457@$!|", "oieastasil")
_LEET_TOKEN = re.compile(r"[\w@$!|]*[a-z][\w@$!|]*", re.IGNORECASE)
_HAS_LEET = re.compile(r"[013457@$]")
# Spelled-out letters: "i g n o r e", "i.g.n.o.r.e", "i-g-n-o-r-e" (at least 3 letters).
_SPELLED = re.compile(r"(?<![\w])(?:\w([ .\-_*/|])){2,}\w(?![\w])")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_WORD = re.compile(r"[a-z']+")

# Common English words (and the words attacks are made of): how English a text reads.
_ENGLISH_WORDS = """
    a about above access act admin after again all also am an and answer any api are as ask
    at back be been before being below but by can code config customer customers data decode
    delete developer did do does don dump email emails enable every file filters follow for
    forget free freely from give have he her here hidden him his how i if ignore in
    information instructions internal is it its just key keys know last let list make me
    message messages mode my new no not now of on only or other our out output override
    password passwords people personal phone please policy previous print prompt read real
    respond restrictions reveal rules say secret secrets see send show so some system tell
    text than that the their them then there these they this to token tokens user users
    verbatim was we what when which who will with without you your
"""
_ENGLISH = frozenset(_ENGLISH_WORDS.split())


def _english(text: str) -> float:
    words = _WORD.findall(text.lower())
    return sum(w in _ENGLISH for w in words) / len(words) if words else 0.0


def _fold_word(match: re.Match[str]) -> str:
    word = match.group(0)
    if any("a" <= c.lower() <= "z" for c in word) and any(ord(c) in _CONFUSABLE for c in word):
        return word.translate(_CONFUSABLE)
    return word


def _join_spelled(match: re.Match[str]) -> str:
    return match.group(0).replace(match.group(1), "")


def canonical(text: str) -> str:
    """The text with its disguise taken off, and otherwise unchanged: invisible characters
    dropped, styled and full-width letters made plain (NFKC), look-alike letters folded
    inside Latin words, spelled-out letters joined, underscores read as spaces."""
    text = _INVISIBLE.sub("", text)
    text = unicodedata.normalize("NFKC", text).translate(_STYLED).translate(_SMALL_CAPS)
    text = re.sub(r"\w+", _fold_word, text)
    # "I g n o r e   a l l": words of spelled letters are parted by wider gaps.
    text = re.sub(r"(?<!\S)(?:\w ){2,}\w(?!\S)", lambda m: m.group(0).replace(" ", ""), text)
    text = _SPELLED.sub(_join_spelled, text)
    return text.replace("_", " ")


def _unleet(text: str) -> str:
    """Leetspeak read back, when at least two words use it ("1gn0r3 4ll", not "401k")."""
    tokens = [t for t in _LEET_TOKEN.findall(text) if _HAS_LEET.search(t)]
    if len(tokens) < 2:
        return text

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        return token.translate(_LEET) if _HAS_LEET.search(token) else token

    return _LEET_TOKEN.sub(one, text)


_SEGMENT = re.compile(r"(?:(?!--)[^.!?;:()\[\]\"'\n])+")


def _turned(text: str, turn: Callable[[str], str]) -> str:
    """`text` with each of its parts (sentences, quotes, brackets) that reads as English
    only once turned (rot13, reversed) replaced by its turned reading."""

    def one(match: re.Match[str]) -> str:
        part = match.group(0)
        turned = turn(part)
        if len(_WORD.findall(part.lower())) >= 2:
            before, after = _english(part), _english(turned)
            if after >= 0.4 and after > before + 0.3:
                return turned
        return part

    return _SEGMENT.sub(one, text)


def _rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def _reversed(text: str) -> str:
    return text[::-1]


def _base64_texts(text: str) -> Iterable[str]:
    for chunk in _BASE64.findall(text):
        padded = chunk + "=" * (-len(chunk) % 4)
        try:
            raw = base64.b64decode(padded, altchars=b"-_" if "-" in chunk or "_" in chunk else None)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded and sum(c.isprintable() or c.isspace() for c in decoded) / len(decoded) > 0.95:
            yield decoded


def views(text: str, limit: int = 4) -> list[str]:
    """The canonical text, then up to `limit - 1` readings of what it hides (leetspeak,
    base64, rot13, reversed): only those that differ, and rot13 and reversed only when
    they read as more English than the canonical text."""
    first = canonical(text)
    found = [first]
    candidates = [
        *_base64_texts(first),
        _unleet(first),
        _turned(first, _rot13),
        _turned(first, _reversed),
    ]
    for candidate in candidates:
        if candidate not in found and len(found) < limit:
            found.append(candidate)
    return found


# --- Screening replies as they stream -------------------------------------------------

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_WORD_SPANS = re.compile(r"\w+")
SECRET_MIN = 8  # shorter values are not screened (they would match ordinary words)
SECRET_FRAGMENT = 12  # any 12 characters in a row of a secret are a leak
INSTRUCTION_WORDS = 10  # 10 words in a row of an agent's instructions are a leak
OVERLAP = 400  # characters before the new text that each check reads again


def _words(text: str) -> list[str]:
    return _WORD_SPANS.findall(text.lower())


@functools.lru_cache(maxsize=4)
def _secret_index(secrets: tuple[str, ...]) -> tuple[frozenset[str], frozenset[int]]:
    """Every SECRET_FRAGMENT characters in a row of each secret (a shorter secret whole)."""
    fragments: set[str] = set()
    sizes: set[int] = set()
    for value in secrets:
        value = str(value or "")
        if len(value) < SECRET_MIN:
            continue
        n = min(SECRET_FRAGMENT, len(value))
        fragments |= {value[i : i + n] for i in range(len(value) - n + 1)}
        sizes.add(n)
    return frozenset(fragments), frozenset(sizes)


@functools.lru_cache(maxsize=4)
def _instruction_index(
    instructions: tuple[str, ...],
) -> tuple[frozenset[tuple[str, ...]], frozenset[tuple[str, ...]]]:
    """The runs of INSTRUCTION_WORDS words of the instructions, and the starts of those
    runs (a reply ending in one is held back until it is clear)."""
    n = INSTRUCTION_WORDS
    runs: set[tuple[str, ...]] = set()
    for text in instructions:
        words = _words(text)
        runs |= {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
    starts = {run[:k] for run in runs for k in range(1, n)}
    return frozenset(runs), frozenset(starts)


class ScreenRules:
    """What a reply must not contain: any SECRET_FRAGMENT characters of a `secret`,
    INSTRUCTION_WORDS words in a row of the agents' `instructions` (case and punctuation
    aside), and e-mail addresses other than `allowed_emails` (the user's own, those of
    the conversation and the knowledge base)."""

    def __init__(
        self,
        *,
        secrets: Iterable[str] = (),
        instructions: Iterable[str] = (),
        allowed_emails: Iterable[str] = (),
    ) -> None:
        self.fragments, self.sizes = _secret_index(tuple(sorted(set(secrets))))
        self.runs, self.starts = _instruction_index(tuple(instructions))
        self.emails = frozenset(e.lower() for e in allowed_emails)

    def leak(self, text: str, *, complete: bool = True) -> str:
        """The kind of leak in `text` ("" if none). Not `complete` (more is streaming in):
        its last word may be half an e-mail address, and is not read for addresses yet."""
        if self._secret_in(text) or self._secret_in(canonical(text)):
            return GuardrailKind.SECRETS
        if self.runs:
            words, n = _words(text), INSTRUCTION_WORDS
            if any(tuple(words[i : i + n]) in self.runs for i in range(len(words) - n + 1)):
                return GuardrailKind.INSTRUCTION_LEAK
        if not complete and text and not text[-1].isspace():
            text = text[: len(text) - len(text.split()[-1])]
        if any(e.lower() not in self.emails for e in EMAIL.findall(text)):
            return GuardrailKind.OTHER_USERS_DATA
        return ""

    def _secret_in(self, text: str) -> bool:
        return any(
            text[i : i + n] in self.fragments for n in self.sizes for i in range(len(text) - n + 1)
        )

    def hold_from(self, text: str) -> int:
        """Where the part of `text` that must wait starts: its last word (a secret or an
        e-mail address may go on in the next delta), or earlier when the words before
        the end could be the start of an agent's instructions."""
        end = len(text)
        while end > 0 and not text[end - 1].isspace():
            end -= 1
        if not self.starts:
            return end
        spans = list(_WORD_SPANS.finditer(text[:end].lower()))[-(INSTRUCTION_WORDS - 1) :]
        words = tuple(m.group(0) for m in spans)
        for k in range(len(words), 0, -1):
            if words[-k:] in self.starts:
                return spans[-k].start()
        return end


class ReplyScreen:
    """One reply as it streams: `feed(delta)` returns the text that may be released now
    (possibly ""), `finish()` the rest; once a leak is found (`leak` names it) nothing
    more is released. Each check reads the new text with OVERLAP characters before it;
    `finish` reads the whole reply, and every view of it (base64 and such decoded)."""

    def __init__(self, rules: ScreenRules) -> None:
        self.rules = rules
        self.text = ""
        self.released = 0
        self.checked = 0
        self.leak = ""

    def feed(self, delta: str) -> str:
        if self.leak:
            return ""
        self.text += delta
        self.leak = self.rules.leak(self.text[self._window_start() :], complete=False)
        self.checked = len(self.text)
        if self.leak:
            return ""
        safe = max(self.released, self.rules.hold_from(self.text))
        out, self.released = self.text[self.released : safe], safe
        return out

    def _window_start(self) -> int:
        """Where a check starts reading: OVERLAP characters before the new text, at the
        start of a word (half an address read from its middle would be another address)."""
        start = self.checked - OVERLAP
        if start <= 0:
            return 0
        space = next((i for i in range(start, len(self.text)) if self.text[i].isspace()), start)
        return space

    def finish(self, final: str | None = None) -> str:
        """The rest of the reply (`final`: its full text, when the model gave it)."""
        shown = self.text[: self.released]
        if final is not None:
            self.text = final
        if not self.leak:
            self.leak = next(filter(None, map(self.rules.leak, views(self.text))), "")
        if self.leak:
            return ""
        rest = self.text[len(shown) :] if self.text.startswith(shown) else ""
        self.released = len(self.text)
        return rest
