"""A small local text router: TF-IDF over each agent's routing examples.

Trained from the registry (routing examples, handoff description and name),
cached per registry version, pure Python, no downloads. It answers "which
agent fits this message best, and how sure is that", including "nothing fits"
(the caller compares the confidence with a threshold).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "by",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "do",
        "does",
        "did",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "have",
        "has",
        "had",
        "am",
        "so",
        "just",
        "please",
        "hi",
        "hello",
        "hey",
        "there",
        "what",
        "how",
        "why",
        "when",
        "where",
        "who",
        "which",
        "not",
        "no",
        "yes",
        "as",
        "up",
        "out",
        "about",
        "into",
        "than",
        "then",
        "too",
        "very",
    ]
)
_SUFFIXES = ("ing", "ed", "es", "s", "ly", "e")


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def tokenize(text: str) -> list[str]:
    return [stem(w) for w in _TOKEN.findall(text.lower()) if w not in _STOP]


def _features(tokens: list[str]) -> Counter[str]:
    feats: Counter[str] = Counter(tokens)
    feats.update(f"{a}_{b}" for a, b in zip(tokens, tokens[1:], strict=False))
    return feats


@dataclass(frozen=True)
class RouteDecision:
    agent: str | None
    confidence: float
    ranked: tuple[tuple[str, float], ...]

    def score_of(self, slug: str) -> float:
        return next((s for a, s in self.ranked if a == slug), 0.0)


FALLBACK = "__fallback__"


class Router:
    """TF-IDF vectors per example; an agent's score blends its best example and its centroid.

    `fallback_examples` are out-of-scope messages: when they match best, nothing fits.
    """

    threshold = 0.16

    def __init__(
        self, documents: Mapping[str, Iterable[str]], fallback_examples: Iterable[str] = ()
    ) -> None:
        per_agent = {slug: [t for t in texts if t.strip()] for slug, texts in documents.items()}
        fallback_texts = [t for t in fallback_examples if t.strip()]
        if fallback_texts:
            per_agent[FALLBACK] = fallback_texts
        all_docs = [_features(tokenize(t)) for texts in per_agent.values() for t in texts]
        n = max(len(all_docs), 1)
        df: Counter[str] = Counter()
        for feats in all_docs:
            df.update(feats.keys())
        self._idf = {term: math.log((1 + n) / (1 + count)) + 1.0 for term, count in df.items()}
        self._default_idf = math.log(1 + n) + 1.0
        self._examples: dict[str, list[dict[str, float]]] = {}
        self._centroids: dict[str, dict[str, float]] = {}
        for slug, texts in per_agent.items():
            vectors = [v for v in (self._vector(t) for t in texts) if v]
            self._examples[slug] = vectors
            centroid: Counter[str] = Counter()
            for vec in vectors:
                centroid.update(vec)
            self._centroids[slug] = _normalise(dict(centroid))

    def _vector(self, text: str) -> dict[str, float]:
        feats = _features(tokenize(text))
        return _normalise(
            {t: (1 + math.log(c)) * self._idf.get(t, self._default_idf) for t, c in feats.items()}
        )

    def route(self, text: str, candidates: Iterable[str] | None = None) -> RouteDecision:
        query = self._vector(text)
        slugs = list(candidates) if candidates is not None else list(self._examples)
        if FALLBACK in self._examples and FALLBACK not in slugs:
            slugs.append(FALLBACK)
        scored = []
        for slug in slugs:
            examples = self._examples.get(slug) or []
            best = max((_dot(query, ex) for ex in examples), default=0.0)
            centroid = _dot(query, self._centroids.get(slug, {}))
            scored.append((slug, round(0.7 * best + 0.3 * centroid, 4)))
        scored.sort(key=lambda item: item[1], reverse=True)
        nothing_fits = not scored or scored[0][1] <= 0.0 or scored[0][0] == FALLBACK
        ranked = tuple(item for item in scored if item[0] != FALLBACK)
        if nothing_fits:
            return RouteDecision(agent=None, confidence=0.0, ranked=ranked)
        return RouteDecision(agent=ranked[0][0], confidence=ranked[0][1], ranked=ranked)


def _normalise(vec: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {k: v / norm for k, v in vec.items()} if norm else {}


def _dot(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(k, 0.0) for k, v in a.items())
