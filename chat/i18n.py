"""The chat's languages (docs/widget.md, "Languages"): which one a page or a session
speaks, its text direction, the site's greeting and suggestions in it, and the strings
the page's scripts show.

The language is chosen, first match wins, from
1. an explicit choice: `session.start`'s `locale`, the widget's `data-locale`;
2. the site's language setting (`Site.language`; blank: follow the visitor);
3. the visitor's browser: the widget's `navigator.language`, then `Accept-Language`;
4. `settings.LANGUAGE_CODE` (English).
A well-formed tag the chat has no translation for ("ja") falls through to the next step;
a regional variant uses its language ("de-AT" is German).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# RFC 5646 recommends supporting tags of at least 35 characters; longer ones are refused.
LOCALE_CHARS = 35
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")

GREETING_CHARS = 300
SUGGESTION_CHARS = 200
SUGGESTIONS_MAX = 8


def is_language_tag(value: str) -> bool:
    """A BCP 47-looking tag: a 2-3 letter language and optional subtags (`de`, `fr-CA`)."""
    return len(value) <= LOCALE_CHARS and bool(_TAG.match(value))


def supported(tag: str | None) -> str | None:
    """The chat's language for `tag` ("de-AT" -> "de"), or None when it has none."""
    if not tag or not is_language_tag(tag):
        return None
    try:
        return translation.get_supported_language_variant(tag.replace("_", "-").lower())
    except LookupError:
        return None


def accept_language_pick(header: str) -> str | None:
    """The first language of an Accept-Language header (in order of quality) the chat has."""
    from django.utils.translation.trans_real import parse_accept_lang_header

    for tag, _quality in parse_accept_lang_header(header[:1000]):
        if tag == "*":
            break
        code = supported(tag)
        if code:
            return code
    return None


def locale_negotiate(
    *,
    requested: str | None = None,
    site_language: str = "",
    browser: str | None = None,
    accept_language: str = "",
) -> str:
    """The language to use, by the order in the module's docstring."""
    for candidate in (requested, site_language, browser):
        code = supported(candidate)
        if code:
            return code
    return accept_language_pick(accept_language) or settings.LANGUAGE_CODE


def text_direction(code: str) -> str:
    """`rtl` or `ltr`, for the page's `dir`."""
    try:
        return "rtl" if translation.get_language_info(code)["bidi"] else "ltr"
    except KeyError:
        return "ltr"


def language_choices() -> list[tuple[str, str]]:
    return [(code, name) for code, name in settings.LANGUAGES]


# --- The site's words in a language -----------------------------------------------------

# The greetings and suggestions a site starts with (the model's default, and the demo
# site's from chat.services.demo_site_ensure): shown translated while a site keeps them.
STOCK_GREETINGS = {
    "Hi! How can we help?": _("Hi! How can we help?"),
    "Hi! I'm Super Orchestrator. How can our team help you today?": _(
        "Hi! I'm Super Orchestrator. How can our team help you today?"
    ),
}
STOCK_SUGGESTIONS = {
    "I was charged twice for my subscription": _("I was charged twice for my subscription"),
    "The app crashes on login": _("The app crashes on login"),
    "Compare the Pro and Business plans": _("Compare the Pro and Business plans"),
    "How do I reset my password?": _("How do I reset my password?"),
}


@dataclass(frozen=True)
class SiteWords:
    greeting: str
    suggestions: list[str]


def site_words(*, greeting: str, suggestions: Any, translations: Any, locale: str) -> SiteWords:
    """The greeting and suggestions in `locale`: the site's own words for it
    (`Site.translations`), else its default words (translated while they are the stock ones)."""
    own = translations.get(locale) if isinstance(translations, dict) else None
    own = own if isinstance(own, dict) else {}
    listed = [s for s in suggestions or [] if isinstance(s, str)]
    with translation.override(locale):
        words = own.get("greeting") or str(STOCK_GREETINGS.get(greeting, greeting))
        chosen = own.get("suggestions") or [str(STOCK_SUGGESTIONS.get(s, s)) for s in listed]
    return SiteWords(greeting=words, suggestions=[s for s in chosen if isinstance(s, str)])


def validate_site_translations(value: Any) -> None:
    """`Site.translations`: {"de": {"greeting": "...", "suggestions": ["...", ...]}, ...}."""
    if value in (None, ""):
        return
    if not isinstance(value, dict):
        raise ValidationError(
            'Write an object with one entry per language, e.g. {"de": {"greeting": "Hallo!"}}.'
        )
    codes = dict(settings.LANGUAGES)
    for code, words in value.items():
        if code not in codes:
            raise ValidationError(
                f"“{code}” is not one of the chat's languages ({', '.join(codes)})."
            )
        if not isinstance(words, dict):
            raise ValidationError(
                f'The entry for {code} must be an object: {{"greeting": ..., "suggestions": [...]}}.'
            )
        unknown = set(words) - {"greeting", "suggestions"}
        if unknown:
            raise ValidationError(
                f"The entry for {code} may only have a greeting and suggestions, "
                f"not {', '.join(sorted(unknown))}."
            )
        _validate_words(code, words)


