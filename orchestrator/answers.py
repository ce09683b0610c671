"""The offline model's answers from the knowledge base: one passage, a link, a follow-up.

Pure functions over the conversation's text and the search tool's passages (plain dicts,
as `selectors.knowledge_search` returns them and the tool sends them as JSON), shared by
the local model (orchestrator/sdk/providers/local.py) and `answers_eval`.

What was already shown is read from the conversation itself: every answer links to its
section's anchor on the help centre, so a later turn finds those links in the earlier
assistant messages and moves on to a passage not yet shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from .knowledge import trim_words
from .text import tokenize

PASSAGE_WORDS = 100  # the passage itself; the reply adds a title line, a link and a question
CONTEXT_MESSAGES = 2  # earlier user messages added to the query of a follow-up
_RETRY = re.compile(
    r"\b(didn'?t|did not|doesn'?t|does not|don'?t|still|not working|no luck|same (problem|"
    r"issue|error|thing)|tried (that|it|this|those|everything)|what else|anything else|"
    r"other (options?|ideas?|ways?|things?)|next step|nope|not fixed|keeps?|again)\b",
    re.IGNORECASE,
)
_NUMBERED = re.compile(r"^\d+[.)]\s")
# Within this much of the best score, an earlier numbered step of the same article is
# answered first: troubleshooting starts at step 1 unless the question names a later one.
STEP_MARGIN = 0.5


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str


def is_retry(text: str) -> bool:
    """A follow-up that says the last answer did not settle it ("it still crashes")."""
    return bool(_RETRY.search(text))


def search_query(user_text: str, history: Sequence[Turn], note: str = "") -> str:
    """The words to search with: the message itself, plus what it follows on from when it
    is a follow-up ("that didn't work") or too short to search with on its own: the
    previous user messages, or, after a hand-back, the support team's note (their summary
    of the case, which stands for the older messages) and the latest user message."""
    earlier = [t.text for t in history if t.role == "user"][-CONTEXT_MESSAGES:]
    context = [note, *earlier[-1:]] if note else list(reversed(earlier))
    if context and (is_retry(user_text) or len(tokenize(user_text)) < 2):
        return " ".join([user_text, *context])[:500]
    return user_text[:500]


def shown_urls(history: Sequence[Turn]) -> set[str]:
    """Links (section anchors) that earlier answers in this conversation already gave."""
    found: set[str] = set()
    for turn in history:
        if turn.role == "assistant":
            found.update(re.findall(r"\]\((/[^)\s]+)\)", turn.text))
    return found


def pick_passage(
    passages: Sequence[dict[str, Any]], *, user_text: str, history: Sequence[Turn]
) -> dict[str, Any] | None:
    """The passage to answer with: the best one not shown yet; after "that didn't work",
    the next section of the article last shown when the search found it (steps in order)."""
    shown = shown_urls(history)
    unseen = [p for p in passages if p.get("url") not in shown]
    if not unseen:
        return None
    last = _last_shown(passages, history)
    if last is not None and is_retry(user_text):
        following = [p for p in unseen if p["slug"] == last["slug"] and p["index"] > last["index"]]
        if following:
            return min(following, key=lambda p: p["index"])
    return _earliest_step(unseen)


def _earliest_step(unseen: Sequence[dict[str, Any]]) -> dict[str, Any]:
    best = unseen[0]
    if not _NUMBERED.match(best["section"]):
        return best
    close = [
        p
        for p in unseen
        if p["slug"] == best["slug"]
        and _NUMBERED.match(p["section"])
        and p["score"] >= best["score"] - STEP_MARGIN
    ]
    return min(close, key=lambda p: p["index"])


def _last_shown(passages: Sequence[dict[str, Any]], history: Sequence[Turn]) -> dict | None:
    by_url = {p.get("url"): p for p in passages}
    for turn in reversed(history):
        if turn.role != "assistant":
            continue
        for url in re.findall(r"\]\((/[^)\s]+)\)", turn.text):
            if url in by_url:
                return by_url[url]
    return None


def compose(passage: dict[str, Any], *, retry: bool) -> str:
    """The reply: where it comes from, the passage (cut on sentence or list boundaries),
    the link to the full article, and a question that moves the conversation on."""
    text, cut = trim_words(passage["text"], PASSAGE_WORDS)
    steps = bool(_NUMBERED.match(passage["section"])) or bool(re.search(r"^\s*[-*\d]", text, re.M))
    # In the conversation's language (chat.turns.runner); the article itself is as written.
    opening = _("Here's the next thing to try") if retry else _("Here's what our help centre says")
    link = _("Read the rest in the full article") if cut else _("Read the full article")
    follow_up = (
        _("Did that work? If not, tell me what happened and I'll suggest the next step.")
        if steps
        else _("Does that answer your question? If not, tell me a little more.")
    )
    return "\n\n".join(
        [
            f"{opening} (**{passage['title']}**):",
            f"**{passage['section']}**\n{text}",
            f"[{link}]({passage['url']})",
            follow_up,
        ]
    )


def nothing_new(agent_name: str) -> str:
    return _(
        "That's everything the %(agent)s knowledge base has on this, and I've shared "
        "it above. Your messages are saved, so a member of the support team can pick this "
        "up; if you can, tell me the exact error message or what you see on screen."
    ) % {"agent": agent_name}


def answer(
    passages: Sequence[dict[str, Any]],
    *,
    user_text: str,
    history: Sequence[Turn],
    agent_name: str,
) -> str | None:
    """The whole reply, or None when the search found nothing at all."""
    if not passages:
        return None
    chosen = pick_passage(passages, user_text=user_text, history=history)
    if chosen is None:
        return nothing_new(agent_name)
    retry = is_retry(user_text) and bool(shown_urls(history))
    return compose(chosen, retry=retry)
