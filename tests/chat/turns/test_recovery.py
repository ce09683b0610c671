"""Recovery without a visitor (issue 12, defects 9 to 11): an interrupted turn ends on
every live socket, the sweep answers what waits for nobody, the lease is short and
renewed, a held lease is asked again with backoff."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from celery import current_app
from django.utils import timezone

from chat import selectors, services, turns
from chat.models import Conversation, Message, Turn
from chat.turns import runner, scheduler
from superorch_site.settings import base
from tests.chat.test_consumers import open_session, until_turn_done

from .test_scheduler import _conversation_with_pending, _statuses

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


@sync_to_async
def left_by_a_dead_process(conversation_uuid: str, *, lease_left: float = -1.0) -> Turn:
    """A pending message whose turn was running when its process died (lease expired)."""
    conversation = Conversation.objects.get(uuid=conversation_uuid)
    message, _ = services.message_receive(
        conversation=conversation, client_id="c-lost", text="I was charged twice"
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        busy_until=timezone.now() + timedelta(seconds=lease_left)
    )
    return Turn.objects.create(conversation=conversation, reply_to=message)


# --- 9. An interrupted turn ends on live sockets ---------------------------------------


async def test_an_interrupted_turn_ends_on_every_socket_then_the_message_is_answered(team, connect):
    first, ready = await open_session(connect)
    second, _ = await open_session(connect, token=ready["token"])
    dead = await left_by_a_dead_process(ready["conversation"])
    assert await scheduler.sweep_once() == 1  # no visitor needed
    for comm in (first, second):
        frames = await until_turn_done(comm, turns_done=2, timeout=10)
        error, done = frames[0], frames[1]
        assert error["type"] == "error" and error["ref"] == str(dead.uuid)
        assert error["code"] == "internal" and "answering your message again" in error["message"]
        assert (done["type"], done["turn"], done["status"]) == (
            "turn.done",
            str(dead.uuid),
            "error",
        )
        assert frames[2]["type"] == "turn.started" and frames[2]["reply_to"] == "c-lost"
        assert frames[-1]["type"] == "turn.done" and frames[-1]["status"] == "ok"
    await dead.arefresh_from_db()
    assert dead.status == "error" and dead.error.startswith("Interrupted")


# --- 10. Queued messages are answered by themselves -------------------------------------


async def test_the_sweep_answers_a_queued_message_once_it_is_due_without_a_visitor(team):
    conversation = await _conversation_with_pending("c-1")
    await Message.objects.filter(conversation=conversation).aupdate(
        retry_at=timezone.now() + timedelta(seconds=60)
    )
    assert await scheduler.sweep_once() == 0  # not due yet
    await Message.objects.filter(conversation=conversation).aupdate(
        retry_at=timezone.now() - timedelta(seconds=1)
    )
    assert await scheduler.sweep_once() == 1
    await turns.wait_idle(timeout=10)
    assert await _statuses(conversation) == ["answered"]


async def test_the_sweep_leaves_a_conversation_whose_lease_is_alive(team, connect):
    _, ready = await open_session(connect)
    await left_by_a_dead_process(ready["conversation"], lease_left=60)
    assert await sync_to_async(selectors.conversations_to_resume)() == []
    assert await scheduler.sweep_once() == 0


async def test_on_celery_the_sweep_queues_the_conversations(team, settings, monkeypatch):
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **kw: sent.append((name, kw)))
    settings.SUPERORCH_TURN_RUNNER = "celery"
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    conversation = await _conversation_with_pending("c-1")
    assert await scheduler.sweep_once() == 1
    assert sent == [("chat.answer_conversation", {"args": (conversation.pk,), "countdown": None})]


def test_beat_runs_the_sweep_and_a_worker_start_sweeps_on_celery(settings):
    from chat import tasks

    schedule = settings.CELERY_BEAT_SCHEDULE["answer-pending-sweep"]
    assert schedule["task"] == scheduler.SWEEP_TASK and schedule["schedule"] > 0
    assert current_app.tasks[scheduler.SWEEP_TASK].name == tasks.answer_pending_sweep_task.name
    assert base.SUPERORCH_PENDING_SWEEP_INTERVAL == 10.0


async def test_the_web_process_starts_its_sweep_timer_on_its_first_scope(team, settings):
    from superorch_site.asgi import ProcessStart

    settings.SUPERORCH_PENDING_SWEEP_INTERVAL = 0.05
    conversation = await _conversation_with_pending("c-1")
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    start = ProcessStart(app)
    await start({"type": "http"}, None, None)
    assert seen == ["http"] and turns.state.sweeper is not None
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if await _statuses(conversation) == ["answered"]:
                break
        assert await _statuses(conversation) == ["answered"]
    finally:
        turns.state.sweeper.cancel()
        await turns.wait_idle(timeout=10)


async def test_the_lifespan_protocol_is_answered():
    from superorch_site.asgi import ProcessStart

    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    outbox = []

    async def receive():
        return inbox.pop(0)

    async def send(message):
        outbox.append(message["type"])

    await ProcessStart(None)({"type": "lifespan"}, receive, send)
    assert outbox == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    if turns.state.sweeper is not None:
        turns.state.sweeper.cancel()


# --- 11. A short lease, renewed; a held lease asked again with backoff -------------------


def test_the_lease_is_short_and_the_heartbeat_renews_it_at_a_third():
    assert base.SUPERORCH_TURN_LEASE == 15.0


async def test_the_heartbeat_renews_the_lease_at_a_third_of_it(settings, monkeypatch):
    settings.SUPERORCH_TURN_LEASE = 0.3
    renewed = []
    monkeypatch.setattr(
        services, "conversation_renew", lambda conversation_id: renewed.append(conversation_id)
    )
    beat = asyncio.create_task(runner._heartbeat(7))
    await asyncio.sleep(0.55)
    beat.cancel()
    assert len(renewed) >= 4  # every 0.1 s


def test_the_look_again_backs_off_exponentially_up_to_a_cap():
    delays = [scheduler.claim_retry_delay(n) for n in range(6)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


async def test_a_held_lease_is_asked_again_less_and_less_often(team, monkeypatch):
    conversation = await _conversation_with_pending("c-1")
    assert await sync_to_async(services.conversation_claim)(conversation_id=conversation.pk)
    delays = []

    async def later(conversation_id, conversation_uuid, delay, attempt=0):
        delays.append((delay, attempt))

    monkeypatch.setattr(scheduler, "_later", later)
    for _ in range(4):
        await scheduler._drain(conversation.pk, conversation.uuid)
    assert delays == [(1.0, 1), (2.0, 2), (4.0, 3), (4.0, 4)]
    await sync_to_async(services.conversation_release)(conversation_id=conversation.pk)
    await scheduler._drain(conversation.pk, conversation.uuid)
    assert conversation.pk not in turns.state.claim_attempts
    assert await _statuses(conversation) == ["answered"]


def test_on_celery_the_look_again_carries_its_attempt(monkeypatch, settings):
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **kw: sent.append((name, kw)))
    scheduler._publish(5, 2.0, 2)
    assert sent == [("chat.answer_conversation", {"args": (5, 2), "countdown": 2.0})]
