"""Measure the offline model's answers on labelled questions (`manage.py answers_eval`).

Each case is a question with the article and section that answer it. A question is
searched in its article's agent's knowledge base (what the chat does once the question
reached that agent), with the same ranking and the same reply as the live chat
(selectors.passage_dict, answers.answer), so the figures are the chat's.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import answers, knowledge, selectors
from .encoder import load_encoder
from .routing_eval import EvalInputError, read_jsonl

SEED_FILE = Path(__file__).resolve().parent / "seed" / "team.json"
FIELDS = ("question", "article", "section")


@dataclass(frozen=True)
class KnowledgeBase:
    """Articles by agent name (plain values, from the seed file or the database)."""

    agents: dict[str, list[knowledge.Article]]

    def agent_of(self, title: str) -> tuple[str, knowledge.Article] | None:
        for agent, articles in self.agents.items():
            for article in articles:
                if article.title == title:
                    return agent, article
        return None


def seed_knowledge(path: Path = SEED_FILE) -> KnowledgeBase:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvalInputError(f"Cannot read the articles in {path}: {exc}.") from None
    agents = {
        spec["name"]: [
            knowledge.Article(
                slug=knowledge.section_anchor(a["title"]),
                title=a["title"],
                body=a["body"],
                tags=tuple(a.get("tags", [])),
            )
            for a in spec.get("articles", [])
        ]
        for spec in data["agents"]
    }
    return KnowledgeBase({name: articles for name, articles in agents.items() if articles})


def database_knowledge() -> KnowledgeBase:
    return KnowledgeBase(selectors.knowledge_by_agent())


def read_cases(path: Path, base: KnowledgeBase) -> list[dict[str, str]]:
    """The cases, each checked against the knowledge base so a typo in a label is an
    error that names its line, not a silent miss."""
    cases = read_jsonl(path, FIELDS)
    for number, case in enumerate(cases, 1):
        found = base.agent_of(case["article"])
        if found is None:
            raise EvalInputError(
                f"{path}, case {number}: no published article is titled {case['article']!r}."
            )
        _, sections = knowledge.split_sections(found[1])
        if case["section"] not in {s.heading for s in sections}:
            raise EvalInputError(
                f"{path}, case {number}: {case['article']!r} has no section {case['section']!r}."
            )
    return cases


def evaluate(
    cases: list[dict[str, str]], base: KnowledgeBase, *, embeddings: bool = True
) -> dict[str, Any]:
    encoder = load_encoder() if embeddings else None
    indexes = {
        agent: knowledge.SectionIndex(articles, encoder=encoder)
        for agent, articles in base.agents.items()
    }
    article_hits = section_hits = 0
    lengths: list[int] = []
    misses: list[dict[str, str]] = []
    for case in cases:
        agent, _ = base.agent_of(case["article"])  # type: ignore[misc]  # checked on reading
        passages = [selectors.passage_dict(r) for r in indexes[agent].rank(case["question"])]
        reply = answers.answer(passages, user_text=case["question"], history=[], agent_name=agent)
        lengths.append(knowledge.word_count(reply or ""))
        # The passage the reply shows (the ranking's best, or an earlier step close to it).
        chosen = answers.pick_passage(passages, user_text=case["question"], history=[])
        top = chosen or {"title": None, "section": None}
        article_hits += top["title"] == case["article"]
        hit = top["title"] == case["article"] and top["section"] == case["section"]
        section_hits += hit
        if not hit:
            misses.append(case | {"got": f"{top['title']} / {top['section']}"})
    return {
        "cases": len(cases),
        "top1_article": round(article_hits / len(cases), 4),
        "top1_section": round(section_hits / len(cases), 4),
        "median_reply_words": statistics.median(lengths),
        "max_reply_words": max(lengths),
        "mode": "words and embeddings" if encoder is not None else "words only",
        "misses": misses,
    }
