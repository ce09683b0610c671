"""Knowledge articles as sections, ranked for a question (no ORM: plain article values).

An article is Markdown whose `##` headings split it into sections; the text before the
first heading is its lead (context for ranking and for the help centre page, never a
passage by itself unless the article has no headings). A question is answered with a
section, so search ranks sections, on these signals (docs/offline-model.md has the
measurements that chose them):
- words: Okapi BM25 over each section (heading counted twice) plus 0.6 x BM25 over its
  whole article (title and tags three times), scaled to the best section's score;
- meaning, when the MiniLM encoder is installed (orchestrator/encoder.py): the cosine of
  the question with the section (title, heading and text) and with its closest sentence
  or list item, which finds "money back" in a section about refunds;
- the questions its author listed under its heading (`Questions:`, below): their words
  count with the section's, and the cosine with the closest of them is a third meaning
  signal, which tells "how do I ask for my money back?" (how to request a refund) from
  "is there a money-back guarantee?" where the section's own wording does not.
A small prior for a section's place in its article makes a question that fits the whole
article start at its beginning (step 1 before "send us diagnostics").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.text import slugify

from .text import tokenize

_HEADING = re.compile(r"^#{1,2}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9*`\[(\"“])")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_K1, _B = 1.2, 0.75
SECTION_WEIGHT = 1.0  # a section's own words
ARTICLE_WEIGHT = 0.6  # its article's title, tags and whole body
MEANING_WEIGHT = 4.0  # cosine with the whole section
UNIT_WEIGHT = 2.0  # cosine with its closest sentence or list item
QUESTION_WEIGHT = 6.0  # cosine with the closest of the questions it lists
POSITION_PRIOR = 0.4  # taken off the article's last section, in proportion before it
WORDS_ENOUGH = 1.0  # BM25 at which a section counts as found by its words alone
MEANING_ENOUGH = 0.35  # cosine at which it counts as found by meaning alone


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    body: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    article: Article
    index: int  # position in the article, from 0
    heading: str
    text: str  # what the help centre shows and answers quote: without its questions
    questions: tuple[str, ...] = ()  # the questions its author says it answers

    @property
    def anchor(self) -> str:
        return section_anchor(self.heading)


def section_anchor(heading: str) -> str:
    """The section's id on its help centre page (stable while the heading is)."""
    return slugify(heading) or "section"


def split_sections(article: Article) -> tuple[str, list[Section]]:
    """(the lead, the sections), each without its `Questions:` block. An article without
    headings is one section named after its title."""
    raw_lead, pairs = _parts(article.body)
    lead_questions, lead = split_questions(raw_lead)
    split = [(heading, *split_questions(text)) for heading, text in pairs]
    sections = [
        Section(article, i, heading, text, questions)
        for i, (heading, questions, text) in enumerate(split)
        if text
    ]
    if not sections and lead:
        return "", [Section(article, 0, article.title, lead, lead_questions)]
    return lead, sections


def _parts(body: str) -> tuple[str, list[tuple[str, str]]]:
    """(the text before the first heading, [(heading, its raw text)])."""
    parts = _HEADING.split(body.replace("\r\n", "\n"))
    return parts[0], [(h.strip(), t) for h, t in zip(parts[1::2], parts[2::2], strict=True)]


# --- Questions a section answers ------------------------------------------------------
# Right under a section's heading, its author may list the questions it answers, in the
# words customers use (the FAQ's "alternate phrasings"):
#
#     ## How to request a refund
#     Questions:
#     - How do I ask for my money back?
#     - Where do I request a refund?
#
# (a blank line ends the list), or on one line, separated by "|":
# `Questions: How do I ask for my money back? | Where do I request a refund?`.
# They are a ranking signal only: never shown on the help centre or quoted in answers.

_QUESTIONS_LINE = re.compile(r"^\s*questions\s*:(.*)$", re.IGNORECASE)
_BULLET = re.compile(r"^\s*[-*+]\s+")
_QUESTIONS_MARKER = re.compile(r"^\s*questions\s*:", re.IGNORECASE | re.MULTILINE)
MAX_QUESTIONS = 12  # per section
MAX_QUESTION_CHARS = 200


def split_questions(text: str) -> tuple[tuple[str, ...], str]:
    """(the questions listed at the top of a section's text, the text without them)."""
    lines = text.strip().split("\n")
    found = _QUESTIONS_LINE.match(lines[0])
    if not found:
        return (), text.strip()
    questions = [q.strip() for q in found.group(1).split("|") if q.strip()]
    rest = 1
    if not questions:  # the list form: "- question" lines (after a blank line or not)
        while rest < len(lines) and not lines[rest].strip():
            rest += 1
        while rest < len(lines) and _BULLET.match(lines[rest]):
            questions.append(_BULLET.sub("", lines[rest], count=1).strip())
            rest += 1
    return tuple(q for q in questions if q), "\n".join(lines[rest:]).strip()


