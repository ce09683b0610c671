"""Approvals over the real consumer, on the demo backend and the offline model: a refund
asks first, a no does nothing, a yes (even sent twice) refunds once, staff decide above
EUR 100, an approval nobody answers expires, and a page that comes back sees the card."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import turns
from chat.models import Message, Turn, TurnEvent
from orchestrator.models import ActionCall, Approval
from tests.support.demo import refunds

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 15
REFUND = "I'd like a refund for invoice ACME-2024-000123"
BIG_REFUND = "I'd like a refund for invoice ACME-2024-000124"


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=15)


async def start(connect, token=None):
    comm = await connect()
    frame = {"type": "session.start", "protocol": 1, "site": "demo"}
    if token:
        frame["token"] = token
    await comm.send_json_to(frame)
    ready = await comm.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "session.ready"
    return comm, ready


async def until_turn_done(comm) -> list[dict]:
    frames = []
    while not frames or frames[-1]["type"] != "turn.done":
        frames.append(await comm.receive_json_from(timeout=TIMEOUT))
    return frames


async def ask_refund(connect, text=REFUND):
    comm, ready = await start(connect)
    await comm.send_json_to({"type": "message.send", "id": "c-1", "text": text})
    frames = await until_turn_done(comm)
    (request,) = [f for f in frames if f["type"] == "approval.request"]
    return comm, ready, frames, request


def replies(frames) -> list[str]:
    return [
        f["message"]["text"]
        for f in frames
        if f["type"] == "message.done" and f["message"]["role"] == "assistant"
    ]


async def test_a_refund_asks_first_and_nothing_is_done_yet(connect, demo_backend):
    comm, _, frames, request = await ask_refund(connect)
    assert frames[-1]["status"] == "paused"
    assert request["by"] == "user" and request["action"] == "request_refund"
    assert request["summary"] == "Refund EUR 49.00 for invoice ACME-2024-000123"
    assert request["agent"] == "billing" and request["turn"] == frames[-1]["turn"]
    assert timezone.datetime.fromisoformat(request["expires"]) > timezone.now()
    assert refunds(demo_backend) == []
    message = await Message.objects.aget(role="user")
    assert message.status == "waiting"
    call = await ActionCall.objects.aget(tool="request_refund")
    assert call.status == "needs_approval" and call.approval == "user"
    turn = await Turn.objects.aget()
    assert turn.status == "paused"
    assert await TurnEvent.objects.filter(turn=turn, kind="approval").aexists()
    await comm.disconnect()


async def test_yes_twice_refunds_exactly_once(connect, demo_backend):
    comm, _, _, request = await ask_refund(connect)
    answer = {"type": "approval.respond", "approval": request["approval"], "approve": True}
    await comm.send_json_to(answer)
    resolved = await comm.receive_json_from(timeout=TIMEOUT)
    assert resolved == {
        "type": "approval.resolved",
        "approval": request["approval"],
        "outcome": "approved",
    }
    frames = await until_turn_done(comm)
    assert frames[0]["type"] == "turn.started" and frames[-1]["status"] == "ok"
    (reply,) = replies(frames)
    assert reply.startswith("Done. Here's what the system recorded")
    assert "- Amount: 49.00" in reply
    await comm.send_json_to(answer)  # the same yes again: nothing new happens
    again = await comm.receive_json_from(timeout=TIMEOUT)
    assert again["type"] == "approval.resolved" and again["outcome"] == "approved"
    await turns.wait_idle(timeout=10)
    assert await comm.receive_nothing(timeout=0.3)
    assert len(refunds(demo_backend)) == 1
    call = await ActionCall.objects.aget(tool="request_refund")
    assert (call.status, call.approved_by) == ("ok", "user")
    assert await Turn.objects.acount() == 2
    assert (await Message.objects.aget(role="user")).status == "answered"
    await comm.disconnect()


async def test_no_does_nothing_and_says_so(connect, demo_backend):
    comm, _, _, request = await ask_refund(connect)
    await comm.send_json_to(
        {"type": "approval.respond", "approval": request["approval"], "approve": False}
    )
    assert (await comm.receive_json_from(timeout=TIMEOUT))["outcome"] == "declined"
    frames = await until_turn_done(comm)
    (reply,) = replies(frames)
    assert reply.startswith("All right: I haven't done it, and nothing was changed.")
    assert refunds(demo_backend) == []
    call = await ActionCall.objects.aget(tool="request_refund")
    assert call.status == "declined" and call.approved_by == ""
    await comm.disconnect()


async def test_staff_decide_a_refund_above_100_and_the_user_cannot(connect, demo_backend):
    comm, _, frames, request = await ask_refund(connect, BIG_REFUND)
    assert request["by"] == "staff"
    assert request["summary"] == "Refund EUR 240.00 for invoice ACME-2024-000124"
    await comm.send_json_to(
        {"type": "approval.respond", "approval": request["approval"], "approve": True}
    )
    error = await comm.receive_json_from(timeout=TIMEOUT)
    assert error["type"] == "error" and error["code"] == "forbidden"
    assert (
        error["message"] == "Our support team decides on this one; you will see their answer here."
    )
    assert (await Approval.objects.aget()).status == "pending"
    assert refunds(demo_backend) == []
    await comm.disconnect()


async def test_an_unknown_approval_is_refused_in_plain_words(connect, team):
    comm, _ = await start(connect)
    for approval in ("nope", "6f1c1a1e-3c59-4a57-9d1b-4b7d0c1a2b3c"):
        await comm.send_json_to({"type": "approval.respond", "approval": approval, "approve": True})
        error = await comm.receive_json_from(timeout=TIMEOUT)
        assert error["code"] == "not_found"
        assert error["message"] == "There is no such approval in this conversation."
    await comm.send_json_to({"type": "approval.respond", "approval": "x", "approve": "yes"})
    assert (await comm.receive_json_from(timeout=TIMEOUT))["code"] == "bad_frame"
    await comm.disconnect()


async def test_an_approval_nobody_answers_expires_and_nothing_is_done(connect, demo_backend):
    comm, _, _, request = await ask_refund(connect)
    await Approval.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    await turns.sweep_once()
    resolved = await comm.receive_json_from(timeout=TIMEOUT)
    assert resolved["outcome"] == "expired" and resolved["approval"] == request["approval"]
    frames = await until_turn_done(comm)
    (reply,) = replies(frames)
    assert reply.startswith("Nobody approved this request in time, so nothing was done.")
    assert refunds(demo_backend) == []
    assert (await ActionCall.objects.aget(tool="request_refund")).status == "expired"
    # A late yes changes nothing.
    await comm.send_json_to(
        {"type": "approval.respond", "approval": request["approval"], "approve": True}
    )
    assert (await comm.receive_json_from(timeout=TIMEOUT))["outcome"] == "expired"
    assert refunds(demo_backend) == []
    await comm.disconnect()


async def test_a_page_that_comes_back_sees_the_pending_card(connect, demo_backend):
    comm, ready, _, request = await ask_refund(connect)
    await comm.disconnect()
    again, _ = await start(connect, token=ready["token"])
    card = await again.receive_json_from(timeout=TIMEOUT)
    assert card["type"] == "approval.request" and card["approval"] == request["approval"]
    assert "seq" not in card
    await again.disconnect()


async def test_the_command_expires_what_nobody_answered(connect, demo_backend):
    from io import StringIO

    from asgiref.sync import sync_to_async
    from django.core.management import call_command

    comm, _, _, _ = await ask_refund(connect)
    await Approval.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    out = StringIO()
    # Its own thread, as from a shell: it runs the turns it schedules itself.
    await sync_to_async(call_command, thread_sensitive=False)("expire_approvals", stdout=out)
    assert out.getvalue().startswith("Expired 1 approval(s)")
    frame = {}
    while frame.get("type") != "approval.resolved":  # the resumed turn's frames may follow
        frame = await comm.receive_json_from(timeout=TIMEOUT * 2)
    assert frame["outcome"] == "expired"
    assert (await Approval.objects.aget()).status == "expired"
    await comm.disconnect()
