"""Security controls of the chat socket and the admin (docs/security.md): identities compared
whole, JSON depth and Unicode, idle sockets, origins, frames after a close, safe admin pages."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from chat import broadcast, protocol
from chat.models import Conversation, Message, Site, Turn, TurnEvent
from chat.origins import validate_origins
from chat.services import identity_signature, site_ensure_default
from tests.chat.test_consumers import (  # noqa: F401  (an autouse fixture and helpers)
    _no_turn_outlives_the_test,
    assert_error,
    assert_still_open,
    count,
    expect_close,
    open_session,
    recv,
    send,
    start,
)

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cret-for-tests"
LONG = "p" * 200
DEPTH = 32  # protocol.Limits.JSON_DEPTH


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def deep_text(depth: int) -> str:
    """A JSON object `depth` levels deep, as text (json.dumps itself would recurse)."""
    return '{"a":' * depth + "1" + "}" * depth


@pytest.fixture
def shop(db):
    return Site.objects.create(
        key="shop", name="Shop", identity_secret=SECRET, require_verified=True
    )


def signed(user_id: str) -> dict:
    return {"id": user_id, "hash": identity_signature(secret=SECRET, user_id=user_id)}


@pytest.fixture
def no_tracebacks(caplog):
    caplog.set_level(logging.ERROR)
    yield caplog
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# --- 1. Identities are compared whole -------------------------------------------------------


async def test_a_verified_id_sharing_the_first_200_characters_never_opens_anothers_conversation(
    team, shop, connect
):
    alice = await connect()
    await send(alice, {"type": "session.start", "site": "shop", "user": signed(LONG + "-alice")})
    reply = await recv(alice)
    if reply["type"] == "session.ready":  # before the fix: Alice writes her secret
        await send(alice, {"type": "message.send", "id": "a-1", "text": "SECRET-ALICE 4242"})
        await recv(alice)

    bob = await connect()
    await send(bob, {"type": "session.start", "site": "shop", "user": signed(LONG + "-bob")})
    answer = await recv(bob)
    assert "SECRET-ALICE" not in json.dumps(answer)
    assert_error(answer, "identity_invalid")
    await expect_close(bob, 4401)


async def test_a_verified_id_of_the_stored_length_works_and_one_over_it_is_refused(
    team, shop, connect
):
    limit = Conversation._meta.get_field("user_id").max_length
    comm = await connect()
    ready = await start(comm, site="shop", user=signed("u" * limit))
    stored = await sync_to_async(Conversation.objects.get)(uuid=ready["conversation"])
    assert stored.user_id == "u" * limit and stored.user_verified

    comm = await connect()
    await send(comm, {"type": "session.start", "site": "shop", "user": signed("u" * (limit + 1))})
    assert_error(await recv(comm), "identity_invalid")
    await expect_close(comm, 4401)


async def test_user_names_and_emails_are_stored_whole_or_refused(team, connect):
    name_limit = Conversation._meta.get_field("user_name").max_length
    comm = await connect()
    ready = await start(comm, user={"name": "N" * name_limit, "email": "e@example.com"})
    stored = await sync_to_async(Conversation.objects.get)(uuid=ready["conversation"])
    assert stored.user_name == "N" * name_limit

    comm = await connect()
    await send(comm, {"type": "session.start", "user": {"name": "N" * (name_limit + 1)}})
    assert_error(await recv(comm), "bad_frame")
    await expect_close(comm, 4400)
    assert await count(Conversation) == 1


# --- 2 and 3. JSON depth and lone surrogates ------------------------------------------------

SURROGATE_FRAMES = [
    r'{"type": "ping", "x": "\ud800"}',
    r'{"type": "message.send", "id": "\ud800", "text": "hi"}',
    r'{"type": "message.send", "id": "m-1", "text": "hi \udfff"}',
    r'{"type": "feedback", "message": "\ud800", "value": "up"}',
    r'{"type": "context.update", "context": {"p": "\ud800"}}',
    r'{"type": "context.update", "context": {"\ud800": 1}}',
]


@pytest.mark.parametrize("text", SURROGATE_FRAMES)
async def test_lone_surrogates_are_a_bad_frame_and_the_connection_is_kept(
    team, connect, no_tracebacks, text
):
    comm, ready = await open_session(connect)
    await comm.send_to(text_data=text)
    assert_error(await recv(comm), "bad_frame")
    await assert_still_open(comm)
    assert await count(Message) == 0
    stored = await sync_to_async(Conversation.objects.get)(uuid=ready["conversation"])
    assert stored.page_context == {}


@pytest.mark.parametrize(
    "text",
    [deep_text(1000), deep_text(DEPTH + 1)],
    ids=["ping-1000", "over-the-limit"],
)
async def test_deeply_nested_frames_are_a_bad_frame_and_the_connection_is_kept(
    team, connect, no_tracebacks, text
):
    comm, ready = await open_session(connect)
    frame = text.replace('{"a":', '{"type": "ping", "a":', 1)
    await comm.send_to(text_data=frame)
    assert_error(await recv(comm), "bad_frame")
    await assert_still_open(comm)


async def test_a_deep_context_is_refused_and_nothing_is_stored(team, connect, no_tracebacks):
    comm, ready = await open_session(connect)
    await comm.send_to(text_data='{"type": "context.update", "context": ' + deep_text(900) + "}")
    assert_error(await recv(comm), "bad_frame")
    await assert_still_open(comm)
    stored = await sync_to_async(Conversation.objects.get)(uuid=ready["conversation"])
    assert stored.page_context == {}


async def test_a_context_at_the_depth_limit_is_stored(team, connect):
    comm, ready = await open_session(connect)
    context = nested(DEPTH - 1)  # the frame object is one level
    await send(comm, {"type": "context.update", "context": context})
    await assert_still_open(comm)
    stored = await sync_to_async(Conversation.objects.get)(uuid=ready["conversation"])
    assert stored.page_context == context


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "session.start", "context": ' + deep_text(900) + "}",
        r'{"type": "session.start", "user": {"id": "\ud800", "hash": "00"}}',
        r'{"type": "session.start", "user": {"name": "\ud800"}}',
        '{"type": "session.start", "x": ' + deep_text(1000) + "}",
    ],
    ids=["deep-context", "surrogate-id", "surrogate-name", "deep-1000"],
)
async def test_a_bad_session_start_is_a_bad_frame_and_closes_with_4400(
    team, connect, no_tracebacks, text
):
    comm = await connect()
    await comm.send_to(text_data=text)
    assert_error(await recv(comm), "bad_frame")
    await expect_close(comm, 4400)
    assert await count(Conversation) == 0


def test_an_error_frame_never_carries_an_unencodable_ref():
    frame = protocol.Error(code=protocol.ErrorCode.NOT_FOUND, ref="\ud800")
    assert json.loads(frame.encode()).get("ref") is None


# --- 2. The admin renders whatever is stored -------------------------------------------------


@pytest.fixture
def poisoned(team):
    """Rows written straight to the database, as an older server could have stored them."""
    site = site_ensure_default()
    # PostgreSQL's json type refuses a lone surrogate itself: only SQLite can hold one.
    odd = "\ud800" if connection.vendor == "sqlite" else "\u2028"
    conversation = Conversation.objects.create(
        site=site, token_hash="x" * 64, page_context={"deep": nested(900), "p": odd}
    )
    user = Message.objects.create(conversation=conversation, role="user", text="hi", client_id="1")
    turn = Turn.objects.create(conversation=conversation, reply_to=user, usage=nested(900))
    TurnEvent.objects.create(turn=turn, kind="error", data={"code": odd, "detail": "x"})
    TurnEvent.objects.create(turn=turn, kind="route", data=nested(900))
    return conversation, turn


def test_the_admin_pages_render_poisoned_json(admin_client, poisoned):
    conversation, turn = poisoned
    for url in (
        reverse("admin:chat_conversation_changelist"),
        reverse("admin:chat_conversation_change", args=[conversation.pk]),
        reverse("admin:chat_message_changelist"),
        reverse("admin:chat_turn_changelist"),
        reverse("admin:chat_turn_change", args=[turn.pk]),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        response.content.decode("utf-8")  # encodable all the way
    page = admin_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    if connection.vendor == "sqlite":
        assert "\\ud800" in page.content.decode()  # shown as an escape, as it was stored


def test_stored_json_renders_as_escaped_text():
    from chat.rendering import json_from_db, render_json

    assert json_from_db('{"a": "<b>é</b>"}') == ({"a": "<b>é</b>"}, '{\n  "a": "<b>é</b>"\n}')
    assert "&lt;b&gt;" in render_json('{"a": "<b>"}')
    assert json_from_db(deep_text(900))[0] is None
    assert json_from_db("not json") == (None, "not json")
    assert json_from_db(None) == (None, "")


# --- 6. A socket that never starts a session ------------------------------------------------


async def test_a_socket_without_session_start_is_closed_after_the_timeout(team, connect, settings):
    settings.SUPERORCH_SESSION_START_TIMEOUT = 0.2
    comm = await connect()
    assert_error(await recv(comm, timeout=3), "bad_frame")
    await expect_close(comm, 4400)


async def test_pings_do_not_keep_a_socket_without_a_session(team, connect, settings):
    settings.SUPERORCH_SESSION_START_TIMEOUT = 0.3
    comm = await connect()
    await send(comm, {"type": "ping"})  # before a session: refused and closed at once
    assert_error(await recv(comm), "bad_frame")
    await expect_close(comm, 4400)


async def test_a_started_session_is_not_closed_by_the_timer(team, connect, settings):
    settings.SUPERORCH_SESSION_START_TIMEOUT = 0.2
    comm, _ = await open_session(connect)
    await asyncio.sleep(0.4)
    await assert_still_open(comm)


async def test_a_session_a_busy_server_opens_late_is_not_closed_by_the_timer(
    team, connect, settings, monkeypatch
):
    """The client sent session.start in time; the server took longer than the timeout to
    open it (1,000 sockets at once, waiting for the database): the session opens."""
    from chat import consumers

    settings.SUPERORCH_SESSION_START_TIMEOUT = 0.2
    slow = consumers.selectors.site_get

    def site_get_slowly(**kwargs):
        time.sleep(0.5)
        return slow(**kwargs)

    monkeypatch.setattr(consumers.selectors, "site_get", site_get_slowly)
    comm, ready = await open_session(connect)
    assert ready["type"] == "session.ready"
    await asyncio.sleep(0.3)
    await assert_still_open(comm)


# --- 7. Origins: scheme, host and port ------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [b"http://localhost:9999", b"https://localhost", b"ws://localhost", b"http://evil.example"],
)
async def test_origins_must_match_scheme_host_and_port(team, communicator, settings, origin):
    settings.SUPERORCH_APP_ORIGINS = ["http://localhost"]
    comm = communicator(origin)
    connected, _ = await comm.connect(timeout=5)
    assert connected is False


async def test_a_sites_allowed_origin_may_connect(team, communicator, settings):
    settings.SUPERORCH_APP_ORIGINS = ["http://localhost"]
    await sync_to_async(Site.objects.create)(
        key="shop", name="Shop", allowed_origins="https://shop.example.com\nhttps://*.example.org"
    )
    for origin in (
        b"https://shop.example.com",
        b"https://shop.example.com:443",
        b"https://a.example.org",
    ):
        comm = communicator(origin)
        connected, _ = await comm.connect(timeout=5)
        assert connected is True, origin
        await comm.disconnect()
    for origin in (
        b"http://shop.example.com",
        b"https://shop.example.com:8443",
        b"https://example.org",
    ):
        comm = communicator(origin)
        connected, _ = await comm.connect(timeout=5)
        assert connected is False, origin


def test_allowed_origins_refuse_ports_out_of_range_and_other_schemes():
    validate_origins("http://127.0.0.1:1\nhttps://shop.example.com:65535")
    for bad in ("http://127.0.0.1:99999", "http://127.0.0.1:0", "ws://shop.example.com"):
        with pytest.raises(ValidationError):
            validate_origins(bad)


# --- 14. Smaller ones -----------------------------------------------------------------------


@pytest.mark.parametrize("version", [True, 1.0, "1", None], ids=["true", "1.0", "'1'", "null"])
async def test_protocol_must_be_the_integer_1(team, connect, version):
    comm = await connect()
    await send(comm, {"type": "session.start", "protocol": version})
    assert_error(await recv(comm), "bad_frame")
    await expect_close(comm, 4400)


async def test_nothing_is_sent_after_a_close_for_abuse(team, connect, settings, no_tracebacks):
    settings.SUPERORCH_RATE_LIMIT = "1/minute"
    settings.SUPERORCH_RATE_LIMIT_CLOSE_AFTER = 1
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": "hello"})
    while (await recv(comm))["type"] != "turn.done":
        pass
    await send(comm, {"type": "message.send", "id": "c-2", "text": "hello"})
    await send(comm, {"type": "ping"})  # arrives after the close
    assert (await recv(comm))["code"] == "rate_limited"
    await expect_close(comm, 4429)
    await broadcast.broadcast(ready["conversation"], protocol.Pong())
    assert await comm.receive_nothing(timeout=0.2)


def test_production_app_origins_are_https_on_the_allowed_hosts():
    from superorch_site.settings.base import https_origins

    assert https_origins(["chat.example.com", ".example.org", "*"]) == [
        "https://chat.example.com",
        "https://example.org",
        "https://*.example.org",
    ]
