"""The chat page in a real Chromium, against a live server running the offline model.

Each test gets a fresh browser context (fresh localStorage), so a new conversation.
Run with: .venv/bin/python -m pytest -m browser -p no:asyncio tests/browser
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

pytestmark = pytest.mark.browser

CHARGED_TWICE = "I was charged twice for my subscription"
ARTICLE = "I was charged twice (duplicate charge)"

MESSAGE = '[data-testid="message"]'
USER = '[data-testid="message"][data-role="user"]'
ASSISTANT = '[data-testid="message"][data-role="assistant"]'

# Records every WebSocket the page opens, so a test can drop the live one.
TRACK_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
})();
"""


def open_chat(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")


def state(page: Page) -> dict:
    return page.evaluate("() => window.SuperOrchChat.state")


def wait_idle(page: Page) -> None:
    """No turn running and no reply streaming."""
    page.wait_for_function(
        "() => { const s = window.SuperOrchChat.state;"
        " return s.status === 'online' && !s.running && s.outbox.length === 0"
        " && s.messages.every((m) => !m.streaming && !m.pending); }"
    )


def wait_replies(page: Page, count: int):
    """Wait until `count` finished assistant replies are shown; returns the last one."""
    replies = page.locator(ASSISTANT)
    expect(replies).to_have_count(count)
    reply = replies.nth(count - 1)
    # Feedback buttons are added once a reply is complete (it has its server id).
    expect(reply.get_by_test_id("feedback-up")).to_be_visible()
    expect(reply).not_to_have_class(re.compile(r"\bso-msg--streaming\b"))
    wait_idle(page)
    return reply


def send_with_enter(page: Page, text: str) -> None:
    composer = page.get_by_test_id("composer")
    composer.fill(text)
    expect(page.get_by_test_id("send")).to_be_enabled()
    composer.press("Enter")
    expect(composer).to_have_value("")


# ---------------------------------------------------------------------------


def test_chat_charged_twice_streams_from_billing_and_survives_reload(page: Page, screenshots_dir):
    open_chat(page)
    greeting = page.get_by_test_id("greeting")
    expect(greeting).to_be_visible()
    expect(greeting).to_have_text(re.compile(r"\S"))
    suggestions = page.get_by_test_id("suggestion")
    expect(suggestions.first).to_be_visible()
    assert CHARGED_TWICE in suggestions.all_inner_texts()
    expect(page.get_by_test_id("send")).to_be_disabled()

    # Watch the log while the reply streams: the reply's text length after every
    # DOM change, and what the typing indicator said.
    page.evaluate(
        """() => {
          window.__stream = [];
          window.__typing = [];
          const log = document.querySelector('[data-testid="messages"]');
          const typing = document.querySelector('[data-testid="typing"]');
          new MutationObserver(() => {
            const msg = log.querySelector('[data-testid="message"][data-role="assistant"]');
            if (!msg) return;
            const bubble = msg.querySelector('.so-msg__bubble');
            window.__stream.push({
              len: bubble ? bubble.textContent.length : 0,
              streaming: msg.classList.contains('so-msg--streaming'),
            });
          }).observe(log, {subtree: true, childList: true, characterData: true, attributes: true});
          new MutationObserver(() => {
            if (!typing.hidden) window.__typing.push(typing.textContent.trim());
          }).observe(typing, {subtree: true, childList: true, characterData: true, attributes: true});
        }"""
    )

    send_with_enter(page, CHARGED_TWICE)

    user = page.locator(USER)
    expect(user).to_have_count(1)
    expect(user.first).to_contain_text(CHARGED_TWICE)
    notice = page.get_by_test_id("agent-notice")
    expect(notice).to_contain_text("Billing")
    expect(notice).to_have_attribute("data-agent", "billing")
    expect(page.get_by_test_id("start")).to_be_hidden()

    reply = page.locator(ASSISTANT).first
    expect(reply).to_have_attribute("data-agent", "billing")
    expect(reply.locator(".so-msg__name")).to_have_text("Billing")
    expect(page.get_by_test_id("agent-name")).to_have_text("Billing")

    reply = wait_replies(page, 1)
    bubble = reply.locator(".so-msg__bubble")
    expect(bubble).to_contain_text("charged twice")
    # Markdown rendered: the article title is bold.
    expect(bubble.locator("strong", has_text=ARTICLE)).to_have_count(1)
    assert "**" not in bubble.inner_text()
    expect(page.get_by_test_id("typing")).to_be_hidden()
    expect(page.get_by_test_id("stop")).to_be_hidden()

    # The notice sits between the question and the reply.
    order = page.evaluate(
        """() => [...document.querySelector('[data-testid="messages"]').children]
                 .map((n) => n.dataset.testid + ':' + (n.dataset.role || n.dataset.agent || ''))"""
    )
    assert order[:3] == ["message:user", "agent-notice:billing", "message:assistant"], order

    # It streamed: the text grew through several lengths while marked as streaming.
    final_len = len(bubble.text_content())
    samples = page.evaluate("() => window.__stream")
    growing = sorted({s["len"] for s in samples if s["streaming"] and 0 < s["len"] < final_len})
    assert len(growing) > 3, f"reply did not stream (lengths seen while streaming: {growing})"
    assert growing[0] < final_len / 2, growing
    typing_seen = page.evaluate("() => window.__typing")
    assert any("knowledge base" in t.lower() for t in typing_seen), typing_seen

    # Reload: the history comes back from the server.
    page.reload()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
    expect(page.locator(MESSAGE)).to_have_count(2)
    expect(page.locator(USER).locator(".so-msg__bubble")).to_have_text(CHARGED_TWICE)
    restored = page.locator(ASSISTANT)
    expect(restored).to_have_attribute("data-agent", "billing")
    expect(restored.locator(".so-msg__name")).to_have_text("Billing")
    expect(restored.locator(".so-msg__bubble strong", has_text=ARTICLE)).to_have_count(1)
    expect(page.get_by_test_id("agent-name")).to_have_text("Billing")
    expect(page.get_by_test_id("start")).to_be_hidden()
    restored_state = state(page)
    assert [(m["role"], m["agent"]) for m in restored_state["messages"]] == [
        ("user", None),
        ("assistant", "billing"),
    ]
    assert ARTICLE in restored_state["messages"][1]["text"]

    # Show the start of the exchange (the composer is fixed at the bottom).
    page.get_by_test_id("scroll").evaluate("(el) => el.scrollTo({top: 0, behavior: 'instant'})")
    page.screenshot(path=str(screenshots_dir / "chat.png"))


XSS_USER = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
# Appended by a tampering proxy to what the model streams and to the final reply.
XSS_MODEL = (
    "**Bold stays.** "
    '<img src=x onerror="window.__xss=3"> <script>window.__xss=4</script> '
    "[a link](javascript:window.__xss=5) "
    '<a href="#" onclick="window.__xss=6" onmouseover="window.__xss=6">hover me</a> '
    '<svg><animate onbegin="window.__xss=7" attributeName="x" dur="1s"></animate></svg> '
    '<iframe srcdoc="<script>parent.__xss=8</script>"></iframe> '
    '<details open ontoggle="window.__xss=9"><summary>s</summary></details>'
)


def test_model_output_markdown_is_safe(new_page):
    # Without the page's CSP, so that only the client's own escaping and sanitising
    # stand between the text and the DOM (the CSP would block inline handlers anyway).
    page = new_page(bypass_csp=True)
    tampered = {"delta": 0, "done": 0}

    def tamper(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_server(message):
            frame = json.loads(message)
            if frame.get("type") == "message.delta" and not tampered["delta"]:
                frame["text"] = XSS_MODEL + "\n\n" + frame.get("text", "")
                tampered["delta"] += 1
            elif frame.get("type") == "message.done" and frame["message"]["role"] == "assistant":
                frame["message"]["text"] = XSS_MODEL + "\n\n" + frame["message"]["text"]
                tampered["done"] += 1
            ws.send(json.dumps(frame))

        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws/chat/$"), tamper)
    open_chat(page)

    send_with_enter(page, XSS_USER)
    user = page.locator(USER)
    expect(user).to_have_count(1)
    # Shown as the literal text the person typed.
    expect(user.locator(".so-msg__bubble")).to_have_text(XSS_USER)
    expect(user).to_have_attribute("data-state", "sent")
    wait_replies(page, 1)

    reply = wait_replies(page, 1)
    assert tampered == {"delta": 1, "done": 1}, tampered
    bubble = reply.locator(".so-msg__bubble")
    expect(bubble.locator("strong", has_text="Bold stays.")).to_have_count(1)
    expect(bubble).to_contain_text("hover me")
    bubble.get_by_text("hover me").hover()

    log = page.get_by_test_id("messages")
    expect(log.locator("img, script, iframe, svg animate, details[ontoggle]")).to_have_count(0)
    dangerous = log.evaluate(
        """(log) => [...log.querySelectorAll('*')].flatMap((n) => [...n.attributes]
              .filter((a) => /^on/i.test(a.name) || /^\\s*javascript:/i.test(a.value))
              .map((a) => n.tagName + ' ' + a.name + '=' + a.value))"""
    )
    assert dangerous == []
    page.wait_for_timeout(300)  # an injected <img onerror> would have fired by now
    assert page.evaluate("() => typeof window.__xss") == "undefined"


def test_keyboard_only(page: Page):
    open_chat(page)
    composer = page.get_by_test_id("composer")
    path = []
    for _ in range(25):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => document.activeElement && (document.activeElement.dataset.testid"
            " || document.activeElement.tagName)"
        )
        path.append(focused)
        if focused == "composer":
            break
    assert path[-1] == "composer", f"Tab never reached the composer: {path}"
    expect(composer).to_be_focused()
    expect(page.get_by_test_id("send")).to_be_disabled()

    page.keyboard.type("Hello,")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("how do I reset my password?")
    expect(composer).to_have_value("Hello,\nhow do I reset my password?")
    expect(page.locator(MESSAGE)).to_have_count(0)
    expect(page.get_by_test_id("send")).to_be_enabled()

    page.keyboard.press("Enter")
    user = page.locator(USER)
    expect(user).to_have_count(1)
    assert user.locator(".so-msg__bubble").text_content() == "Hello,\nhow do I reset my password?"
    expect(composer).to_have_value("")
    expect(composer).to_be_focused()
    reply = wait_replies(page, 1)
    expect(reply.locator(".so-msg__bubble")).to_have_text(re.compile(r"\w{3}"))
    expect(composer).to_be_focused()


def test_suggestion_sends_on_click(page: Page):
    open_chat(page)
    suggestion = page.get_by_test_id("suggestion").filter(has_text="reset my password")
    expect(suggestion).to_have_count(1)
    text = suggestion.inner_text()
    suggestion.click()

    user = page.locator(USER)
    expect(user).to_have_count(1)
    expect(user.locator(".so-msg__bubble")).to_have_text(text)
    expect(page.get_by_test_id("start")).to_be_hidden()
    expect(page.get_by_test_id("composer")).to_be_focused()
    reply = wait_replies(page, 1)
    expect(reply).not_to_have_attribute("data-agent", "")
    expect(reply.locator(".so-msg__bubble")).to_have_text(re.compile(r"\w{3}"))
    assert [m["role"] for m in state(page)["messages"]] == ["user", "assistant"]


def test_reconnect_resyncs(page: Page):
    page.expected_console.append("ERR_INTERNET_DISCONNECTED")  # reconnect attempts while offline
    page.add_init_script(TRACK_SOCKETS)
    open_chat(page)
    status = page.get_by_test_id("status")

    page.get_by_test_id("suggestion").filter(has_text="reset my password").click()
    wait_replies(page, 1)

    # Network gone, and the live socket with it.
    page.context.set_offline(True)
    sockets_before = page.evaluate("() => window.__sockets.length")
    page.evaluate("() => window.__sockets.forEach((s) => s.close())")
    expect(status).to_have_attribute("data-state", "reconnecting")
    expect(status).to_contain_text("Reconnecting")

    # A message sent now waits in the outbox.
    send_with_enter(page, CHARGED_TWICE)
    queued = page.locator(USER).nth(1)
    expect(queued).to_have_attribute("data-state", "sending")
    expect(queued.locator(".so-msg__status")).to_have_text("Waiting for connection…")
    outbox = state(page)["outbox"]
    assert [m["text"] for m in outbox] == [CHARGED_TWICE]

    # At least one reconnect attempt fails while offline; the message stays queued.
    page.wait_for_function(
        "(n) => window.__sockets.length > n && window.__sockets.at(-1).readyState === 3",
        arg=sockets_before,
    )
    assert [m["text"] for m in state(page)["outbox"]] == [CHARGED_TWICE]
    expect(queued).to_have_attribute("data-state", "sending")

    page.context.set_offline(False)
    expect(status).to_have_attribute("data-state", "online")
    expect(status).to_contain_text("Online")
    expect(queued).to_have_attribute("data-state", "sent")
    reply = wait_replies(page, 2)
    expect(reply).to_have_attribute("data-agent", "billing")
    expect(reply.locator("strong", has_text=ARTICLE)).to_have_count(1)
    expect(page.locator(USER).filter(has_text=CHARGED_TWICE)).to_have_count(1)
    assert state(page)["outbox"] == []

    # The server stored the queued message once (no duplicate from the re-send).
    page.reload()
    expect(status).to_have_attribute("data-state", "online")
    expect(page.locator(USER)).to_have_count(2)
    expect(page.locator(ASSISTANT)).to_have_count(2)


def _inside_viewport(page: Page, testid: str) -> None:
    box = page.get_by_test_id(testid).bounding_box()
    vp = page.viewport_size
    assert box is not None, f"{testid} has no box"
    assert box["width"] > 0 and box["height"] > 0, (testid, box)
    assert box["x"] >= 0 and box["y"] >= 0, (testid, box, vp)
    assert box["x"] + box["width"] <= vp["width"], (testid, box, vp)
    assert box["y"] + box["height"] <= vp["height"], (testid, box, vp)


def test_mobile_viewport(new_page, screenshots_dir):
    page = new_page(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    open_chat(page)
    for testid in ("composer", "send"):
        expect(page.get_by_test_id(testid)).to_be_visible()
        _inside_viewport(page, testid)

    page.get_by_test_id("suggestion").filter(has_text="charged twice").tap()
    reply = wait_replies(page, 1)
    expect(reply).to_have_attribute("data-agent", "billing")
    page.get_by_test_id("composer").fill("Thanks!")

    for testid in ("composer", "send"):
        expect(page.get_by_test_id(testid)).to_be_visible()
        _inside_viewport(page, testid)
    # Nothing wider than the screen (no sideways scrolling).
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth,"
        " document.querySelector('[data-testid=\"scroll\"]').scrollWidth]"
    )
    assert max(widths) <= 390, widths
    # The header shows the whole title and the answering agent's name (not "Billi…").
    expect(page.get_by_test_id("agent-name")).to_have_text("Billing")
    clipped = page.evaluate(
        """() => ['.so-title', '.so-agent-name', '.so-status']
              .map((sel) => document.querySelector(sel))
              .filter((n) => n.scrollWidth > n.clientWidth + 1 || n.getBoundingClientRect().width < 1)
              .map((n) => n.className + ': ' + n.textContent)"""
    )
    assert clipped == [], f"clipped in the header: {clipped}"
    bubble_box = reply.locator(".so-msg__bubble").bounding_box()
    assert bubble_box["x"] >= 0 and bubble_box["x"] + bubble_box["width"] <= 390, bubble_box

    page.get_by_test_id("scroll").evaluate("(el) => el.scrollTo({top: 0, behavior: 'instant'})")
    page.screenshot(path=str(screenshots_dir / "chat-mobile.png"))


def test_composer_follows_the_servers_limits(page: Page):
    open_chat(page)
    root = page.locator("#superorch")
    expect(root).to_have_attribute("data-max-message-chars", "4000")
    expect(root).to_have_attribute("data-max-frame-bytes", "16384")
    composer = page.get_by_test_id("composer")
    counter = page.get_by_test_id("counter")
    assert composer.evaluate("(el) => el.maxLength") == 4000

    composer.fill("x" * 3400)
    expect(counter).to_be_hidden()
    composer.fill("x" * 3600)
    expect(counter).to_have_text("3,600 / 4,000")
    expect(counter).not_to_have_class(re.compile(r"\bso-counter--full\b"))
    composer.fill("x" * 4000)
    expect(counter).to_have_text("4,000 / 4,000")
    expect(counter).to_have_class(re.compile(r"\bso-counter--full\b"))
    composer.fill("")
    expect(counter).to_be_hidden()

    # A frame over SUPERORCH_MAX_FRAME_BYTES is not sent (4,000 control characters are
    # 24,000 bytes of JSON); the person is told, and nothing waits in the outbox.
    sent = page.evaluate("() => window.SuperOrchChat.send('\\u0001'.repeat(4000))")
    assert sent is None
    expect(page.get_by_test_id("error")).to_be_visible()
    expect(page.get_by_test_id("error")).to_contain_text("That message is too long.")
    assert state(page)["outbox"] == [] and state(page)["messages"] == []
    # A long message within the limits still goes.
    composer.fill("y" * 4000)
    composer.press("Enter")
    expect(page.get_by_test_id("error")).to_be_hidden()
    user = page.locator(USER)
    expect(user).to_have_count(1)
    expect(user).to_have_attribute("data-state", "sent")
    wait_replies(page, 1)


def test_talk_to_a_person_asks_for_one_and_survives_a_reload(page: Page):
    """The header's "Talk to a person": the page says what happens next in plain words,
    the button goes, and a reload shows the same (session.ready's status)."""
    open_chat(page)
    button = page.get_by_test_id("talk-to-person")
    expect(button).to_be_visible()
    button.click()
    words = page.get_by_test_id("people-status")
    expect(words).to_contain_text("We have asked for a person")
    expect(button).to_be_hidden()
    expect(page.locator("#superorch")).to_have_attribute("data-people", "waiting")
    # A message now is kept for the person: acknowledged, and no agent answers it.
    page.get_by_test_id("composer").fill("Hello? Anyone?")
    page.get_by_test_id("send").click()
    expect(page.locator(USER)).to_have_count(1)
    wait_idle(page)
    page.wait_for_timeout(500)
    expect(page.locator(ASSISTANT)).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "online")
    expect(page.get_by_test_id("people-status")).to_contain_text("We have asked for a person")
    expect(page.get_by_test_id("talk-to-person")).to_be_hidden()


def test_answers_link_to_the_help_centre_which_is_searchable(page: Page):
    open_chat(page)
    send_with_enter(page, CHARGED_TWICE)
    reply = wait_replies(page, 1)
    link = reply.locator('.so-msg__bubble a[href^="/help/"]')
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("target", "_blank")
    href = link.get_attribute("href")
    assert href and "#" in href

    page.goto(href)
    expect(page.get_by_role("heading", level=1)).to_have_text(ARTICLE)
    expect(page.locator(f'[id="{href.split("#")[1]}"]')).to_be_visible()
    expect(page.get_by_role("main")).to_be_visible()

    page.get_by_label("Search the help centre").fill("refund timing")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Results for")
    expect(page.get_by_role("link", name="Refund policy", exact=True)).to_be_visible()


def test_a_refund_asks_for_approval_and_a_yes_refunds_once(
    page: Page, demo_backend, screenshots_dir
):
    """The demo end to end: the card, Approve, the refund made once (the backend's own
    list), and a declined one that does nothing."""
    open_chat(page)
    send_with_enter(page, "I'd like a refund for invoice ACME-2024-000123")
    card = page.get_by_test_id("approval").last
    expect(card.get_by_test_id("approval-summary")).to_have_text(
        "Refund EUR 49.00 for invoice ACME-2024-000123"
    )
    expect(card).to_contain_text("Your approval is needed")
    page.screenshot(path=str(screenshots_dir / "approval-card.png"))
    before = refunds_of(demo_backend)
    card.get_by_test_id("approve").click()
    expect(card.get_by_test_id("approval-outcome")).to_have_text("Approved")
    expect(card.get_by_test_id("approve")).to_be_hidden()
    expect(page.locator(ASSISTANT).last).to_contain_text("Done. Here's what the system recorded")
    wait_idle(page)
    kinds = page.locator('[data-testid="messages"] > *').evaluate_all(
        "nodes => nodes.map(n => n.dataset.testid)"
    )
    assert kinds[-2:] == ["approval", "message"]  # the answer comes below its card
    after = refunds_of(demo_backend)
    assert len(after) == len(before) + 1 and after[-1]["invoice"] == "ACME-2024-000123"
    page.screenshot(path=str(screenshots_dir / "approval-approved.png"))


def test_declining_a_refund_does_nothing(page: Page, demo_backend):
    open_chat(page)
    before = refunds_of(demo_backend)
    send_with_enter(page, "please refund invoice ACME-2024-000123")
    card = page.get_by_test_id("approval").last
    card.get_by_test_id("decline").click()
    expect(card.get_by_test_id("approval-outcome")).to_have_text("Declined: nothing was done")
    expect(page.locator(ASSISTANT).last).to_contain_text("I haven't done it")
    wait_idle(page)
    assert refunds_of(demo_backend) == before


def refunds_of(address: str) -> list[dict]:
    import urllib.request

    with urllib.request.urlopen(f"{address}/api/refunds", timeout=5) as response:  # noqa: S310
        return json.loads(response.read())


def test_a_user_attaches_an_image_and_a_file_that_is_not_one_is_refused(page: Page):
    """The paperclip uploads over HTTP with the conversation's token: the picture shows in
    the conversation (it loads from the server) and the offline model says it arrived; a
    page named .png that is really HTML is refused in plain words and nothing is shown."""
    from tests.chat.test_attachments import png

    open_chat(page)
    expect(page.get_by_test_id("attach")).to_be_visible()
    page.get_by_test_id("attach-file").set_input_files(
        files=[{"name": "screenshot.png", "mimeType": "image/png", "buffer": png(8, 6)}]
    )
    shown = page.locator(USER).last.get_by_test_id("attachment")
    expect(shown).to_be_visible()
    thumb = shown.locator("img")
    expect(thumb).to_have_attribute("alt", "screenshot.png")
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=\"attachment\"] img');"
        " return i && i.complete && i.naturalWidth === 8; }"
    )
    reply = wait_replies(page, 1)
    expect(reply).to_contain_text("received your file")

    page.expected_console.append("415 (Unsupported Media Type)")  # the refusal, on purpose
    page.get_by_test_id("attach-file").set_input_files(
        files=[{"name": "cat.png", "mimeType": "image/png", "buffer": b"<html><script>x</script>"}]
    )
    alert = page.get_by_test_id("error")
    expect(alert).to_be_visible()
    expect(alert).not_to_contain_text("Traceback")
    expect(page.locator(USER)).to_have_count(1)  # nothing new in the conversation
