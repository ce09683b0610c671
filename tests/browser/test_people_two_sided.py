"""Both sides of people in the loop at once, in two browser contexts of a real Chromium: a
user in the widget embedded on another origin (a host page served by this module, as
test_widget_browser does), and a member of staff logged into the inbox (/staff/).

The user chats with the agents (the offline model), asks for a person (the "Talk to a
person" button, or in words); the inbox shows the conversation waiting without a reload;
staff take over and both sides write to each other live; staff hand back with a note,
and the agents' next answer is drawn from it (the offline model searches a follow-up with
the note: orchestrator/sdk/providers/local.py); staff resolve; the user rates 4 with a
comment, which is stored and shown in the inbox.

Run with: .venv/bin/python -m pytest -q -m browser -p no:asyncio tests/browser/test_people_two_sided.py
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Frame, Page, expect

from .test_chat_browser import ASSISTANT, CHARGED_TWICE, send_with_enter, wait_replies
from .test_inbox_browser import staff_login
from .test_widget_browser import HostSite, chat_frame, host_html, wait_ready, widget_page

pytestmark = pytest.mark.browser

SITE = "two-sided-shop"
STAFF = '[data-testid="message"][data-role="staff"]'
USER = '[data-testid="message"][data-role="user"]'
# What staff tell the agents: the user's follow-up "When do I get it?" says nothing of a
# refund; only the note does.
NOTE = (
    "Customer's invoice number is 4411; refund approved, they want to know how long the "
    "refund takes."
)
SCREENSHOTS = {"user": Path("/tmp/two_sided_user.png"), "staff": Path("/tmp/two_sided_staff.png")}


@pytest.fixture(scope="module")
def host_site() -> Iterator[HostSite]:
    site = HostSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def shop(chat_server, host_site: HostSite) -> str:
    """The widget's site, allowing the host page's origin; returns the host page's URL."""
    spec = {"name": "Two-sided shop", "allowed_origins": host_site.origin}
    chat_server.django(
        "import json\n"
        "from chat.models import Site\n"
        f"site, _ = Site.objects.update_or_create(key={SITE!r}, defaults=json.loads("
        f"{json.dumps(json.dumps(spec))}))\n"
        "site.full_clean()\n"
    )
    return host_site.add("/two-sided", host_html(chat_server.url, SITE))


def open_widget(new_page, url: str) -> tuple[Page, Frame, str]:
    """The host page on its own origin, the chat panel open; returns (page, frame, uuid)."""
    page = widget_page(new_page)
    page.goto(url)
    conversation = wait_ready(page)[0]["conversation"]
    page.evaluate("() => window.SuperOrch.open()")
    frame = chat_frame(page)
    expect(frame.get_by_test_id("status")).to_have_attribute("data-state", "online")
    return page, frame, conversation


def conversation_row(staff: Page, conversation: str):
    return staff.locator(f'.so-inbox__row[data-conversation="{conversation}"]')


def open_in_inbox(staff: Page, conversation: str) -> None:
    """The conversation waits in the list (it came live: the page was not reloaded), then
    its page, with its socket watching it."""
    row = conversation_row(staff, conversation)
    expect(row).to_have_attribute("data-status", "waiting")
    expect(staff).to_have_title(re.compile(r"^\(\d+\) Inbox"))
    row.locator("a").click()
    expect(staff.locator("#inbox-live")).to_have_attribute("data-state", "online")


def staff_reply(staff: Page, text: str) -> None:
    staff.get_by_label("Reply to the user").fill(text)
    staff.get_by_role("button", name="Send reply").click()
    expect(staff.get_by_role("status").filter(has_text="Your reply was sent.")).to_be_visible()
    expect(staff.locator("#inbox-live")).to_have_attribute("data-state", "online")


def stored(chat_server, conversation: str) -> dict:
    """The conversation's row and its status changes, from the server's database."""
    out = chat_server.django(
        "import json\n"
        "from chat.models import Conversation\n"
        f"c = Conversation.objects.get(uuid={conversation!r})\n"
        "events = list(c.events.order_by('id').values_list('from_status', 'to_status', 'source'))\n"
        "print(json.dumps({'status': c.status, 'csat': c.csat_score, 'comment': c.csat_comment,"
        " 'note': c.handback_note, 'events': events,"
        " 'roles': list(c.messages.order_by('id').values_list('role', flat=True))}))\n"
    )
    return json.loads(out.strip().splitlines()[-1])