def questions_problems(body: str) -> list[str]:
    """What is wrong with an article's `Questions:` blocks, in words for its author (an
    empty list when nothing is): each must list at least one question, right under its
    heading (anywhere else it would show on the help centre), above text that answers it,
    and a question belongs to one section only."""
    raw_lead, pairs = _parts(body)
    places = [(None, raw_lead), *pairs] if pairs else [(None, raw_lead)]
    problems: list[str] = []
    seen: dict[str, str] = {}
    for heading, raw in places:
        where = f"under “{heading}”" if heading else "at the top of the article"
        questions, text = split_questions(raw)
        if heading is None and pairs and questions:
            problems.append("Questions go right under a ## heading, not before the first one.")
        elif _QUESTIONS_LINE.match(raw.strip().split("\n")[0]) and not questions:
            problems.append(f"The “Questions:” line {where} lists no question.")
        elif questions and not text:
            problems.append(f"The questions {where} have no text under them that answers them.")
        if any(_QUESTIONS_LINE.match(line) for line in text.split("\n")):
            problems.append(
                f"A “Questions:” line {where} comes after other text: put it right under the "
                "heading, or it shows on the help centre."
            )
        problems += _question_list_problems(questions, where, heading or "", seen)
    return problems


def _question_list_problems(
    questions: tuple[str, ...], where: str, heading: str, seen: dict[str, str]
) -> list[str]:
    problems: list[str] = []
    if len(questions) > MAX_QUESTIONS:
        problems.append(f"List at most {MAX_QUESTIONS} questions {where}.")
    for question in questions:
        if len(question) > MAX_QUESTION_CHARS:
            problems.append(
                f"A question {where} is longer than {MAX_QUESTION_CHARS} characters: "
                f"“{question[:40]}…”."
            )
        key = " ".join(question.casefold().split())
        if key in seen and seen[key] != heading:
            problems.append(
                f"“{question}” is listed under both “{seen[key]}” and “{heading}”: "
                "keep it under the section that answers it."
            )
        seen.setdefault(key, heading)
    return problems


@dataclass
class _Bm25:
    """Okapi BM25 over a fixed list of token lists."""

    docs: list[Counter[str]]
    lengths: list[int] = field(init=False)
    df: Counter[str] = field(init=False)
    average: float = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = [sum(d.values()) for d in self.docs]
        self.average = (sum(self.lengths) / len(self.docs)) if self.docs else 0.0
        self.df = Counter(t for d in self.docs for t in d)

    def scores(self, terms: Iterable[str]) -> list[float]:
        n = len(self.docs)
        result = [0.0] * n
        for term in set(terms):
            df = self.df.get(term, 0)
            if not df:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            for i, doc in enumerate(self.docs):
                tf = doc.get(term, 0)
                if tf:
                    norm = _K1 * (1 - _B + _B * self.lengths[i] / (self.average or 1))
                    result[i] += idf * tf * (_K1 + 1) / (tf + norm)
        return result


@dataclass(frozen=True)
class Ranked:
    section: Section
    score: float


