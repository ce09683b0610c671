"""Per-client limits (docs/security.md): one client cannot starve everyone by opening
sockets, starting conversations or sending messages; limits are keyed by its address,
taken from X-Forwarded-For only behind a trusted proxy."""

from __future__ import annotations

import ipaddress

import pytest

from chat import clients
from chat.models import Conversation, Message
from chat.turns import scheduler

pytestmark = pytest.mark.django_db(transaction=True)
CHARGED_TWICE = "I was charged twice for my subscription"


@pytest.fixture
async def connect_from(connect):
    """Open sockets from a given peer address (and X-Forwarded-For)."""
    clients.sockets.reset()

    async def make(peer: str, xff: str | None = None):
        headers = [(b"x-forwarded-for", xff.encode())] if xff else []
        return await connect(peer=peer, headers=headers)

    yield make
    await scheduler.wait_idle()
    clients.sockets.reset()


async def start(comm, **fields) -> dict:
    await comm.send_json_to({"type": "session.start", "protocol": 1, "site": "demo", **fields})
    return await comm.receive_json_from(timeout=5)


async def closed_with(comm) -> int:
    return (await comm.receive_output(timeout=5))["code"]


async def test_too_many_sockets_from_one_client_are_closed(team, connect_from, settings):
    settings.SUPERORCH_CLIENT_MAX_SOCKETS = 3
    for _ in range(3):
        assert (await start(await connect_from("203.0.113.7")))["type"] == "session.ready"
    extra = await connect_from("203.0.113.7")
    refused = await extra.receive_json_from(timeout=5)
    assert refused["code"] == "rate_limited" and "connections" in refused["message"]
    assert await closed_with(extra) == 4429
    # Another client is not affected.
    assert (await start(await connect_from("198.51.100.9")))["type"] == "session.ready"


async def test_a_closed_socket_gives_its_place_back(team, connect_from, settings):
    settings.SUPERORCH_CLIENT_MAX_SOCKETS = 1
    first = await connect_from("203.0.113.7")
    await first.disconnect()
    second = await connect_from("203.0.113.7")
    assert (await start(second))["type"] == "session.ready"


async def test_new_conversations_per_client_are_limited_and_leave_no_row(
    team, connect_from, settings
):
    settings.SUPERORCH_CLIENT_NEW_CONVERSATION_RATE = "2/minute"
    tokens = []
    for _ in range(2):
        ready = await start(await connect_from("203.0.113.7"))
        tokens.append(ready["token"])
    before = await Conversation.objects.acount()
    comm = await connect_from("203.0.113.7")
    refused = await start(comm)
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert await closed_with(comm) == 4429
    assert await Conversation.objects.acount() == before  # nothing of it stays
    # Resuming a conversation is not a new one.
    assert (await start(await connect_from("203.0.113.7"), token=tokens[0]))["type"] == (
        "session.ready"
    )


async def test_messages_per_client_count_over_all_its_conversations(team, connect_from, settings):
    settings.SUPERORCH_CLIENT_MESSAGE_RATE = "2/minute"
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.0
    acks = []
    for n in range(3):
        comm = await connect_from("203.0.113.7")
        await start(comm)
        await comm.send_json_to({"type": "message.send", "id": f"m-{n}", "text": CHARGED_TWICE})
        acks.append(await comm.receive_json_from(timeout=5))
    assert [a["type"] for a in acks] == ["message.ack", "message.ack", "error"]
    assert acks[2]["code"] == "rate_limited" and acks[2]["ref"] == "m-2"
    assert not await Message.objects.filter(client_id="m-2").aexists()


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(
    team, connect_from, settings
):
    settings.SUPERORCH_CLIENT_MAX_SOCKETS = 1
    settings.SUPERORCH_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    a = await connect_from("10.0.0.2", xff="203.0.113.7")
    b = await connect_from("10.0.0.2", xff="198.51.100.9")  # same proxy, another client
    for comm in (a, b):
        assert (await start(comm))["type"] == "session.ready"
    c = await connect_from("10.0.0.2", xff="203.0.113.7")
    assert (await c.receive_json_from(timeout=5))["code"] == "rate_limited"
    # Not trusted: a client naming someone else is still itself.
    settings.SUPERORCH_TRUSTED_PROXIES = []
    d = await connect_from("192.0.2.1", xff="203.0.113.99")
    assert (await start(d))["type"] == "session.ready"
    e = await connect_from("192.0.2.1", xff="203.0.113.100")
    assert (await e.receive_json_from(timeout=5))["code"] == "rate_limited"


async def test_a_flood_from_one_client_does_not_make_another_wait_for_it(
    team, connect_from, settings
):
    from chat.models import Turn

    settings.SUPERORCH_MAX_ACTIVE_TURNS = 1  # one turn at a time: the queue decides
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.002
    flood = []
    for _ in range(8):
        comm = await connect_from("203.0.113.7")
        await start(comm)
        flood.append(comm)
    for n, comm in enumerate(flood):
        await comm.send_json_to({"type": "message.send", "id": f"f-{n}", "text": CHARGED_TWICE})
    other = await connect_from("198.51.100.9")
    ready = await start(other)
    await other.send_json_to({"type": "message.send", "id": "o-1", "text": CHARGED_TWICE})
    while (await other.receive_json_from(timeout=20))["type"] != "turn.done":
        pass
    await scheduler.wait_idle(timeout=60)
    started = [
        str(t.conversation.uuid)
        async for t in Turn.objects.select_related("conversation").order_by("started_at", "id")
    ]
    assert len(started) == 9
    # Round robin: the other client's turn comes right after the flood's first one
    # or two, not after all eight (first come first served).
    assert started.index(ready["conversation"]) <= 2
