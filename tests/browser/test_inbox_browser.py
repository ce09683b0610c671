"""The staff inbox and the chat page side by side in a real Chromium: a user asks for a
person, the conversation appears waiting in the inbox live (title badge included), a
member of staff takes it over and replies, and the user's page shows the staff message;
the user's answer streams into the inbox's transcript.
Run with: .venv/bin/python -m pytest -q -m browser -p no:asyncio tests/browser/test_inbox_browser.py
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

ASK = "Please let me talk to someone about invoice 4711"


def staff_login(page: Page, chat_server) -> None:
    chat_server.django(
        "from django.contrib.auth import get_user_model; U = get_user_model();"
        " U.objects.filter(username='grace').exists() or U.objects.create_user("
        "'grace', password='pw-grace-1', is_staff=True, first_name='Grace')"
    )
    page.goto("/staff/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/staff/"))
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("pw-grace-1")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/staff/$"))
    expect(page.locator("#inbox-live")).to_have_attribute("data-state", "online")


def test_staff_take_over_a_waiting_conversation_and_reply_live(new_page, chat_server):
    staff = new_page()
    staff_login(staff, chat_server)

    user = new_page()
    user.goto("/")
    expect(user.get_by_test_id("status")).to_have_attribute("data-state", "online")
    user.get_by_test_id("talk-to-person").click()
    expect(user.get_by_test_id("people-status")).to_contain_text("We have asked for a person")
    user.get_by_test_id("composer").fill(ASK)
    user.get_by_test_id("send").click()
    expect(user.locator('[data-testid="message"][data-role="user"]')).to_have_count(1)

    # The inbox learns of it over its socket, without a reload.
    row = staff.locator('.so-inbox__row[data-status="waiting"]', has_text="invoice 4711")
    expect(row).to_be_visible()
    expect(staff).to_have_title(re.compile(r"^\(\d+\) Inbox"))
    row.locator("a").click()
    expect(staff.locator("#inbox-live")).to_have_attribute("data-state", "online")
    staff.get_by_role("button", name="Take over").click()
    expect(staff.get_by_role("status").filter(has_text="You have taken")).to_be_visible()
    expect(user.get_by_test_id("people-status")).to_contain_text("Grace has joined")

    staff.get_by_label("Reply to the user").fill("Hi, Grace here. Looking at 4711 now.")
    staff.get_by_role("button", name="Send reply").click()
    staff_message = user.locator('[data-testid="message"][data-role="staff"]')
    expect(staff_message).to_contain_text("Grace here")

    # The user's answer reaches the open transcript live (htmx re-reads it).
    expect(staff.locator("#inbox-live")).to_have_attribute("data-state", "online")
    user.get_by_test_id("composer").fill("Thank you, Grace!")
    user.get_by_test_id("send").click()
    expect(staff.locator("#transcript")).to_contain_text("Thank you, Grace!")


# A stand-in for the browser's Notification API: it records what the page shows and asks.
FAKE_NOTIFICATIONS = """
window.__notes = [];
window.__asked = 0;
class FakeNotification {
  constructor(title, options) { this.title = title; this.options = options; window.__notes.push(this); }
  close() {}
}
FakeNotification.permission = "default";
FakeNotification.requestPermission = function () {
  window.__asked += 1;
  FakeNotification.permission = "granted";
  return Promise.resolve("granted");
};
window.Notification = FakeNotification;
"""


def _waiting(page: Page) -> int:
    return int(page.locator("#inbox-list").get_attribute("data-waiting") or "0")


def _user_asks_for_a_person(new_page, text: str) -> Page:
    user = new_page()
    user.goto("/")
    expect(user.get_by_test_id("status")).to_have_attribute("data-state", "online")
    user.get_by_test_id("talk-to-person").click()
    expect(user.get_by_test_id("people-status")).to_contain_text("We have asked for a person")
    user.get_by_test_id("composer").fill(text)
    user.get_by_test_id("send").click()
    expect(user.locator('[data-testid="message"][data-role="user"]')).to_have_count(1)
    return user


def test_the_title_badge_and_a_notification_for_a_new_waiting_conversation(new_page, chat_server):
    staff = new_page()
    staff.add_init_script(FAKE_NOTIFICATIONS)
    staff_login(staff, chat_server)
    expect(staff.locator("#inbox-presence")).to_contain_text("Grace (you)")
    before = _waiting(staff)
    expect(staff).to_have_title(
        f"({before}) Inbox · Super Orchestrator staff"
        if before
        else "Inbox · Super Orchestrator staff"
    )
    # Permission is asked on the button's click only, never on load.
    assert staff.evaluate("window.__asked") == 0
    staff.get_by_role("button", name="Turn on notifications").click()
    expect(staff.locator("#notify-state")).to_have_text("Notifications on")
    expect(staff.get_by_role("button", name="Turn on notifications")).to_be_hidden()
    assert staff.evaluate("window.__asked") == 1

    user = _user_asks_for_a_person(new_page, "Badge test: where is parcel 99?")
    expect(staff).to_have_title(f"({before + 1}) Inbox · Super Orchestrator staff")
    staff.wait_for_function("window.__notes.length === 1")
    note = staff.evaluate("({title: __notes[0].title, tag: __notes[0].options.tag})")
    assert note["title"] == "A conversation is waiting for a person"
    row = staff.locator('.so-inbox__row[data-status="waiting"]', has_text="parcel 99")
    expect(row).to_be_visible()
    key = row.get_attribute("data-conversation")
    assert note["tag"] == f"superorch-waiting-{key}"

    # A message in a conversation already waiting changes the list, not the notifications.
    user.get_by_test_id("composer").fill("Hello? Parcel 99 still.")
    user.get_by_test_id("send").click()
    expect(staff.locator(".so-inbox__row", has_text="Parcel 99 still")).to_be_visible()
    assert staff.evaluate("window.__notes.length") == 1

    # Clicking the notification opens the conversation; a takeover lowers the badge.
    staff.evaluate("__notes[0].onclick()")
    expect(staff).to_have_url(re.compile(rf"/staff/c/{key}/$"))
    expect(staff).to_have_title(re.compile(rf"^\({before + 1}\) Visitor"))
    expect(staff.locator("#inbox-live")).to_have_attribute("data-state", "online")
    staff.get_by_role("button", name="Take over").click()
    expect(staff.get_by_role("status").filter(has_text="You have taken")).to_be_visible()
    expect(staff).to_have_title(re.compile(rf"^\({before}\) Visitor" if before else r"^Visitor"))


def test_a_canned_reply_is_inserted_editable_and_sent_only_on_send(new_page, chat_server):
    chat_server.django(
        "from chat.models import CannedReply as C;"
        " C.objects.get_or_create(title='Greeting', defaults={'text': 'Hello, this is the"
        " support team.\\nHow can I help?'});"
        " C.objects.get_or_create(title='Refund policy', defaults={'text': 'Refunds take 3"
        " days.'})"
    )
    user = _user_asks_for_a_person(new_page, "Canned test: my order 5150")
    staff = new_page()
    staff_login(staff, chat_server)
    staff.locator(".so-inbox__row", has_text="order 5150").locator("a").click()
    box = staff.get_by_label("Reply to the user")

    staff.get_by_label("Insert a canned reply").select_option(label="Greeting")
    expect(box).to_have_value("Hello, this is the support team.\nHow can I help?")
    expect(staff.get_by_label("Insert a canned reply")).to_have_value("")
    box.press("End")
    box.type(" Order 5150 it is.")  # editable before sending
    expect(box).to_have_value("Hello, this is the support team.\nHow can I help? Order 5150 it is.")
    expect(user.locator('[data-testid="message"][data-role="staff"]')).to_have_count(0)

    # "/" and part of a title: the matching canned replies; Enter takes the first.
    box.fill("")
    box.type("/refu")
    suggestions = staff.locator("#canned-suggest [role=option]")
    expect(suggestions).to_have_text(["Refund policy"])
    box.press("Enter")
    expect(box).to_have_value("Refunds take 3 days.")
    expect(staff.locator("#canned-suggest")).to_be_hidden()
    expect(user.locator('[data-testid="message"][data-role="staff"]')).to_have_count(0)

    staff.get_by_role("button", name="Send reply").click()
    expect(user.locator('[data-testid="message"][data-role="staff"]')).to_contain_text(
        "Refunds take 3 days."
    )
