"""Per-site staff (Site.staff, chat/roles.py): a site naming its staff hides its
conversations from every other member of staff but Admins, in the inbox, the staff API,
the admin, the staff socket and assignments; a site naming nobody is everyone's."""

from __future__ import annotations

import asyncio
import json
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from chat import inbox, people, roles, services
from chat.models import Conversation, Message, Site, Turn
from orchestrator.models import Approval
from tests.chat.test_consumers import open_session, recv, send
from tests.chat.test_staff_socket import _cookie

run = sync_to_async


def member(name: str, role: str):
    user = get_user_model().objects.create_user(name, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def chat_on(site: Site, text: str) -> Conversation:
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    Message.objects.create(conversation=conversation, role="user", text=text)
    return conversation


@pytest.fixture
def shops(db):
    """Two sites: `private` names alice as its staff, `open` names nobody."""
    private = Site.objects.create(name="Private shop", key="private")
    open_site = Site.objects.create(name="Open shop", key="open")
    alice, bob = member("alice", "Support"), member("bob", "Supervisor")
    carol = member("carol", "Admin")
    private.staff.add(alice)
    return {
        "private": chat_on(private, "my private order"),
        "open": chat_on(open_site, "my open order"),
        "alice": alice,
        "bob": bob,
        "carol": carol,
    }


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_client(user) -> Client:
    out = StringIO()
    call_command("staff_token", user.get_username(), stdout=out, stderr=StringIO())
    return Client(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")


@pytest.mark.parametrize(
    ("who", "sees_private"), [("alice", True), ("bob", False), ("carol", True)]
)
def test_the_inbox_lists_and_opens_only_the_sites_one_may_see(shops, who, sees_private):
    user, private = shops[who], shops["private"]
    listed = {c.pk for c in inbox.inbox_conversations(staff=user)}
    assert (private.pk in listed) is sees_private
    assert shops["open"].pk in listed  # a site naming nobody is everyone's
    assert inbox.inbox_count(staff=user) == (2 if sees_private else 1)

    client = logged_in(user)
    page = client.get(reverse("staff:inbox")).content.decode()
    assert ("my private order" in page) is sees_private
    opened = client.get(reverse("staff:conversation", kwargs={"key": private.uuid}))
    assert opened.status_code == (200 if sees_private else 404)
    taken = client.post(reverse("staff:takeover", kwargs={"key": private.uuid}))
    assert (taken.status_code == 404) is not sees_private


@pytest.mark.parametrize(
    ("who", "sees_private"), [("alice", True), ("bob", False), ("carol", True)]
)
def test_the_staff_api_answers_404_for_a_hidden_site(shops, who, sees_private):
    client, private = api_client(shops[who]), shops["private"]
    page = client.get("/api/staff/conversations/").json()
    keys = {item["uuid"] for item in page["items"]}
    assert (str(private.uuid) in keys) is sees_private
    assert page["count"] == (2 if sees_private else 1)
    detail = client.get(f"/api/staff/conversations/{private.uuid}/")
    assert detail.status_code == (200 if sees_private else 404)
    if not sees_private:
        assert "my private order" not in detail.content.decode()
        reply = client.post(
            f"/api/staff/conversations/{private.uuid}/reply/",
            json.dumps({"text": "hello"}),
            content_type="application/json",
        )
        assert reply.status_code == 404
        assert not Message.objects.filter(conversation=private, role="staff").exists()


def test_an_approval_of_a_hidden_site_cannot_be_decided(shops):
    private = shops["private"]
    pending = Approval.objects.create(
        conversation_id=private.uuid,
        turn_id=private.uuid,
        tool="request_refund",
        agent_slug="billing",
        start_agent="billing",
        tool_call_id="call_1",
        arguments={"amount": "10.00"},
        summary="Refund EUR 10.00",
        by="staff",
        run_state="{}",
        expires_at="2099-01-01T00:00:00Z",
    )
    response = api_client(shops["bob"]).post(
        f"/api/staff/approvals/{pending.uuid}/",
        json.dumps({"approve": True}),
        content_type="application/json",
    )
    assert response.status_code == 404
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert inbox.approvals_needed_count(staff=shops["bob"]) == 0
    assert inbox.approvals_needed_count(staff=shops["alice"]) == 1


@pytest.mark.parametrize(
    "url",
    [
        "admin:chat_conversation_changelist",
        "admin:chat_message_changelist",
        "admin:chat_turn_changelist",
        "admin:chat_conversationevent_changelist",
        "admin:chat_staffnote_changelist",
    ],
)
def test_the_admin_lists_only_the_sites_one_may_see(shops, url):
    private = shops["private"]
    people.staff_note_add(conversation=private, staff=shops["alice"], text="private note")
    people.request_human(conversation=private, source="user")  # a ConversationEvent
    Turn.objects.create(conversation=private, reply_to=private.messages.first())
    alice, bob = logged_in(shops["alice"]), logged_in(shops["bob"])
    assert private.pk in {o.pk for o in objects(alice.get(reverse(url)), private)}
    assert private.pk not in {o.pk for o in objects(bob.get(reverse(url)), private)}


def objects(response, private):
    """The conversations of the rows a changelist shows."""
    rows = response.context["cl"].result_list
    return [getattr(r, "conversation", r) for r in rows]


def test_the_admins_transcript_of_a_hidden_site_is_not_found(shops):
    private = shops["private"]
    url = reverse("admin:chat_conversation_change", args=[private.pk])
    assert logged_in(shops["alice"]).get(url).status_code == 200
    hidden = logged_in(shops["bob"]).get(url)
    assert hidden.status_code == 302  # the admin's "doesn't exist" redirect
    reply = reverse("admin:chat_conversation_reply", args=[private.pk])
    assert logged_in(shops["bob"]).get(reply).status_code == 404


def test_a_conversation_is_assigned_only_to_its_sites_staff(shops):
    private = shops["private"]
    with pytest.raises(people.PeopleError, match="not on the staff of this conversation's site"):
        people.staff_assign(conversation=private, staff=shops["carol"], to=shops["bob"])
    people.staff_assign(conversation=private, staff=shops["carol"], to=shops["alice"])
    private.refresh_from_db()
    assert private.owner == shops["alice"]
    colleagues = set(inbox.staff_colleagues(site=private.site).values_list("username", flat=True))
    assert colleagues == {"alice", "carol"}
    assert roles.sees_site(shops["bob"], shops["open"].site_id)


@pytest.mark.django_db(transaction=True)
async def test_the_staff_socket_skips_the_events_of_a_hidden_site(team, connect):
    from channels.testing import WebsocketCommunicator

    from superorch_site.asgi import application

    # Staff in no group have the default role (Support): a transactional test's tables
    # are emptied after each test, the migration's groups with them.
    make = get_user_model().objects.create_user
    alice = await run(make)("alice", password="x", is_staff=True)
    bob = await run(make)("bob", password="x", is_staff=True)
    demo = await run(services.site_ensure_default)()
    await run(demo.staff.add)(alice)
    sockets = {}
    for name, user in (("alice", alice), ("bob", bob)):
        headers = [(b"origin", b"http://localhost"), (b"cookie", await run(_cookie)(user))]
        sockets[name] = WebsocketCommunicator(application, "/ws/staff/", headers=headers)
        assert (await sockets[name].connect(timeout=5))[0]
    try:
        chat, ready = await open_session(connect)
        await send(chat, {"type": "human.request"})
        while (frame := await recv(sockets["alice"]))["type"] != "inbox.changed":
            pass
        assert frame["conversation"] == ready["conversation"]
        await asyncio.sleep(0.3)
        await send(sockets["bob"], {"type": "ping"})
        seen = []
        while (frame := await recv(sockets["bob"]))["type"] != "pong":
            seen.append(frame["type"])
        assert "inbox.changed" not in seen
        await send(sockets["bob"], {"type": "watch", "conversation": ready["conversation"]})
        assert (await recv_not_presence(sockets["bob"]))["message"] == "No such conversation."
    finally:
        for socket in sockets.values():
            await socket.disconnect()


async def recv_not_presence(socket) -> dict:
    while (frame := await recv(socket))["type"] == "presence.changed":
        pass
    return frame