def test_button_takeover_live_chat_hand_back_with_a_note_resolve_and_rate(
    new_page, chat_server, shop
):
    staff = new_page()
    staff_login(staff, chat_server)
    user, frame, conversation = open_widget(new_page, shop)

    # The agents answer first.
    send_with_enter(frame, CHARGED_TWICE)
    first = wait_replies(frame, 1)
    expect(first).to_have_attribute("data-agent", "billing")

    # A person, one click away; the inbox hears of it without a reload.
    frame.get_by_test_id("talk-to-person").click()
    expect(frame.get_by_test_id("people-status")).to_contain_text("We have asked for a person")
    expect(frame.get_by_test_id("talk-to-person")).to_be_hidden()
    open_in_inbox(staff, conversation)
    expect(staff.locator("#transcript")).to_contain_text(CHARGED_TWICE)

    staff.get_by_role("button", name="Take over").click()
    expect(staff.get_by_role("status").filter(has_text="You have taken")).to_be_visible()
    expect(frame.get_by_test_id("people-status")).to_have_text("Grace has joined the conversation.")

    # Live both ways.
    staff_reply(staff, "Hi, Grace here. I can see both charges.")
    from_staff = frame.locator(STAFF)
    expect(from_staff).to_have_count(1)
    expect(from_staff.first).to_contain_text("Grace here")
    name = from_staff.first.locator(".so-msg__name")
    expect(name).to_contain_text("Grace")
    expect(name.locator(".so-msg__tag")).to_have_text("Team")
    send_with_enter(frame, "Thank you, Grace! It was on my last invoice.")
    expect(staff.locator("#transcript")).to_contain_text("It was on my last invoice.")
    staff_reply(staff, "Done: the second charge is refunded. Our assistant takes it from here.")
    expect(from_staff).to_have_count(2)
    expect(frame.locator(ASSISTANT)).to_have_count(1)  # no agent answered meanwhile

    # Back to the agents, with a note they read as context.
    staff.get_by_label("Note for the agents (they read it as context)").fill(NOTE)
    staff.get_by_role("button", name="Hand back to the agents").click()
    expect(
        staff.get_by_role("status").filter(has_text="The agents answer it again.")
    ).to_be_visible()
    expect(staff.locator("#inbox-live")).to_have_attribute("data-state", "online")
    expect(frame.get_by_test_id("talk-to-person")).to_be_visible()  # the agents answer again
    expect(frame.get_by_test_id("people-status")).to_be_hidden()

    # The user's follow-up says nothing of a refund: the answer comes from the note.
    send_with_enter(frame, "When do I get it?")
    answer = wait_replies(frame, 2)
    expect(answer).to_have_attribute("data-agent", "billing")
    expect(answer.locator(".so-msg__bubble strong", has_text="Refund policy")).to_have_count(1)
    expect(answer.locator(".so-msg__bubble")).to_contain_text("How long a refund takes")
    expect(staff.locator("#transcript")).to_contain_text("How long a refund takes")

    # Resolved: the user is asked for a rating, gives 4 with a comment.
    staff.get_by_role("button", name="Resolve").click()
    expect(
        staff.get_by_role("status").filter(has_text="The conversation is resolved.")
    ).to_be_visible()
    expect(staff.locator("#inbox-live")).to_have_attribute("data-state", "online")
    expect(frame.get_by_test_id("people-status")).to_contain_text("This conversation is resolved")
    csat = frame.get_by_test_id("csat")
    expect(csat).to_be_visible()
    frame.get_by_test_id("csat-comment").fill("Grace sorted it out fast")
    csat.locator('[data-score="4"]').click()
    expect(frame.get_by_test_id("csat-thanks")).to_be_visible()
    expect(frame.get_by_test_id("csat-thanks")).to_have_text("Thank you for your rating (4/5)!")
    expect(csat).to_be_hidden()
    # The inbox shows the rating live (the status frame makes it re-read the actions).
    rating = staff.get_by_test_id("csat-rating")
    expect(rating).to_contain_text("4/5")
    expect(rating).to_contain_text("Grace sorted it out fast")

    row = stored(chat_server, conversation)
    assert (row["status"], row["csat"], row["comment"]) == (
        "resolved",
        4,
        "Grace sorted it out fast",
    ), row
    assert row["note"] == NOTE
    assert [tuple(e) for e in row["events"]] == [
        ("bot", "waiting", "user"),
        ("waiting", "human", "staff"),
        ("human", "bot", "staff"),
        ("bot", "resolved", "staff"),
    ], row
    assert row["roles"] == ["user", "assistant", "staff", "user", "staff", "user", "assistant"]

    frame.locator(".so-people").scroll_into_view_if_needed()
    user.screenshot(path=str(SCREENSHOTS["user"]))
    staff.screenshot(path=str(SCREENSHOTS["staff"]), full_page=True)


def test_asking_in_words_reaches_the_inbox_staff_answer_live_and_hand_back_what_waits(
    new_page, chat_server, shop
):
    staff = new_page()
    staff_login(staff, chat_server)
    _, frame, conversation = open_widget(new_page, shop)

    send_with_enter(frame, CHARGED_TWICE)
    wait_replies(frame, 1)
    send_with_enter(frame, "can I talk to a human?")
    expect(frame.get_by_test_id("people-status")).to_contain_text("We have asked for a person")
    expect(frame.locator(USER)).to_have_count(2)
    # The request answered the message: no agent did.
    frame.wait_for_function(
        "() => { const s = window.SuperOrchChat.state; return !s.running.length; }"
    )
    expect(frame.locator(ASSISTANT)).to_have_count(1)

    open_in_inbox(staff, conversation)
    expect(staff.locator("#transcript")).to_contain_text("can I talk to a human?")
    staff.get_by_role("button", name="Take over").click()
    expect(frame.get_by_test_id("people-status")).to_have_text("Grace has joined the conversation.")
    staff_reply(staff, "Hello, Grace here. How can I help?")
    expect(frame.locator(STAFF)).to_contain_text("How can I help?")
    send_with_enter(frame, "Please check my invoice from May.")
    expect(staff.locator("#transcript")).to_contain_text("Please check my invoice from May.")
    expect(conversation_row(staff, conversation)).to_have_attribute("data-status", "human")

    # Handed back with the user's last message unanswered: the agents answer it at once
    # (the hand-back, a staff request, wakes the turn scheduler).
    staff.get_by_role("button", name="Hand back to the agents").click()
    answer = wait_replies(frame, 2)
    expect(answer).to_have_attribute("data-agent", "billing")
    expect(answer.locator(".so-msg__bubble")).to_contain_text("invoice")

    row = stored(chat_server, conversation)
    assert [tuple(e) for e in row["events"]] == [
        ("bot", "waiting", "words"),
        ("waiting", "human", "staff"),
        ("human", "bot", "staff"),
    ], row
    assert row["roles"] == ["user", "assistant", "user", "staff", "user", "assistant"]
