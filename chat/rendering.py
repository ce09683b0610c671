"""Safe HTML for the admin, the staff inbox and the help centre: Markdown (markdown-it js-default, then nh3) for the transcript,
and stored JSON values rendered whatever they hold (docs/security.md: safe rendering)."""

import json
from typing import Any

import nh3
from django.utils.html import format_html
from markdown_it import MarkdownIt

from orchestrator.knowledge import Article, split_sections

from .protocol import Limits, tree_problem

_md = MarkdownIt("js-default", {"linkify": False, "html": False})
# A chat message as the chat shows it (static/superorch/chat/markdown.js: marked with
# `breaks: true`): a line break in a reply is a line break, e.g. after a bold heading.
_md_message = MarkdownIt("js-default", {"linkify": False, "html": False, "breaks": True})


def render_markdown(text: str) -> str:
    return _clean(_md.render(text or ""))


def render_message(text: str) -> str:
    """A chat message (an agent's, staff's or the user's) for the staff inbox and the
    admin's transcript, rendered as the user's chat renders it."""
    return _clean(_md_message.render(text or ""))


def _clean(html: str) -> str:
    return nh3.clean(
        html,
        tags={
            "p",
            "br",
            "strong",
            "em",
            "code",
            "pre",
            "ul",
            "ol",
            "li",
            "a",
            "blockquote",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
            "hr",
        },
        attributes={"a": {"href", "title"}, "code": {"class"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def render_article(title: str, body: str) -> tuple[str, list[dict[str, str]]]:
    """A knowledge article for its help centre page: the lead's safe HTML, and each
    section's heading (plain text, escaped by the template), anchor and safe HTML. The
    anchors are those the offline model's answers link to."""
    lead, sections = split_sections(Article(slug="", title=title, body=body))
    if len(sections) == 1 and not lead and sections[0].heading == title:
        return render_markdown(sections[0].text), []
    return render_markdown(lead), [
        {"heading": s.heading, "anchor": s.anchor, "html": render_markdown(s.text)}
        for s in sections
    ]


# --- JSON fields in the admin -----------------------------------------------------------

SHOWN_CHARS = 5000  # a stored value is shown up to this many characters


def json_from_db(raw: str | None) -> tuple[Any, str]:
    """A JSON field's stored text (read as text, so a value Django's own decoding would
    choke on is still readable) as (value, text to show). `value` is None when the
    stored text is not JSON a page can render (nested deeper than the protocol allows,
    text that is not valid Unicode); the text to show is then the stored text itself,
    with anything unencodable written as an escape. Never raises."""
    if raw is None:
        return None, ""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if value is not None and tree_problem(value, Limits.JSON_DEPTH) is None:
        shown = json.dumps(value, indent=2, ensure_ascii=False)
        return value, _cut(shown)
    return None, _cut(raw.encode("utf-8", "backslashreplace").decode("utf-8"))


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + " …(cut)"


def render_json(raw: str | None) -> str:
    """A stored JSON value as escaped HTML (<pre>), whatever was stored."""
    value, shown = json_from_db(raw)
    note = "" if value is not None or not shown else " (stored as is: not shown as JSON)"
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>{}', shown, note)
