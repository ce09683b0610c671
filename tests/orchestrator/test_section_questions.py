"""The questions an article section lists under its heading (`Questions:`): parsed, kept
out of what readers see, checked when staff save, and matched as a ranking signal."""

import json
import time

import numpy as np
import pytest
from django.urls import reverse

from orchestrator import answers, knowledge, selectors
from orchestrator.answers_eval import SEED_FILE
from orchestrator.encoder import load_encoder
from orchestrator.knowledge import (
    Article,
    SectionIndex,
    questions_problems,
    split_questions,
    split_sections,
)
from orchestrator.models import AgentProfile, KnowledgeArticle
from orchestrator.text import stem

REFUNDS = Article(
    slug="refunds",
    title="Refund policy",
    body=(
        "When you can get money back.\n\n"
        "## Money-back guarantee\n"
        "Questions:\n- Is there a money-back guarantee?\n- Can I get a refund within 30 days?\n\n"
        "- Cancel within 30 days and we refund the payment.\n\n"
        "## How to request a refund\n"
        "Questions: How do I ask for my money back? | Where do I request a refund?\n"
        "1. Cancel first.\n2. Contact Billing with your invoice number.\n\n"
        "## Timing\nRefunds reach your card in 5-10 business days."
    ),
)


def test_a_questions_list_under_a_heading_is_parsed_and_kept_out_of_the_text():
    lead, sections = split_sections(REFUNDS)
    assert lead == "When you can get money back."
    guarantee, request, timing = sections
    assert guarantee.questions == (
        "Is there a money-back guarantee?",
        "Can I get a refund within 30 days?",
    )
    assert guarantee.text == "- Cancel within 30 days and we refund the payment."
    assert request.questions == ("How do I ask for my money back?", "Where do I request a refund?")
    assert request.text.startswith("1. Cancel first.")
    assert timing.questions == () and timing.text.startswith("Refunds reach")
    assert all("Questions" not in s.text for s in sections)


@pytest.mark.parametrize(
    ("text", "questions", "rest"),
    [
        ("questions:\n\n* One?\n+ Two?\n\nText.", ("One?", "Two?"), "Text."),  # any case, marker
        ("QUESTIONS :  Only one?\nText.", ("Only one?",), "Text."),
        ("Questions: A? | | B?\n- Not one\nText.", ("A?", "B?"), "- Not one\nText."),
        ("Questions:\n- One?\n1. Step one", ("One?",), "1. Step one"),
        ("Text first.\nQuestions: not a block", (), "Text first.\nQuestions: not a block"),
        ("Frequently asked questions: none here", (), "Frequently asked questions: none here"),
    ],
)
def test_the_questions_block_forms(text, questions, rest):
    assert split_questions(text) == (questions, rest)


def test_an_article_without_headings_may_list_its_questions_at_the_top():
    article = Article(slug="x", title="Short", body="Questions:\n- What is it?\n\nJust this.")
    assert split_sections(article)[1][0].questions == ("What is it?",)
    assert split_sections(article)[1][0].text == "Just this."
    assert questions_problems(article.body) == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("## A\nQuestions:\n\nText.", "The “Questions:” line under “A” lists no question."),
        ("## A\nQuestions: Why?\n", "The questions under “A” have no text under them"),
        ("## A\nText.\nQuestions: Why?", "A “Questions:” line under “A” comes after other text"),
        ("Questions: Why?\n\n## A\nText.", "Questions go right under a ## heading"),
        ("## A\nQuestions: Why?\nT.\n## B\nQuestions: why? \nT.", "listed under both “A” and “B”"),
        ("## A\nQuestions: " + "x" * 201 + "\nT.", "longer than 200 characters"),
        ("## A\nQuestions: " + " | ".join(f"q{i}" for i in range(13)) + "\nT.", "at most 12"),
    ],
)
def test_questions_blocks_that_would_show_or_mislead_are_refused_in_plain_words(body, problem):
    problems = questions_problems(body)
    assert len(problems) == 1 and problem in problems[0]


def test_every_seed_article_section_lists_valid_questions():
    data = json.loads(SEED_FILE.read_text(encoding="utf-8"))
    articles = [a for agent in data["agents"] for a in agent.get("articles", [])]
    assert articles
    for spec in articles:
        assert questions_problems(spec["body"]) == [], spec["title"]
        _, sections = split_sections(Article(slug="s", title=spec["title"], body=spec["body"]))
        assert all(s.questions for s in sections), spec["title"]


# --- The ranking signal ----------------------------------------------------------------

_WORDS = ("money", "back", "guarantee", "request", "refund", "ask", "days", "card")


class WordEncoder:
    """A tiny deterministic stand-in for MiniLM: unit vectors of word counts."""

    def encode(self, texts):
        return np.array([self.encode_one(t) for t in texts], dtype=np.float32).reshape(-1, 9)

    def encode_one(self, text):
        words = knowledge.tokenize(text)  # stemmed, as BM25 reads them
        vector = np.array([1.0] + [words.count(stem(w)) for w in _WORDS], np.float32)
        return vector / np.linalg.norm(vector)


