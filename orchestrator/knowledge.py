"""Knowledge articles as sections, ranked for a question (no ORM: plain article values).

An article is Markdown whose `##` headings split it into sections; the text before the
first heading is its lead (context for ranking and for the help centre page, never a
passage by itself unless the article has no headings). A question is answered with a
section, so search ranks sections, on two signals (docs/offline-model.md has the
measurements that chose them):
- words: Okapi BM25 over each section (heading counted twice) plus 0.6 x BM25 over its
  whole article (title and tags three times), scaled to the best section's score;
- meaning, when the MiniLM encoder is installed (orchestrator/encoder.py): the cosine of
  the question with the section (title, heading and text) and with its closest sentence
  or list item, which finds "money back" in a section about refunds.
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
    text: str

    @property
    def anchor(self) -> str:
        return section_anchor(self.heading)


def section_anchor(heading: str) -> str:
    """The section's id on its help centre page (stable while the heading is)."""
    return slugify(heading) or "section"


def split_sections(article: Article) -> tuple[str, list[Section]]:
    """(the lead, the sections). An article without headings is one section named after
    its title."""
    parts = _HEADING.split(article.body.replace("\r\n", "\n"))
    lead = parts[0].strip()
    pairs = list(zip(parts[1::2], parts[2::2], strict=True))
    sections = [
        Section(article, i, heading.strip(), text.strip())
        for i, (heading, text) in enumerate(pairs)
        if text.strip()
    ]
    if not sections and lead:
        return "", [Section(article, 0, article.title, lead)]
    return lead, sections


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
            article_docs.append(Counter(tokenize(head * 3 + lead + " " + article.body)))
            self.sections += sections
            owner += [a] * len(sections)
        self._owner = owner
        self._articles = _Bm25(article_docs)
        self._sections = _Bm25(
            [Counter(tokenize(f"{s.heading} {s.heading} {s.text}")) for s in self.sections]
        )
        sizes = Counter(owner)
        self._position = [
            s.index / max(sizes[o] - 1, 1) for s, o in zip(self.sections, owner, strict=True)
        ]
        self._encoder = encoder
        if encoder is not None and self.sections:
            self._embed_sections(encoder)

    def _embed_sections(self, encoder: Any) -> None:
        self._whole = encoder.encode(
            [f"{s.article.title}. {s.heading}. {s.text}" for s in self.sections]
        )
        units = [
            (i, f"{s.heading}: {u}") for i, s in enumerate(self.sections) for _, u in _units(s.text)
        ]
        self._unit_owner = [i for i, _ in units]
        self._units = encoder.encode([text for _, text in units])

    def _meaning(self, query: str) -> tuple[list[float], list[float]]:
        """(cosine with each section, with its closest unit); zeros without an encoder."""
        n = len(self.sections)
        if self._encoder is None:
            return [0.0] * n, [0.0] * n
        q = self._encoder.encode_one(query)
        whole = [float(x) for x in self._whole @ q]
        closest = [-1.0] * n
        for i, cosine in zip(self._unit_owner, self._units @ q, strict=True):
            closest[i] = max(closest[i], float(cosine))
        return whole, closest

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
        whole, closest = self._meaning(query)
        scored = [
            Ranked(
                section,
                words[i] / top
                + MEANING_WEIGHT * whole[i]
                + UNIT_WEIGHT * max(closest[i], 0.0)
                - POSITION_PRIOR * self._position[i],
            )
            for i, section in enumerate(self.sections)
            if words[i] >= WORDS_ENOUGH or max(whole[i], closest[i]) >= MEANING_ENOUGH
        ]
        scored.sort(key=lambda r: (-r.score, r.section.article.title, r.section.index))
        return scored[:limit]


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
