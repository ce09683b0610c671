"""The staff inbox's WebSocket (/ws/staff/) through the full ASGI app: only staff, by
their session, from the app's own origins; status changes reach every staff socket with
the number waiting; the frames of a watched conversation (a user's message) reach it
live; presence (who came online reaches every staff socket)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from chat import people, turns
from chat.models import Conversation, Site, StaffPresence
from tests.chat.test_consumers import open_session, recv, send

pytestmark = pytest.mark.django_db(transaction=True)
run = sync_to_async
SITE_ORIGIN = b"https://shop.example"


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


async def recv_inbox(socket) -> dict:
    """The next frame that is not a presence change (someone's socket came online)."""
    while (frame := await recv(socket))["type"] == "presence.changed":
        pass
    return frame


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@pytest.fixture
def session_of(transactional_db):
    def make(username: str, *, is_staff: bool = True) -> bytes:
        user = get_user_model().objects.create_user(
            username, password="x", is_staff=is_staff, first_name=username.title()
        )
        return _cookie(user)

    return lambda *a, **kw: run(make)(*a, **kw)


@pytest.fixture
async def staff_socket():
    from superorch_site.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def make(cookie: bytes | None, origin: bytes = b"http://localhost"):
        headers = [(b"origin", origin)] + ([(b"cookie", cookie)] if cookie else [])
        comm = WebsocketCommunicator(application, "/ws/staff/", headers=headers)
        connected, _ = await comm.connect(timeout=5)
        opened.append(comm)
        return comm, connected

    yield make
    for comm in opened:
        await comm.disconnect()


async def test_only_staff_from_the_apps_origin_may_connect(team, session_of, staff_socket):
    await run(Site.objects.filter(key="demo").update)(allowed_origins=SITE_ORIGIN.decode())
    staff = await session_of("sam")
    assert (await staff_socket(None))[1] is False  # no session
    assert (await staff_socket(await session_of("joe", is_staff=False)))[1] is False
    # A customer site's origin may open the chat socket, never the staff one.
    assert (await staff_socket(staff, origin=SITE_ORIGIN))[1] is False
    assert (await staff_socket(staff))[1] is True
    assert await run(StaffPresence.objects.filter(user__username="sam").exists)()


async def test_a_new_waiting_conversation_and_a_takeover_reach_every_staff_socket(
    team, connect, session_of, staff_socket
):
    sam_socket, _ = await staff_socket(await session_of("sam"))
    ana_socket, _ = await staff_socket(await session_of("ana"))
    chat, ready = await open_session(connect)
    await send(chat, {"type": "human.request", "reason": "billing"})
    for socket in (sam_socket, ana_socket):
        frame = await recv_inbox(socket)
        assert frame == {
            "type": "inbox.changed",
            "conversation": ready["conversation"],
            "status": "waiting",
            "change": "status",
            "waiting": 1,
        }
    conversation = await run(Conversation.objects.get)(uuid=ready["conversation"])
    sam = await run(get_user_model().objects.get)(username="sam")
    await run(people.staff_take_over)(conversation=conversation, staff=sam)
    frame = await recv_inbox(ana_socket)
    assert (frame["status"], frame["change"], frame["waiting"]) == ("human", "status", 0)


async def test_a_watched_conversations_user_message_reaches_the_staff_socket(
    team, connect, session_of, staff_socket
):
    chat, ready = await open_session(connect)
    await send(chat, {"type": "human.request"})  # no agent turn: the message waits
    assert (await recv(chat))["status"] == "waiting"
    socket, _ = await staff_socket(await session_of("sam"))
    await send(socket, {"type": "watch", "conversation": ready["conversation"]})
    assert await recv_inbox(socket) == {"type": "watching", "conversation": ready["conversation"]}

    await send(chat, {"type": "message.send", "id": "c-1", "text": "Is anyone there?"})
    frames = [await recv_inbox(socket), await recv_inbox(socket)]  # the list's change, the message
    ack = next(f for f in frames if f["type"] == "message.ack")
    assert ack["message"]["text"] == "Is anyone there?"
    assert {f["type"] for f in frames} == {"message.ack", "inbox.changed"}


async def test_bad_staff_frames_are_answered_in_plain_words(team, session_of, staff_socket):
    socket, _ = await staff_socket(await session_of("sam"))
    await send(socket, {"type": "ping"})
    assert await recv_inbox(socket) == {"type": "pong"}
    await send(socket, {"type": "watch", "conversation": "nope"})
    assert await recv_inbox(socket) == {
        "type": "error",
        "message": "That is not a conversation id.",
    }
    await send(socket, {"type": "watch", "conversation": "00000000-0000-0000-0000-000000000000"})
    assert (await recv_inbox(socket))["message"] == "No such conversation."
    await socket.send_to(text_data="x" * 600)
    assert (await recv_inbox(socket))["message"] == "Send a JSON object: watch or ping."


async def test_a_users_message_to_a_person_refreshes_every_inbox_list(
    team, connect, session_of, staff_socket
):
    chat, ready = await open_session(connect)
    await send(chat, {"type": "human.request"})
    assert (await recv(chat))["status"] == "waiting"
    socket, _ = await staff_socket(await session_of("sam"))
    await send(chat, {"type": "message.send", "id": "c-1", "text": "Hello?"})
    frame = await recv_inbox(socket)
    assert (frame["type"], frame["status"]) == ("inbox.changed", "waiting")
    # Not a new waiting conversation (no browser notification): a message in one.
    assert (frame["change"], frame["waiting"]) == ("message", 1)


async def test_who_comes_online_reaches_every_staff_socket_once(team, session_of, staff_socket):
    sam_socket, _ = await staff_socket(await session_of("sam"))
    assert await recv(sam_socket) == {"type": "presence.changed"}  # sam came online
    ana_cookie = await session_of("ana")
    ana_socket, _ = await staff_socket(ana_cookie)
    assert await recv(sam_socket) == {"type": "presence.changed"}  # and ana
    assert await recv(ana_socket) == {"type": "presence.changed"}
    # Ana's second tab, her ping, her closing it: she was online already, nobody re-reads.
    second, _ = await staff_socket(ana_cookie)
    await send(second, {"type": "ping"})
    assert await recv(second) == {"type": "pong"}
    await second.disconnect()
    assert await sam_socket.receive_nothing(timeout=0.3)
    online = await run(people.staff_online)()
    assert [p.user.username for p in online] == ["ana", "sam"]

    # Seen longer ago than SUPERORCH_STAFF_ONLINE_SECONDS: offline; their next frame is
    # them coming online again.
    await run(StaffPresence.objects.filter(user__username="ana").update)(
        last_seen=timezone.now() - timedelta(seconds=settings.SUPERORCH_STAFF_ONLINE_SECONDS + 1)
    )
    assert [p.user.username for p in await run(people.staff_online)()] == ["sam"]
    await send(ana_socket, {"type": "ping"})
    assert {(await recv(ana_socket))["type"], (await recv(ana_socket))["type"]} == {
        "pong",
        "presence.changed",
    }
    assert await recv(sam_socket) == {"type": "presence.changed"}
