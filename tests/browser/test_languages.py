"""The chat page and the widget in each language, in a real Chromium (docs/widget.md,
"Languages"): the page's words, its scripts' words, `<html lang>`, the offline model's
reply, and Arabic laid out right to left.

The browser's language comes from Playwright's `locale` (navigator.language and
Accept-Language alike); the widget's `data-locale` overrides it.

Run with: .venv/bin/python -m pytest -m browser -p no:asyncio -p no:xdist tests/browser/test_languages.py
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from .test_chat_browser import ASSISTANT, send_with_enter
from .test_widget_browser import WIDGET_STATE, HostSite, chat_frame, poll, wait_ready, widget_page

pytestmark = pytest.mark.browser

SITE_KEY = "lang-shop"

# What each language shows: the new-conversation button (template), the status once
# online (the scripts' catalog), the composer's placeholder, a greeting to send and the
# start of the offline model's answer to it.
WORDS = {
    "en": {
        "new": "New conversation",
        "online": "Online",
        "placeholder": "Message Super Orchestrator…",
        "widget_placeholder": "Type your message…",
        "open": "Open chat",
        "hello": "Hello",
        "reply": "Hello! I'm",
    },
    "de": {
        "new": "Neue Unterhaltung",
        "online": "Online",
        "placeholder": "Nachricht an Super Orchestrator…",
        "widget_placeholder": "Ihre Nachricht…",
        "open": "Chat öffnen",
        "hello": "Hallo",
        "reply": "Hallo! Ich bin",
    },
    "fr": {
        "new": "Nouvelle conversation",
        "online": "En ligne",
        "placeholder": "Message à Super Orchestrator…",
        "widget_placeholder": "Écrivez votre message…",
        "open": "Ouvrir le chat",
        "hello": "Bonjour",
        "reply": "Bonjour ! Je suis",
    },
    "es": {
        "new": "Nueva conversación",
        "online": "En línea",
        "placeholder": "Mensaje para Super Orchestrator…",
        "widget_placeholder": "Escribe tu mensaje…",
        "open": "Abrir el chat",
        "hello": "Hola",
        "reply": "¡Hola! Soy",
    },
}
# The loader's state (tests/browser/test_widget_browser.py) once its launcher shows.
SHOWN_LAUNCHER = (
    f"() => {{ const s = ({WIDGET_STATE.strip()})(); return s && s.launcher.shown && s; }}"
)
BROWSER_LOCALE = {"en": "en-US", "de": "de-DE", "fr": "fr-FR", "es": "es-ES"}


@pytest.fixture(scope="module")
def host() -> Iterator[HostSite]:
    site = HostSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def shop(chat_server, host: HostSite) -> str:
    spec = {"name": "Language shop", "allowed_origins": host.origin}
    out = chat_server.django(
        "import json\n"
        "from chat.models import Site\n"
        f"site, _ = Site.objects.update_or_create(key={SITE_KEY!r}, defaults=json.loads({json.dumps(json.dumps(spec))}))\n"
        "site.full_clean()\n"
        "print(site.key)\n"
    )
    assert out.strip() == SITE_KEY, out
    return SITE_KEY


def host_page(app: str, key: str, locale: str | None) -> str:
    attr = f' data-locale="{html.escape(locale)}"' if locale else ""
    tag = f'<script src="{app}/static/superorch/widget.js" data-site="{key}"{attr} async></script>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>'
        f"<body><h1>Shop</h1>{tag}</body></html>"
    )


def reply_text(page_or_frame) -> str:
    reply = page_or_frame.locator(ASSISTANT).last
    expect(reply.get_by_test_id("feedback-up")).to_be_visible()
    return reply.locator(".so-msg__bubble").inner_text()


# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "de", "fr", "es"])
def test_the_chat_page_speaks_the_browsers_language(new_page, lang):
    words = WORDS[lang]
    page: Page = new_page(locale=BROWSER_LOCALE[lang])
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    expect(page.get_by_test_id("new-conversation")).to_contain_text(words["new"])
    expect(page.get_by_test_id("composer")).to_have_attribute("placeholder", words["placeholder"])
    # The scripts' words (the embedded catalog): the status line once connected.
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
    expect(page.locator(".so-status__text")).to_have_text(words["online"])
    # The offline model answers in the conversation's language (session.start's locale).
    send_with_enter(page, words["hello"])
    assert reply_text(page).startswith(words["reply"])


@pytest.mark.parametrize("lang", ["en", "de", "fr", "es"])
def test_the_widget_speaks_its_data_locale(new_page, chat_server, host, shop, lang):
    words = WORDS[lang]
    # The browser says Spanish (or German); data-locale wins.
    page = widget_page(new_page, locale="de-DE" if lang == "es" else "es-ES")
    page.goto(host.add(f"/lang-{lang}.html", host_page(chat_server.url, shop, lang)))
    wait_ready(page)
    state = poll(page, SHOWN_LAUNCHER)
    assert state["launcher"]["label"] == words["open"]
    assert f"locale={lang}" in state["src"]
    frame = chat_frame(page)
    assert frame.evaluate("() => document.documentElement.lang") == lang
    expect(frame.get_by_test_id("composer")).to_have_attribute(
        "placeholder", words["widget_placeholder"]
    )
    expect(frame.locator(".so-status__text")).to_have_text(words["online"])


def test_the_widget_without_data_locale_follows_navigator_language(
    new_page, chat_server, host, shop
):
    page = widget_page(new_page, locale="fr-CA")
    page.goto(host.add("/lang-browser.html", host_page(chat_server.url, shop, None)))
    wait_ready(page)
    state = poll(page, SHOWN_LAUNCHER)
    assert state["launcher"]["label"] == WORDS["fr"]["open"]
    assert "browser=fr-CA" in state["src"]
    assert chat_frame(page).evaluate("() => document.documentElement.lang") == "fr"


def test_arabic_lays_the_chat_out_right_to_left(new_page, screenshots_dir):
    page: Page = new_page(locale="ar-EG")
    page.goto("/")
    html_el = page.locator("html")
    expect(html_el).to_have_attribute("lang", "ar")
    expect(html_el).to_have_attribute("dir", "rtl")
    expect(page.get_by_test_id("new-conversation")).to_contain_text("محادثة جديدة")
    expect(page.locator(".so-status__text")).to_have_text("متصل")
    composer = page.get_by_test_id("composer")
    composer.fill("مرحبا")
    layout = page.evaluate(
        """() => {
          const box = (sel) => document.querySelector(sel).getBoundingClientRect();
          const input = box('[data-testid="composer"]'), send = box('[data-testid="send"]');
          const clip = document.querySelector('[data-testid="attach"]');
          const form = document.querySelector('[data-testid="composer-form"]');
          const cs = getComputedStyle(form);
          return {
            direction: cs.direction,
            inputDirection: getComputedStyle(document.querySelector('[data-testid="composer"]')).direction,
            sendRight: send.right, inputLeft: input.left, inputRight: input.right,
            formRight: form.getBoundingClientRect().right, formLeft: form.getBoundingClientRect().left,
            paddingRight: parseFloat(cs.paddingRight), paddingLeft: parseFloat(cs.paddingLeft),
            clipLeft: clip ? clip.getBoundingClientRect().left : null,
          };
        }"""
    )
    assert layout["direction"] == "rtl" and layout["inputDirection"] == "rtl", layout
    # The send button is at the line's end: on the left, the text box to its right.
    assert layout["sendRight"] <= layout["inputLeft"], layout
    # The wider padding is at the start of the line: on the right.
    assert layout["paddingRight"] > layout["paddingLeft"], layout
    if layout["clipLeft"] is None:
        assert layout["formRight"] - layout["inputRight"] < layout["inputLeft"] - layout["formLeft"]
    else:  # the paperclip at the line's start: on the right of the text box
        assert layout["clipLeft"] >= layout["inputRight"], layout
    # A message: the user's bubble at the end of the line (left), the reply at its start.
    composer.press("Enter")
    reply = page.locator(ASSISTANT).last
    expect(reply.get_by_test_id("feedback-up")).to_be_visible()
    assert reply_text(page).startswith("مرحبًا! أنا")
    sides = page.evaluate(
        """() => {
          const column = document.querySelector('[data-testid="messages"]').getBoundingClientRect();
          const bubble = (role) => document.querySelector(
            `[data-testid="message"][data-role="${role}"] .so-msg__bubble`).getBoundingClientRect();
          const user = bubble('user'), assistant = bubble('assistant');
          return { column: [column.left, column.right], user: [user.left, user.right],
                   assistant: [assistant.left, assistant.right] };
        }"""
    )
    (col_left, col_right), (user_left, _), (_, assistant_right) = (
        sides["column"],
        sides["user"],
        sides["assistant"],
    )
    assert user_left - col_left < 8, sides  # the user's words on the left
    assert col_right - assistant_right < 8, sides  # the assistant's on the right
    page.screenshot(path=str(screenshots_dir / "languages-arabic-rtl.png"), full_page=True)
