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
