"""The public help centre: article pages, search, and what it never shows."""

import re

import pytest

from orchestrator.models import AgentProfile, KnowledgeArticle
from orchestrator.selectors import HELP_QUERY_MAX_CHARS
from orchestrator.text import plain_text

HOSTILE = (
    "Intro <script>alert('lead')</script>\n\n"
    "## <img src=x onerror=alert(1)> Steps\n"
    "1. [click](javascript:alert(2)) and <iframe src='https://evil.test'></iframe>\n"
    '2. <a href="https://evil.test" onclick="alert(3)">x</a> **bold**\n'
)


@pytest.fixture
def billing(team):
    return AgentProfile.objects.get(slug="billing")


def test_the_index_lists_published_articles_only(client, billing):
    KnowledgeArticle.objects.create(
        agent=billing, title="Internal draft pricing", body="Secret.", published=False
    )
    response = client.get("/help/")
    assert response.status_code == 200
    assert b"Refund policy" in response.content
    assert b"Internal draft pricing" not in response.content
    assert b'role="search"' in response.content and b'<label for="help-q">' in response.content
    assert b"<main" in response.content


def test_an_article_page_has_its_sections_with_the_anchors_answers_link_to(client, team):
    response = client.get("/help/refund-policy/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Refund policy</h1>" in html
    assert '<h2 id="how-to-request-a-refund">How to request a refund</h2>' in html
    assert "<strong>Settings → Billing → Plan</strong>" in html  # Markdown rendered
    assert "Content-Security-Policy" in response.headers


def test_unknown_and_unpublished_articles_are_404(client, billing):
    assert client.get("/help/no-such-article/").status_code == 404
    KnowledgeArticle.objects.create(agent=billing, title="Hidden", body="x", published=False)
    assert client.get("/help/hidden/").status_code == 404


def test_hostile_article_text_is_escaped_or_removed(client, billing):
    article = KnowledgeArticle.objects.create(
        agent=billing, title="<script>alert('t')</script> Title", body=HOSTILE, tags="x"
    )
    html = client.get(f"/help/{article.slug}/").content.decode()
    assert "<script" not in html.split("</head>")[1]
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt; Title" in html
    main = html.split("<main")[1]
    assert not re.search(r"<(script|iframe|img)\b", main)  # as tags: text is escaped
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", main)  # no event handler attributes
    assert 'href="javascript:' not in main
    assert "&lt;img src=x onerror=alert(1)&gt; Steps</h2>" in main  # a heading is text
    assert "<strong>bold</strong>" in html
    results = client.get("/help/", {"q": "alert steps bold"}).content.decode()
    assert "<script>alert" not in results and "<img" not in results


def test_search_lists_matching_articles_with_a_snippet_and_a_section_link(client, team):
    response = client.get("/help/", {"q": "  refund   timing "})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Results for “refund timing”" in html
    assert 'href="/help/refund-policy/"' in html
    assert 'href="/help/refund-policy/#' in html
    assert html.index("Refund policy") < html.index("Download invoices and receipts")
    assert client.get("/help/", {"q": "zzzz qqqq"}).content.count(b"No articles match") == 1


def test_a_search_that_is_too_long_gets_a_plain_error(client, team):
    response = client.get("/help/", {"q": "refund " * 1500})
    assert response.status_code == 400
    html = response.content.decode()
    assert f"at most {HELP_QUERY_MAX_CHARS} characters" in html
    assert 'role="alert"' in html
    assert html.count("refund") < 100  # the query is not echoed back in full


def test_the_help_centre_shows_no_staff_only_data(client, team):
    billing = AgentProfile.objects.get(slug="billing")
    html = client.get("/help/refund-policy/").content.decode()
    assert billing.instructions[:60] not in html
    assert billing.handoff_description not in html
    assert "routing" not in html.lower()


def test_slugs_stay_unique_when_two_agents_share_a_title(team):
    tech = AgentProfile.objects.get(slug="technical_support")
    article = KnowledgeArticle.objects.create(agent=tech, title="Refund policy", body="x")
    assert article.slug == "refund-policy-2"
    assert article.get_absolute_url() == "/help/refund-policy-2/"
    article.title = "Renamed"
    article.save()
    assert article.slug == "refund-policy-2"  # links in old answers keep working


def test_search_snippets_are_plain_text_without_markdown_markers():
    assert plain_text("- **New:** cancel within **30 days** & [see](https://x.y)") == (
        "New: cancel within 30 days & see"
    )
