"""The turn scheduler (chat/turns/scheduler.py): one runner per conversation, the lease,
the Celery hand-off by task name, and its per-process state."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from celery import current_app

from chat import selectors, services, turns
from chat.models import Conversation, Message, MessageStatus, Role, Site
from chat.turns import scheduler
from chat.turns.slots import TurnSlots

CHAT = Path(scheduler.__file__).resolve().parents[1]


@pytest.fixture
def sent(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, **kw: calls.append((name, kw)), raising=False
    )
    return calls


def test_on_celery_only_with_the_celery_runner_and_a_real_broker(settings, monkeypatch):
    settings.SUPERORCH_TURN_RUNNER = "inline"
    assert scheduler.on_celery() is False
    settings.SUPERORCH_TURN_RUNNER = "celery"
    monkeypatch.setitem(current_app.conf, "task_always_eager", True)
    assert scheduler.on_celery() is False
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    assert scheduler.on_celery() is True


def test_work_goes_to_celery_by_task_name(sent):
    scheduler._publish(42, 0.0)
    scheduler._publish(42, 1.5)
    assert sent == [
        ("chat.answer_conversation", {"args": (42,), "countdown": None}),
        ("chat.answer_conversation", {"args": (42,), "countdown": 1.5}),
    ]


def test_a_broker_that_cannot_be_reached_leaves_the_message_pending(monkeypatch, caplog):
    def down(*args, **kwargs):
        raise ConnectionError("no broker")

    monkeypatch.setattr(current_app, "send_task", down, raising=False)
    scheduler._publish(7, 0.0)  # logged, not raised
    assert "could not queue conversation 7" in caplog.text


def test_the_celery_task_is_registered_under_the_name_the_scheduler_sends():
    from chat.tasks import answer_conversation_task

    assert answer_conversation_task.name == scheduler.ANSWER_TASK
    registered = current_app.tasks[scheduler.ANSWER_TASK]
    assert registered.run.__module__ == "chat.tasks"
    assert registered.run.__name__ == answer_conversation_task.__name__


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
            names.update(f"{node.module or ''}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_turns_package_never_imports_the_celery_tasks_or_the_celery_app():
    for path in (CHAT / "turns").glob("*.py"):
        imported = _imports(path)
        assert not any("tasks" in name for name in imported), path
        assert not any("superorch_site" in name for name in imported), path


def test_the_state_is_one_object_with_a_reset():
    loop = asyncio.new_event_loop()
    try:
        slots = turns.state.slots_for(loop)
        assert isinstance(slots, TurnSlots) and turns.state.slots_for(loop) is slots
        turns.state.again.add(1)
        turns.state.reset()
        assert (turns.state.tasks, turns.state.again) == ({}, set())
        assert turns.state.slots_for(loop) is not slots
    finally:
        loop.close()


@pytest.mark.django_db(transaction=True)
async def test_a_conversation_gets_one_runner_and_a_second_wake_looks_again(team, settings):
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.002
    conversation = await _conversation_with_pending("c-1")
    first = turns.schedule(conversation)
    second = turns.schedule(conversation)
    assert first is second and conversation.pk in turns.state.again
    await turns.wait_idle(timeout=10)
    assert await _statuses(conversation) == ["answered"]
    assert turns.state.tasks == {}


@pytest.mark.django_db(transaction=True)
async def test_a_lease_held_elsewhere_is_asked_again_until_it_is_free(team, monkeypatch):
    monkeypatch.setattr(scheduler, "CLAIM_RETRY", 0.2)
    conversation = await _conversation_with_pending("c-1")
    assert await sync_to_async(services.conversation_claim)(conversation_id=conversation.pk)
    turns.schedule(conversation)  # another server holds the lease: nothing answered yet
    await turns.wait_idle(timeout=5)
    assert await _statuses(conversation) == ["pending"]
    await sync_to_async(services.conversation_release)(conversation_id=conversation.pk)
    for _ in range(100):  # the retry comes by itself
        await asyncio.sleep(0.05)
        await turns.wait_idle(timeout=10)
        if await _statuses(conversation) == ["answered"]:
            break
    assert await _statuses(conversation) == ["answered"]


@pytest.mark.django_db(transaction=True)
async def test_on_celery_schedule_hands_the_conversation_over(team, settings, monkeypatch, sent):
    settings.SUPERORCH_TURN_RUNNER = "celery"
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    conversation = await _conversation_with_pending("c-1")
    assert turns.schedule(conversation) is None
    for _ in range(50):
        if sent:
            break
        await asyncio.sleep(0.02)
    assert sent == [("chat.answer_conversation", {"args": (conversation.pk,), "countdown": None})]
    assert turns.state.tasks == {}


@pytest.mark.django_db(transaction=True)
def test_answer_pending_now_answers_here_and_ignores_unknown_conversations(team):
    scheduler.answer_pending_now(10**9)  # nothing to do
    conversation = async_free_conversation("c-1")
    scheduler.answer_pending_now(conversation.pk)
    assert list(conversation.messages.values_list("status", flat=True)) == ["answered", "done"]
    assert not selectors.conversation_has_pending(conversation_id=conversation.pk)


def async_free_conversation(client_id: str) -> Conversation:
    site = Site.objects.get(key="demo")
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    Message.objects.create(
        conversation=conversation,
        role=Role.USER,
        text="I was charged twice for my subscription",
        client_id=client_id,
        status=MessageStatus.PENDING,
    )
    return conversation


async def _conversation_with_pending(client_id: str) -> Conversation:
    return await sync_to_async(async_free_conversation)(client_id)


async def _statuses(conversation: Conversation) -> list[str]:
    rows = Message.objects.filter(conversation=conversation, role=Role.USER).order_by("id")
    return [status async for status in rows.values_list("status", flat=True)]


def test_each_celery_task_defers_its_own_publishes_on_a_threads_pool():
    """A worker's threads pool runs several answer tasks at once: what one defers to its
    end (a "look again" for its conversation) is its own, never another's, never lost."""
    import threading

    from chat.turns import scheduler

    barrier = threading.Barrier(2)
    got: dict[int, list] = {}

    def task(n: int) -> None:
        scheduler.state.deferred = []
        barrier.wait()  # both tasks have started
        scheduler.state.deferred.append((n, 1.0, 0))
        barrier.wait()
        got[n], scheduler.state.deferred = scheduler.state.deferred, None

    threads = [threading.Thread(target=task, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == {1: [(1, 1.0, 0)], 2: [(2, 1.0, 0)]}
    assert scheduler.state.deferred is None  # and none outside a task
