"""Word tokens for keyword matching (knowledge search, article condensing): lower-cased,
stop words dropped, a light suffix stemmer. The router has its own features. And the
plain text of Markdown, for snippets."""

from __future__ import annotations

import html
import re

import nh3
from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark")

_TOKEN = re.compile(r"[a-z0-9]+")
_STOP_WORDS = """
    a an the and or but if of to in on at for with by from is are was were be been
    being i me my we our you your it its this that these those do does did can could
    would should will shall may might must have has had am so just please hi hello
    hey there what how why when where who which not no yes as up out about into than
    then too very
"""
_STOP = frozenset(_STOP_WORDS.split())
_SUFFIXES = ("ing", "ed", "es", "s", "ly", "e")


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def tokenize(text: str) -> list[str]:
    return [stem(w) for w in _TOKEN.findall(text.lower()) if w not in _STOP]


def plain_text(markdown: str) -> str:
    """What a reader sees of a Markdown text, without its markers (a search snippet):
    rendered, every tag dropped, entities decoded, whitespace joined."""
    rendered = nh3.clean(_MARKDOWN.render(markdown), tags=set())
    return " ".join(html.unescape(rendered).split())