class SectionIndex:
    """Every section of a set of articles, ready to rank for a question.

    `encoder` (a MiniLMEncoder or None) embeds the sections once (its cache keeps them
    across searches); without it ranking is on words only.
    """

    def __init__(self, articles: Sequence[Article], encoder: Any = None) -> None:
        self.sections: list[Section] = []
        article_docs: list[Counter[str]] = []
        owner: list[int] = []
        for a, article in enumerate(articles):
            lead, sections = split_sections(article)
            head = f"{article.title} {' '.join(article.tags)} "
            body = _QUESTIONS_MARKER.sub(" ", article.body)  # its questions count, not the word
            article_docs.append(Counter(tokenize(head * 3 + lead + " " + body)))
            self.sections += sections
            owner += [a] * len(sections)
        self._owner = owner
        self._articles = _Bm25(article_docs)
        self._sections = _Bm25([Counter(tokenize(_section_words(s))) for s in self.sections])
        sizes = Counter(owner)
        self._position = [
            s.index / max(sizes[o] - 1, 1) for s, o in zip(self.sections, owner, strict=True)
        ]
        self._encoder = encoder
        if encoder is not None and self.sections:
            self._embed_sections(encoder)

    def embedding_texts(self) -> list[str]:
        """Every text the index embeds (its sections whole, their units, their
        questions), in one list: what a store of vectors keeps for it."""
        whole, units, asked = self._texts()
        return whole + [t for _, t in units] + [q for _, q in asked]

    def _texts(self) -> tuple[list[str], list[tuple[int, str]], list[tuple[int, str]]]:
        whole = [f"{s.article.title}. {s.heading}. {s.text}" for s in self.sections]
        units = [
            (i, f"{s.heading}: {u}") for i, s in enumerate(self.sections) for _, u in _units(s.text)
        ]
        asked = [(i, q) for i, s in enumerate(self.sections) for q in s.questions]
        return whole, units, asked

    def _embed_sections(self, encoder: Any) -> None:
        whole, units, asked = self._texts()
        self._whole = encoder.encode(whole)
        self._unit_owner = [i for i, _ in units]
        self._units = encoder.encode([text for _, text in units])
        self._question_owner = [i for i, _ in asked]
        self._questions = encoder.encode([q for _, q in asked])

    def _meaning(self, query: str) -> tuple[list[float], list[float], list[float]]:
        """(cosine with each section, with its closest unit, with its closest question);
        zeros without an encoder (and for a section that lists no questions)."""
        n = len(self.sections)
        if self._encoder is None:
            return [0.0] * n, [0.0] * n, [0.0] * n
        q = self._encoder.encode_one(query)
        whole = [float(x) for x in self._whole @ q]
        return (
            whole,
            _closest(n, self._unit_owner, self._units @ q),
            _closest(n, self._question_owner, self._questions @ q),
        )

    def rank(self, query: str, *, limit: int = 6) -> list[Ranked]:
        """The sections that match the query, best first; ties keep the article's order."""
        terms = tokenize(query)
        if not query.strip() or not self.sections:
            return []
        by_article = self._articles.scores(terms)
        by_section = self._sections.scores(terms)
        words = [
            SECTION_WEIGHT * by_section[i] + ARTICLE_WEIGHT * by_article[self._owner[i]]
            for i in range(len(self.sections))
        ]
        top = max(words) or 1.0
        whole, closest, asked = self._meaning(query)
        scored = [
            Ranked(
                section,
                words[i] / top
                + MEANING_WEIGHT * whole[i]
                + UNIT_WEIGHT * max(closest[i], 0.0)
                + QUESTION_WEIGHT * max(asked[i], 0.0)
                - POSITION_PRIOR * self._position[i],
            )
            for i, section in enumerate(self.sections)
            if words[i] >= WORDS_ENOUGH or max(whole[i], closest[i], asked[i]) >= MEANING_ENOUGH
        ]
        scored.sort(key=lambda r: (-r.score, r.section.article.title, r.section.index))
        return scored[:limit]


def _section_words(section: Section) -> str:
    """What BM25 reads of a section: its heading twice, its text, and its questions."""
    asked = " ".join(section.questions)
    return f"{section.heading} {section.heading} {section.text} {asked}"


def _closest(n: int, owner: list[int], cosines: Any) -> list[float]:
    """Each section's best cosine among its own units (0 for a section without any)."""
    best = [0.0] * n
    seen = [False] * n
    for i, cosine in zip(owner, cosines, strict=True):
        best[i] = float(cosine) if not seen[i] else max(best[i], float(cosine))
        seen[i] = True
    return best


# --- Passages -----------------------------------------------------------------------


def _units(text: str) -> list[tuple[str, str]]:
    """(separator before it, unit): whole list items and sentences, so that a cut between
    two units leaves valid Markdown (tables and code blocks stay whole blocks)."""
    units: list[tuple[str, str]] = []
    for b, block in enumerate(re.split(r"\n\s*\n", text.strip())):
        block_sep = "\n\n" if b else ""
        if block.lstrip().startswith(("|", "```", ">")):
            units.append((block_sep, block.strip()))
            continue
        for n, line in enumerate(block.splitlines()):
            line_sep = block_sep if n == 0 else "\n"
            if _LIST_ITEM.match(line) or not line.strip():
                units.append((line_sep, line.rstrip()))
                continue
            for s, sentence in enumerate(_SENTENCE_END.split(line.strip())):
                units.append((line_sep if s == 0 else " ", sentence))
    return [u for u in units if u[1].strip()]


def trim_words(text: str, max_words: int) -> tuple[str, bool]:
    """The text cut to at most `max_words` words on sentence or list-item boundaries (the
    first unit is kept whole however long), and whether anything was cut."""
    kept: list[str] = []
    words = 0
    units = _units(text)
    for i, (sep, unit) in enumerate(units):
        size = len(unit.split())
        if kept and words + size > max_words:
            return "".join(kept).strip(), True
        kept.append(sep + unit if i else unit)
        words += size
    return "".join(kept).strip(), False


def word_count(text: str) -> int:
    """Words as a reader counts them: Markdown markers and link targets left out."""
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return len(re.findall(r"\w+(?:['’.-]\w+)*", text))
