"""The embeddable widget in a real Chromium: host pages on other origins, one live app server.

A small HTTP server in this module plays the customer's website: it serves the host
pages each test writes, on an origin the test sites allow (127.0.0.1:<port>) and on a
stranger origin (127.0.0.1:<another port>) that no site allows. The sites live in the
app server's own database (created through `manage.py shell`).

The loader draws in a CLOSED shadow root, which Playwright cannot pierce: the tests
drive it through the page API (window.SuperOrch), keep a test-only handle on the root
by wrapping Element.prototype.attachShadow in an init script, click the launcher by
its coordinates, and reach the chat iframe through page.frames (its /widget/ URL).

Run with: .venv/bin/python -m pytest -m browser -p no:asyncio tests/browser
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Frame, Page, expect

from chat.services import IDENTITY_INVALID, identity_signature

from .test_chat_browser import (
    ARTICLE,
    ASSISTANT,
    CHARGED_TWICE,
    MESSAGE,
    USER,
    send_with_enter,
    wait_replies,
)

pytestmark = pytest.mark.browser

SECRET = "widget-browser-test-identity-secret-0123456789"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Test-only instrumentation of the host page (top window only): the widget's events,
# every postMessage the host window receives, and a handle on each shadow root attached
# (the loader's is closed, so nothing else can reach it).
HOST_PROBE = """
(() => {
  if (window.top !== window) return;
  const so = (window.__so = { ready: [], messages: [], raw: [], roots: [] });
  addEventListener('superorch:ready', (e) => so.ready.push(e.detail));
  addEventListener('superorch:message', (e) => so.messages.push(e.detail));
  addEventListener('message', (e) => {
    let data;
    try { data = JSON.stringify(e.data); } catch (_) { data = String(e.data); }
    so.raw.push({ origin: e.origin, type: e.data && e.data.type, data });
  });
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attach.call(this, init);
    so.roots.push({ host: this, root });
    return root;
  };
})();
"""

# What the loader shows, read through the shadow-root handle.
WIDGET_STATE = """
() => {
  const entry = window.__so.roots.find((r) => r.host.id === 'superorch-widget');
  if (!entry) return null;
  const r = entry.root;
  const launcher = r.querySelector('[part="launcher"]');
  const badge = r.querySelector('[part="badge"]');
  const panel = r.querySelector('[part="panel"]');
  const iframe = r.querySelector('iframe');
  const box = (n) => {
    const b = n.getBoundingClientRect();
    return { x: b.x, y: b.y, width: b.width, height: b.height };
  };
  const shown = (n) => !n.hidden && getComputedStyle(n).display !== 'none' && n.getClientRects().length > 0;
  const lb = box(launcher);
  const at = (b) => (b.width ? document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2) : null);
  const described = r.getElementById(launcher.getAttribute('aria-describedby') || '');
  return {
    hosts: document.querySelectorAll('#superorch-widget').length,
    roots: window.__so.roots.length,
    launcher: {
      shown: shown(launcher),
      box: lb,
      onTop: at(lb) === entry.host,
      label: launcher.getAttribute('aria-label'),
      expanded: launcher.getAttribute('aria-expanded'),
      description: described ? described.textContent : null,
    },
    badge: { shown: shown(badge), text: badge.textContent },
    panel: {
      visible: getComputedStyle(panel).visibility === 'visible',
      box: box(iframe),
      onTop: at(box(iframe)) === entry.host,
    },
    src: iframe.src,
    viewport: { width: innerWidth, height: innerHeight },
  };
}
"""

# Records the reply's text length after every DOM change in the frame's log.
WATCH_STREAM = """
() => {
  window.__stream = [];
  const log = document.querySelector('[data-testid="messages"]');
  new MutationObserver(() => {
    const msg = log.querySelector('[data-testid="message"][data-role="assistant"]');
    if (!msg) return;
    const bubble = msg.querySelector('.so-msg__bubble');
    window.__stream.push({
      len: bubble ? bubble.textContent.length : 0,
      streaming: msg.classList.contains('so-msg--streaming'),
    });
  }).observe(log, { subtree: true, childList: true, characterData: true, attributes: true });
}
"""

# Every computed style of the host page's own elements, and the page's size.
HOST_STYLES = """function () {
  const out = { count: document.querySelectorAll('*:not(script)').length,
                size: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
                attrs: [document.documentElement.getAttribute('style'), document.body.getAttribute('style'),
                        document.documentElement.className, document.body.className] };
  for (const el of document.querySelectorAll('html, body, [data-probe]')) {
    const cs = getComputedStyle(el);
    const styles = {};
    for (let i = 0; i < cs.length; i++) styles[cs[i]] = cs.getPropertyValue(cs[i]);
    out[el.dataset.probe || el.tagName] = styles;
  }
  return out;
}"""

HOSTILE_CSS = """
* { color: red !important; font-size: 40px !important; line-height: 3 !important;
    box-sizing: content-box !important; z-index: 2147483647 !important; }
