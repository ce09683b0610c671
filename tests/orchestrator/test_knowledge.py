"""Articles as sections, their ranking, and passages cut on sentence or list boundaries."""

import pytest

from orchestrator import knowledge, selectors
from orchestrator.knowledge import Article, SectionIndex, split_sections, trim_words, word_count
from orchestrator.models import KnowledgeArticle

CRASH = Article(
    slug="crash",
    title="The app crashes on login",
    tags=("crash", "login"),
    body=(
        "If the app closes after you sign in, work through these steps.\n\n"
        "## 1. Check for an outage\nVisit the status page.\n\n"
        "## 2. Update the app\n- **iOS:** App Store, then update.\n- **Android:** Play Store.\n\n"
        "## 3. Clear cached data\nClear the cache in Settings, then reopen the app.\n"
    ),
)
REFUNDS = Article(
    slug="refunds",
    title="Refund policy",
    tags=("refund",),
    body=(
        "When you can get money back.\n\n"
        "## How to request a refund\nContact Billing with your invoice number.\n\n"
        "## Timing\nRefunds reach your card in 5-10 business days."
    ),
)


def test_headings_split_an_article_and_the_lead_is_kept_apart():
    lead, sections = split_sections(CRASH)
    assert lead.startswith("If the app closes")
    assert [s.heading for s in sections] == [
        "1. Check for an outage",
        "2. Update the app",
        "3. Clear cached data",
    ]
    assert [s.index for s in sections] == [0, 1, 2]
    assert sections[1].anchor == "2-update-the-app"
    assert sections[1].text.startswith("- **iOS:**")


def test_an_article_without_headings_is_one_section_named_after_it():
    lead, sections = split_sections(Article(slug="x", title="Short one", body="Just this."))
    assert lead == "" and [(s.heading, s.text) for s in sections] == [("Short one", "Just this.")]


def test_ranking_finds_the_section_and_the_article():
    index = SectionIndex([CRASH, REFUNDS])
    best = index.rank("how long does my refund take to reach the card")[0].section
    assert (best.article.slug, best.heading) == ("refunds", "Timing")
    best = index.rank("how do I clear the cache")[0].section
    assert best.heading == "3. Clear cached data"
    assert index.rank("quantum flux capacitor") == []
    assert index.rank("") == []


def test_a_question_about_the_whole_article_starts_at_its_first_step():
    best = SectionIndex([CRASH, REFUNDS]).rank("it crashes on login")[0].section
    assert best.heading == "1. Check for an outage"


def test_trimming_cuts_between_sentences_and_list_items_never_inside():
    text = "First sentence here. Second one **bold**.\n\n- item one\n- item two\n- item three"
    assert trim_words(text, 100) == (text, False)
    cut, was_cut = trim_words(text, 6)
    assert was_cut and cut == "First sentence here. Second one **bold**."
    cut, _ = trim_words(text, 9)
    assert cut == "First sentence here. Second one **bold**.\n\n- item one"
    assert cut.count("**") % 2 == 0


def test_tables_and_code_blocks_stay_whole():
    text = "Intro.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode line\n```"
    cut, was_cut = trim_words(text, 3)
    assert was_cut and cut == "Intro."
    cut, _ = trim_words(text, 12)
    assert cut.endswith("| 1 | 2 |") and "```" not in cut


def test_the_first_unit_is_kept_whole_however_long():
    long = "word " * 200
    cut, was_cut = trim_words(long.strip() + ". Next.", 10)
    assert was_cut and word_count(cut) == 200


@pytest.mark.parametrize(
    ("text", "words"),
    [("**Bold** and [a link](/help/x/#y)", 4), ("5-10 business days", 3), ("", 0)],
)
def test_words_are_counted_as_a_reader_counts_them(text, words):
    assert word_count(text) == words


@pytest.mark.django_db
def test_an_agents_index_is_built_once_and_again_after_an_edit(team, monkeypatch):
    built = []
    real = knowledge.SectionIndex

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(knowledge, "SectionIndex", counting)
    selectors.section_index.cache_clear()
    for _ in range(3):
        assert selectors.knowledge_search(agent_slug="billing", query="refund")
    assert len(built) == 1  # per set of articles, not per search
    article = KnowledgeArticle.objects.filter(agent__slug="billing").first()
    article.body += "\n\nOne more sentence."
    article.save()
    selectors.knowledge_search(agent_slug="billing", query="refund")
    assert len(built) == 2