def _validate_words(code: str, words: dict[str, Any]) -> None:
    greeting = words.get("greeting", "")
    if not isinstance(greeting, str) or len(greeting) > GREETING_CHARS:
        raise ValidationError(
            f"The greeting for {code} must be text of at most {GREETING_CHARS} characters."
        )
    suggestions = words.get("suggestions", [])
    if (
        not isinstance(suggestions, list)
        or len(suggestions) > SUGGESTIONS_MAX
        or not all(isinstance(s, str) and 0 < len(s) <= SUGGESTION_CHARS for s in suggestions)
    ):
        raise ValidationError(
            f"The suggestions for {code} must be a list of at most {SUGGESTIONS_MAX} texts, "
            f"each 1 to {SUGGESTION_CHARS} characters."
        )


# --- The strings the page's scripts show --------------------------------------------------

# static/superorch/chat/*.js read these from the page (json_script "so-strings") by key:
# t("retry"). Placeholders are {name}, filled in by the script.
PAGE_STRINGS = {
    # state.js
    "close_4400": _("The chat could not start a session. Please reload the page."),
    "close_4401": _("We could not verify who you are. Please sign in again and reload the page."),
    "close_4403": _("Chat is not available on this site right now."),
    "close_4429": _("Too many messages in a short time. We will reconnect shortly."),
    "error_rate_limited": _("You are sending messages too quickly. Please wait a moment."),
    "error_too_large": _("That message is too long."),
    "error_model_unavailable": _(
        "We could not reach the assistant. Your message is saved; we will retry."
    ),
    "error_internal": _("Something went wrong on our side. Please try again."),
    "error_default": _("Something went wrong. Please try again."),
    "still_working": _("Still working on it…"),
    "agent_joined": _("{name} has joined"),
    "agent_joined_help": _("{name} has joined to help"),
    "working": _("Working on it…"),
    "workflow": _("Workflow"),
    "workflow_retrying": _("{name}: retrying a step ({done} of {total} done)…"),
    "workflow_steps": _("{name}: {done} of {total} steps done…"),
    "queued": _("Saved: it will be answered as soon as the assistant is back."),
    "stopped": _("Stopped"),
    "reply_failed": _("The reply could not be completed."),
    "approval_waiting": _("An action waits for your approval."),
    "typing": _("{name} is typing…"),
    # main.js, theme.js
    "offline": _("You are offline right now. Please try again when the chat reconnects."),
    "theme_to_dark": _("Switch to dark theme"),
    "theme_to_light": _("Switch to light theme"),
    # view.js
    "status_connecting": _("Connecting…"),
    "status_online": _("Online"),
    "status_reconnecting": _("Reconnecting…"),
    "status_closed": _("Disconnected"),
    "support_team": _("Support team"),
    "you_said": _("You said:"),
    "team_tag": pgettext_lazy("a message's tag: written by staff", "Team"),
    "not_sent": _("Not sent"),
    "sending": _("Sending…"),
    "waiting_connection": _("Waiting for connection…"),
    "rate_reply": _("Rate this reply"),
    "good_reply": _("Good reply"),
    "bad_reply": _("Bad reply"),
    "good_reply_from": _("Good reply from {name}"),
    "bad_reply_from": _("Bad reply from {name}"),
    "retry_label": _("Retry: send your message again"),
    "retry": _("Retry"),
    "approved": _("Approved"),
    "declined_nothing": _("Declined: nothing was done"),
    "expired_nothing": _("Expired: nothing was done"),
    "approval_by_staff": _("Waiting for our team to approve"),
    "approval_needed": _("Your approval is needed"),
    "approve": _("Approve"),
    "decline": _("Decline"),
    "sending_answer": _("Sending your answer…"),
    "csat_thanks": _("Thank you for your rating ({score}/5)!"),
    # attachments (main.js, state.js, view.js)
    "attach_connecting": _("The chat is still connecting. Please try again in a moment."),
    "attach_too_large": _("That file is too large: the limit is {mb} MB."),
    "upload_failed": _("The file could not be sent. Please check your connection and try again."),
    "attach_sending": _("Sending {name}… {percent}%"),
    "attach_sending_label": _("Sending {name}"),
    "attach_open": _("Open {name}"),
    # widget.js (the loader on the host page gets these from the frame's `loaded`)
    "open_chat": _("Open chat"),
    "chat_title": _("Chat"),
    "unread": _("Unread messages: {count}"),
}


def page_strings(locale: str) -> dict[str, str]:
    with translation.override(locale):
        return {key: str(text) for key, text in PAGE_STRINGS.items()}