TWINS = Article(
    slug="twins",
    title="Refunds",
    body=(
        "## Guarantee\nWe refund card payments within 30 days.\n\n"
        "## Requesting\nQuestions:\n- How do I ask for my money back?\n\n"
        "We refund card payments within 30 days."
    ),
)


def test_a_listed_question_ranks_its_section_first_by_meaning(monkeypatch):
    query = "ask for my money back on my card"
    monkeypatch.setattr(knowledge, "QUESTION_WEIGHT", 0.0)
    monkeypatch.setattr(knowledge, "_section_words", lambda s: f"{s.heading} {s.text}")
    without = SectionIndex([TWINS], encoder=WordEncoder()).rank(query)
    assert without[0].section.heading == "Guarantee"  # the same text: the earlier section
    monkeypatch.setattr(knowledge, "QUESTION_WEIGHT", 6.0)
    ranked = SectionIndex([TWINS], encoder=WordEncoder()).rank(query)
    assert ranked[0].section.heading == "Requesting"


def test_a_listed_questions_words_count_without_embeddings():
    ranked = SectionIndex([TWINS]).rank("ask money")
    assert [r.section.heading for r in ranked] == ["Requesting"]  # found by its question alone


def test_sections_without_questions_still_rank_with_an_encoder():
    ranked = SectionIndex([REFUNDS], encoder=WordEncoder()).rank("refund card days")
    assert ranked and {r.section.heading for r in ranked} >= {"Timing"}


# --- Readers never see them --------------------------------------------------------------


def test_answers_quote_the_section_without_its_questions():
    ranked = SectionIndex([REFUNDS]).rank("where do I request a refund")
    passages = [selectors.passage_dict(r) for r in ranked]
    assert passages[0]["section"] == "How to request a refund"
    reply = answers.answer(passages, user_text="request", history=[], agent_name="Billing")
    assert "Contact Billing" in reply and "Questions" not in reply and "|" not in reply


@pytest.mark.django_db
def test_the_help_centre_hides_the_questions_but_search_finds_them(client, team):
    html = client.get("/help/refund-policy/").content.decode()
    assert '<h2 id="how-to-request-a-refund">How to request a refund</h2>' in html
    assert "Questions:" not in html and "How do I ask for my money back?" not in html
    assert "<strong>Settings → Billing → Plan</strong>" in html  # the text still renders
    results = client.get("/help/", {"q": "what do I need to send for a refund"}).content.decode()
    assert 'href="/help/refund-policy/#how-to-request-a-refund"' in results
    assert "Questions:" not in results and "How do I ask for my money back?" not in results


# --- Staff write them in the admin -----------------------------------------------------


def _article_form(agent, body):
    return {"agent": agent.pk, "title": "Printer help", "slug": "", "tags": "", "body": body}


@pytest.mark.django_db
def test_the_admin_refuses_a_misplaced_questions_line_and_saves_a_good_one(admin_client, team):
    agent = AgentProfile.objects.get(slug="technical_support")
    url = reverse("admin:orchestrator_knowledgearticle_add")
    page = admin_client.get(url).content.decode()
    assert "Questions:" in page  # the body's help text explains the convention
    bad = "## Connect\nPlug it in.\nQuestions: How do I connect it?"
    response = admin_client.post(url, _article_form(agent, bad))
    assert response.status_code == 200
    assert "comes after other text" in response.content.decode()
    assert not KnowledgeArticle.objects.filter(title="Printer help").exists()
    good = "## Connect\nQuestions:\n- How do I connect it?\n\nPlug it in."
    response = admin_client.post(url, _article_form(agent, good) | {"published": "on"})
    assert response.status_code == 302
    article = KnowledgeArticle.objects.get(title="Printer help")
    sections = split_sections(selectors.article_value(article))[1]
    assert sections[0].questions == ("How do I connect it?",)


# --- Embedded with the sections, in the background too -------------------------------


def test_questions_are_embedded_with_the_sections_in_the_background(settings, monkeypatch):
    encoder = load_encoder()
    if encoder is None:
        pytest.skip("the MiniLM weights are not installed")
    articles = [
        Article(slug="p", title="Printer", body="## Connect\nQuestions: How do I pair it?\nPlug.")
    ]
    settings.SUPERORCH_KNOWLEDGE_EMBEDDINGS = "background"
    selectors.section_embeddings.reset()
    assert selectors.section_embeddings.encoder_for(articles) is None  # words only for now
    deadline = time.monotonic() + 60
    while selectors.section_embeddings.encoder_for(articles) is None:
        assert time.monotonic() < deadline, "the background embedding never finished"
        time.sleep(0.05)
    fresh = []
    real = encoder._encode_uncached
    monkeypatch.setattr(
        encoder, "_encode_uncached", lambda texts, size: fresh.extend(texts) or real(texts, size)
    )
    index = SectionIndex(articles, encoder=encoder)  # what a search builds once ready
    assert fresh == []  # the question's vector was made in the background, with the rest
    assert index._questions.shape == (1, encoder.dim)
    assert index.rank("pair the printer")[0].section.heading == "Connect"