div { display: none !important; }
iframe { display: none !important; width: 0 !important; height: 0 !important; }
button { position: fixed !important; inset: 0 auto auto 0 !important; opacity: 0 !important; }
"""


# ---------------------------------------------------------------------------
# The customer's website and the sites


class HostSite:
    """Serves the pages tests add, on an allowed origin and on a stranger origin."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self.servers: list[ThreadingHTTPServer] = []
        self.origin = self._serve()
        self.stranger_origin = self._serve()

    def _serve(self) -> str:
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/favicon.ico":
                    self.send_response(204)
                    self.end_headers()
                    return
                if path not in pages:
                    self.send_error(404)
                    return
                body, content_type, headers = pages[path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    def add(
        self,
        path: str,
        body: str,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> str:
        self.pages[path] = (body.encode(), content_type, headers or {})
        return self.origin + path

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@dataclass
class Sites:
    widget: str  # allows the host origin
    closed: str  # allows no other origin
    verified: str  # allows the host origin, requires verified users (secret: SECRET)


@pytest.fixture(scope="session")
def host() -> Iterator[HostSite]:
    site = HostSite()
    yield site
    site.close()


@pytest.fixture(scope="session")
def sites(chat_server, host: HostSite) -> Sites:
    keys = Sites(widget="wt-shop", closed="wt-closed", verified="wt-verified")
    specs = [
        {"key": keys.widget, "name": "Widget test shop", "allowed_origins": host.origin},
        {"key": keys.closed, "name": "Widget test, no origins", "allowed_origins": ""},
        {
            "key": keys.verified,
            "name": "Widget test, verified users",
            "allowed_origins": host.origin,
            "require_verified": True,
            "identity_secret": SECRET,
        },
    ]
    out = chat_server.django(
        "import json\n"
        "from chat.models import Site\n"
        f"for spec in json.loads({json.dumps(json.dumps(specs))}):\n"
        "    site, _ = Site.objects.update_or_create(key=spec.pop('key'), defaults=spec)\n"
        "    site.full_clean()\n"
        "    print(site.key, site.origin_list)\n"
    )
    assert out.count("\n") == 3, out
    return keys


def host_html(
    app: str, key: str, *, head: str = "", body: str = "", loaders: int = 1, after: str = ""
) -> str:
    tag = f'<script src="{app}/static/superorch/widget.js" data-site="{html.escape(key)}" async></script>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Acme shop</title>{head}</head><body>"
        '<h1 id="title" data-probe="title">Acme shop</h1>'
        '<p id="para" data-probe="para">Our products, <a href="#" data-probe="link">prices</a>.</p>'
        '<div id="box" data-probe="box">A box</div>'
        '<button type="button" data-probe="button">Buy</button>'
        f"{body}{tag * loaders}{after}</body></html>"
    )


# ---------------------------------------------------------------------------
# Helpers


def widget_page(new_page, **context_kwargs) -> Page:
    page = new_page(**context_kwargs)
    page.add_init_script(HOST_PROBE)
    return page


def poll(page: Page, expression: str, arg=None, timeout: float = 10.0):
    """page.evaluate until truthy (works whatever the host page's CSP); returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {expression} (last: {value!r})")
        page.wait_for_timeout(50)


def wait_ready(page: Page, count: int = 1) -> list[dict]:
    """Wait for `count` superorch:ready events; returns their details."""
    return poll(
        page, "(n) => window.__so && window.__so.ready.length >= n && window.__so.ready", count
    )


def widget_state(page: Page) -> dict:
    return page.evaluate(WIDGET_STATE)


def chat_frame(page: Page, timeout: float = 10.0) -> Frame:
    deadline = time.monotonic() + timeout
    while True:
        frames = [
            f
            for f in page.frames
            if f is not page.main_frame and "/widget/" in f.url and not f.is_detached()
        ]
        if frames:
            return frames[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no widget frame in {[f.url for f in page.frames]}")
        page.wait_for_timeout(50)


def click_launcher(page: Page) -> None:
    """A real click, at the launcher's place on the screen."""
    launcher = poll(
        page,
        f"() => {{ const s = ({WIDGET_STATE})(); return s && s.launcher.shown && s.launcher; }}",
    )
    assert launcher["onTop"], launcher
    box = launcher["box"]
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def is_open(page: Page) -> bool:
    return page.evaluate("() => window.SuperOrch.isOpen()")


def unread(page: Page) -> int:
    return page.evaluate("() => window.SuperOrch.unread()")


def frame_state(frame: Frame) -> dict:
    return frame.evaluate("() => window.SuperOrchChat.state")


# ---------------------------------------------------------------------------


def test_widget_on_another_origin_chats_and_keeps_history(
    new_page, chat_server, host, sites, screenshots_dir
):
    url = host.add("/shop", host_html(chat_server.url, sites.widget))
    page = widget_page(new_page)
    page.goto(url)

    conversation = wait_ready(page)[0]["conversation"]
    assert UUID.match(conversation), conversation
    state = poll(
        page, f"() => {{ const s = ({WIDGET_STATE})(); return s && s.launcher.shown && s; }}"
    )
    assert state["hosts"] == 1 and state["roots"] == 1, state
    # The frame's address names the host page's language (?browser=, docs/widget.md).
    assert state["src"].split("?")[0] == f"{chat_server.url}/widget/{sites.widget}/"
    assert state["launcher"]["label"] == "Open chat"
    assert state["launcher"]["expanded"] == "false"
    assert not state["badge"]["shown"]
    assert not state["panel"]["visible"]
    # Bottom-right corner of the viewport.
    box, vp = state["launcher"]["box"], state["viewport"]
    assert box["width"] == box["height"] == 56, box
    assert vp["width"] - 100 < box["x"] + box["width"] <= vp["width"], (box, vp)
    assert vp["height"] - 100 < box["y"] + box["height"] <= vp["height"], (box, vp)
    assert not is_open(page)

    click_launcher(page)
    assert is_open(page)
    state = poll(page, f"() => {{ const s = ({WIDGET_STATE})(); return s.panel.visible && s; }}")
    assert state["launcher"]["expanded"] == "true"
    assert state["panel"]["onTop"], state["panel"]
    assert state["panel"]["box"]["width"] >= 300 and state["panel"]["box"]["height"] >= 400

    frame = chat_frame(page)
    expect(frame.locator("#superorch")).to_have_attribute("data-mode", "widget")
    expect(frame.locator("#superorch")).to_have_attribute("data-open", "true")
    expect(frame.get_by_test_id("status")).to_have_attribute("data-state", "online")
    assert frame_state(frame)["conversation"] == conversation
    # A person is one click away in the widget's header too.
    expect(frame.get_by_test_id("talk-to-person")).to_be_visible()

    frame.evaluate(WATCH_STREAM)
    send_with_enter(frame, CHARGED_TWICE)
    expect(frame.locator(USER)).to_have_count(1)
    reply = wait_replies(frame, 1)
    expect(reply).to_have_attribute("data-agent", "billing")
    expect(reply.locator(".so-msg__name")).to_have_text("Billing")
    expect(reply.locator(".so-msg__bubble strong", has_text=ARTICLE)).to_have_count(1)
    final_len = len(reply.locator(".so-msg__bubble").text_content())
    samples = frame.evaluate("() => window.__stream")
    growing = sorted({s["len"] for s in samples if s["streaming"] and 0 < s["len"] < final_len})
    assert len(growing) > 3, f"reply did not stream (lengths seen while streaming: {growing})"

    # The host page heard of the reply: once, with the agent.
    poll(page, "() => window.__so.messages.length")
    page.wait_for_timeout(200)  # a duplicate would come right after
    messages = page.evaluate("() => window.__so.messages")
    assert len(messages) == 1, messages
    reply_state = frame_state(frame)["messages"][1]
    assert messages[0]["id"] == reply_state["id"]
    assert messages[0]["role"] == "assistant"
    assert messages[0]["agent"] == {"slug": "billing", "name": "Billing"}
    assert ARTICLE in messages[0]["text"]
    assert unread(page) == 0  # it arrived while open
    page.screenshot(path=str(screenshots_dir / "widget.png"))

    # The conversation token stays in the frame's origin: never posted to the host page.
    token = frame.evaluate("(k) => localStorage.getItem(k)", f"superorch:token:{sites.widget}")
    assert token and len(token) >= 32
    assert (
        page.evaluate("(k) => localStorage.getItem(k)", f"superorch:token:{sites.widget}") is None
    )
    raw = page.evaluate("() => window.__so.raw")
    assert {r["origin"] for r in raw} == {chat_server.url}, raw
    assert {r["type"] for r in raw} == {"loaded", "ready", "message"}, raw
    assert not [r for r in raw if token in r["data"]], "the token was posted to the host page"

    # Reload the host page: same conversation, and the history is there.
    page.reload()
    assert wait_ready(page)[0]["conversation"] == conversation
    page.evaluate("() => window.SuperOrch.open()")
    assert is_open(page)
    frame = chat_frame(page)
    expect(frame.locator(MESSAGE)).to_have_count(2)
    expect(frame.locator(USER).locator(".so-msg__bubble")).to_have_text(CHARGED_TWICE)
    restored = frame.locator(ASSISTANT)
    expect(restored).to_have_attribute("data-agent", "billing")
    expect(restored.locator(".so-msg__name")).to_have_text("Billing")
    expect(restored.locator(".so-msg__bubble strong", has_text=ARTICLE)).to_have_count(1)
    # History is not announced again as new replies.
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__so.messages") == []
    assert unread(page) == 0


def test_unread_badge_counts_a_reply_while_closed(new_page, chat_server, host, sites):
    url = host.add("/unread", host_html(chat_server.url, sites.widget))
    page = widget_page(new_page)
    page.goto(url)
    wait_ready(page)
    frame = chat_frame(page)

    # Open with the launcher, close with the frame's own close button.
    click_launcher(page)
    assert is_open(page)
    frame.get_by_test_id("widget-close").click()
    poll(page, "() => !window.SuperOrch.isOpen()")
    expect(frame.locator("#superorch")).to_have_attribute("data-open", "false")
    state = poll(page, f"() => {{ const s = ({WIDGET_STATE})(); return !s.panel.visible && s; }}")
    assert state["launcher"]["expanded"] == "false"
    assert not state["badge"]["shown"] and unread(page) == 0

    # A reply arrives while the panel is closed.
    frame.evaluate("(text) => window.SuperOrchChat.send(text)", CHARGED_TWICE)
    wait_replies(frame, 1)
    count = poll(page, "() => window.SuperOrch.unread()")
    replies = [m for m in frame_state(frame)["messages"] if m["role"] == "assistant"]
    assert count == len(replies) == 1, (count, replies)
    state = widget_state(page)
    assert state["badge"] == {"shown": True, "text": "1"}, state["badge"]
    assert state["launcher"]["description"] == "Unread messages: 1"
    assert not is_open(page)

    # Opening resets it.
    click_launcher(page)
    assert is_open(page)
    assert unread(page) == 0
    state = widget_state(page)
    assert not state["badge"]["shown"], state["badge"]
    assert state["launcher"]["description"] == ""

    # A reply that arrives while open is not unread.
    send_with_enter(frame, "How do I reset my password?")
    wait_replies(frame, 2)
    poll(page, "() => window.__so.messages.length >= 2")
    assert unread(page) == 0
    assert not widget_state(page)["badge"]["shown"]


def test_reset_starts_a_new_conversation(new_page, chat_server, host, sites):
    url = host.add("/reset", host_html(chat_server.url, sites.widget))
    page = widget_page(new_page)
    page.goto(url)
    first = wait_ready(page)[0]["conversation"]
    page.evaluate("() => window.SuperOrch.open()")
    frame = chat_frame(page)
    send_with_enter(frame, CHARGED_TWICE)
    wait_replies(frame, 1)
    token_key = f"superorch:token:{sites.widget}"
    old_token = frame.evaluate("(k) => localStorage.getItem(k)", token_key)
    assert old_token

    page.evaluate("() => window.SuperOrch.reset()")
    ready = wait_ready(page, 2)
    second = ready[1]["conversation"]
    assert UUID.match(second) and second != first, ready
    expect(frame.locator(MESSAGE)).to_have_count(0)
    expect(frame.get_by_test_id("start")).to_be_visible()
    expect(frame.get_by_test_id("status")).to_have_attribute("data-state", "online")
    state = frame_state(frame)
    assert state["conversation"] == second
    assert state["messages"] == [] and state["outbox"] == []
    new_token = frame.evaluate("(k) => localStorage.getItem(k)", token_key)
    assert new_token and new_token != old_token
    assert unread(page) == 0

    # The new conversation is the one that comes back.
    page.reload()
    assert wait_ready(page)[0]["conversation"] == second
    frame = chat_frame(page)
    expect(frame.get_by_test_id("status")).to_have_attribute("data-state", "online")
    assert frame_state(frame)["messages"] == []


def test_not_allowed_origin_cannot_frame_the_widget(new_page, chat_server, host, sites):
    log_start = chat_server.log_size()
    host.add("/stranger", host_html(chat_server.url, sites.widget))
    cases = {
        # A host origin the site does not list (another port: another origin).
        "not listed": (host.stranger_origin + "/stranger", sites.widget),
        # A site with an empty allowed list, on an origin that other sites allow.
        "empty list": (host.add("/closed", host_html(chat_server.url, sites.closed)), sites.closed),
    }
    pages = {}
    for name, (url, _) in cases.items():
        page = widget_page(new_page)
        page.expected_console.append("frame-ancestors")  # Chromium reports the refusal
        page.goto(url)
        pages[name] = page
    # Longer than the frame's own 3 s wait for `init`: a frame that ran would be ready by now.
    next(iter(pages.values())).wait_for_timeout(3500)

    for name, page in pages.items():
        key = cases[name][1]
        assert page.evaluate("() => !!(window.SuperOrch && window.SuperOrch.open)"), name
        state = widget_state(page)
        src = state["src"].split("?")[0]  # ?browser=: the host page's language
        assert state["hosts"] == 1 and src.endswith(f"/widget/{key}/"), (name, state)
        assert not state["launcher"]["shown"], (name, state)
        # The frame holds the browser's error page, not our document.
        (frame,) = [f for f in page.frames if f is not page.main_frame]
        assert frame.url.startswith("chrome-error:"), (name, frame.url)
        try:
            ours = frame.evaluate("() => !!document.getElementById('superorch')")
        except Exception:  # an error page may not even take a script
            ours = False
        assert not ours, f"{name}: the chat UI was framed"
        assert page.evaluate("() => window.__so.raw") == [], f"{name}: the frame posted messages"
        assert page.evaluate("() => window.__so.ready") == [], f"{name}: superorch:ready fired"
        # Nothing opens either.
        page.evaluate("() => window.SuperOrch.open()")
        page.wait_for_timeout(100)
        assert not is_open(page), name
        assert not widget_state(page)["panel"]["visible"], name

    # The server did serve both frames: it was the browser that refused them.
    log = chat_server.log(since=log_start)
    for key in (sites.widget, sites.closed):
        assert re.search(rf"GET /widget/{key}/(\?\S*)? 200", log), log


def test_identify_with_a_valid_hash_and_forged_hash(new_page, chat_server, host, sites):
    def identify_page(path: str, user: dict | None) -> Page:
        snippet = ""
        if user is not None:
            snippet = (
                '<script>window.addEventListener("load", () => '
                f"SuperOrch.identify({json.dumps(user)}));</script>"
            )
        url = host.add(path, host_html(chat_server.url, sites.verified, after=snippet))
        page = widget_page(new_page)
        page.goto(url)
        return page

    ada = {"id": "ada-42", "name": "Ada Lovelace", "email": "ada@example.com"}
    mallory = {"id": "mallory-7", "name": "Mallory", "email": "m@example.com"}
    valid = identify_page(
        "/verified", {**ada, "hash": identity_signature(secret=SECRET, user_id=ada["id"])}
    )
    forged = identify_page(
        "/forged",
        # Well formed, but signed with another secret (or for another user id).
        {**mallory, "hash": identity_signature(secret="not-the-secret", user_id=mallory["id"])},
    )
    stolen = identify_page(
        "/stolen", {**mallory, "hash": identity_signature(secret=SECRET, user_id=ada["id"])}
    )
    unsigned = identify_page("/unsigned", None)

    conversation = wait_ready(valid)[0]["conversation"]
    frame = chat_frame(valid)
    expect(frame.get_by_test_id("status")).to_have_attribute("data-state", "online")
    expect(frame.get_by_test_id("error")).to_be_hidden()
    assert frame_state(frame)["conversation"] == conversation
    # Page context for the agents goes to the same conversation (checked in the database below).
    valid.evaluate("() => window.SuperOrch.setContext({plan: 'pro', page: '/verified'})")

    for name, page in (("forged", forged), ("stolen", stolen), ("unsigned", unsigned)):
        frame = chat_frame(page)
        alert = frame.get_by_test_id("error")
        expect(alert).to_be_visible()
        expect(alert.locator(".so-alert__text")).to_have_text(str(IDENTITY_INVALID))
        expect(frame.get_by_test_id("status")).to_have_attribute("data-state", "closed")
        assert not frame_state(frame)["ready"], name
    valid.wait_for_timeout(1000)  # no retry loop brings a session later
    for name, page in (("forged", forged), ("stolen", stolen), ("unsigned", unsigned)):
        assert page.evaluate("() => window.__so.ready") == [], name
        expect(chat_frame(page).get_by_test_id("status")).to_have_attribute("data-state", "closed")

    rows = json.loads(
        chat_server.django(
            "import json\n"
            "from chat.models import Conversation\n"
            f"rows = Conversation.objects.filter(site__key={sites.verified!r})"
            ".values('uuid', 'user_id', 'user_name', 'user_email', 'user_verified', 'page_context')\n"
            "print(json.dumps([{**r, 'uuid': str(r['uuid'])} for r in rows]))\n"
        )
        .strip()
        .splitlines()[-1]
    )
    mine = [r for r in rows if r["uuid"] == conversation]
    assert mine == [
        {
            "uuid": conversation,
            "user_id": ada["id"],
            "user_name": ada["name"],
            "user_email": ada["email"],
            "user_verified": True,
            "page_context": {"plan": "pro", "page": "/verified"},
        }
    ], rows
    assert not [r for r in rows if r["user_id"] == mallory["id"]], rows
    assert [r["uuid"] for r in rows] == [conversation], "a refused visitor got a conversation"


def test_loader_does_not_touch_host_styles(new_page, chat_server, host, sites):
    app = chat_server.url
    host.add("/hostile.css", HOSTILE_CSS, "text/css")
    host.add(
        "/snapshot.js",
        f"window.__before = ({HOST_STYLES})();",
        "text/javascript",
    )
    # A strict host CSP: the loader's styles must not need inline styles, nor its code eval.
    csp = (
        f"default-src 'self'; script-src 'self' {app}; style-src 'self'; frame-src {app}; "
        "require-trusted-types-for 'script'"
    )
    url = host.add(
        "/hostile",
        host_html(
            app,
            sites.widget,
            head='<link rel="stylesheet" href="/hostile.css">',
            # Runs before the (async) loaders can: it is parser-blocking and comes first.
            body='<script src="/snapshot.js"></script>',
            loaders=2,
        ),
        headers={"Content-Security-Policy": csp},
    )
    page = widget_page(new_page)
    page.goto(url)
    wait_ready(page)

    before = page.evaluate("() => window.__before")
    assert before["para"]["color"] == "rgb(255, 0, 0)" and before["box"]["display"] == "none"
    after = page.evaluate(f"() => ({HOST_STYLES})()")
    assert after["count"] == before["count"] + 1, "the loader should add exactly one element"
    before["count"] = after["count"]
    assert after == before, [
        (el, prop, before.get(el, {}).get(prop), value)
        for el, styles in after.items()
        if isinstance(styles, dict)
        for prop, value in styles.items()
        if before.get(el, {}).get(prop) != value
    ][:20] or (before, after)

    # Included twice: one widget.
    state = poll(
        page, f"() => {{ const s = ({WIDGET_STATE})(); return s && s.launcher.shown && s; }}"
    )
    assert state["hosts"] == 1 and state["roots"] == 1, state
    assert len([f for f in page.frames if "/widget/" in f.url]) == 1

    # The hostile CSS does not reach the launcher: normal size, in the corner, on top.
    box, vp = state["launcher"]["box"], state["viewport"]
    assert box["width"] == box["height"] == 56, box
    assert vp["width"] - 100 < box["x"] + box["width"] <= vp["width"], (box, vp)
    click_launcher(page)
    assert is_open(page)
    state = poll(page, f"() => {{ const s = ({WIDGET_STATE})(); return s.panel.visible && s; }}")
    assert state["panel"]["onTop"] and 300 <= state["panel"]["box"]["width"] <= 380, state["panel"]
    assert state["panel"]["box"]["height"] >= 400, state["panel"]

    frame = chat_frame(page)
    send_with_enter(frame, CHARGED_TWICE)
    reply = wait_replies(frame, 1)
    expect(reply).to_have_attribute("data-agent", "billing")
    bubble_color = reply.locator(".so-msg__bubble").evaluate("(n) => getComputedStyle(n).color")
    assert bubble_color != "rgb(255, 0, 0)"
    poll(page, "() => window.__so.messages.length === 1")
    assert len(page.evaluate("() => window.__so.ready")) == 1  # one frame, one session

    # Opened and chatting: still nothing changed on the host page.
    after_open = page.evaluate(f"() => ({HOST_STYLES})()")
    assert after_open == after
