"""Running turns, detached from any socket.

`schedule(conversation)` starts (at most) one task per conversation in this
process; it takes the conversation's lease in the database (so two servers never
answer the same conversation at once), answers every pending user message in
order, and broadcasts each event to all of the conversation's sockets. A reply
finishes and is stored even if every browser has gone. If the server dies, the
lease expires and the next session.start (or `manage.py answer_pending`)
answers what is still pending.

A process answers a limited number of conversations at once (turn_slots: the
limit follows the event loop's lag, up to SUPERORCH_MAX_ACTIVE_TURNS); the others
wait their turn, first come first served, holding no lease.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from functools import partial
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from orchestrator import alerts, metrics, runtime

from . import selectors, services
from .events import DeltaStream, broadcast, message_dict, turn_control_group
from .models import Conversation, Turn, TurnEvent
from .turn_slots import TurnSlots

logger = logging.getLogger(__name__)
db = database_sync_to_async

_tasks: dict[int, asyncio.Task[None]] = {}
CLAIM_RETRY = 1.0  # seconds: another holder of the lease is asked again this often
DELTA_INTERVAL = 0.04  # seconds: at most 25 message.delta frames a second per turn
_again: set[int] = set()  # conversations whose running task was asked to look again
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TurnSlots] = (
    weakref.WeakKeyDictionary()
)


def schedule(conversation: Conversation) -> asyncio.Task[None] | None:
    """Make sure this conversation's pending messages are being answered: by a task of
    this process, or, with SUPERORCH_TURN_RUNNER = "celery", by a Celery worker."""
    if on_celery():
        publish = partial(_publish, conversation.pk, 0.0)
        asyncio.get_running_loop().run_in_executor(None, publish)
        return None
    return _schedule(conversation.pk, conversation.uuid)


def on_celery() -> bool:
    from superorch_site.celery import app

    return settings.SUPERORCH_TURN_RUNNER == "celery" and not app.conf.task_always_eager


def answer_pending_now(conversation_id: int) -> None:
    """Answer what the conversation has pending, here and now (a Celery worker's task)."""
    conversation_uuid = (
        Conversation.objects.filter(pk=conversation_id).values_list("uuid", flat=True).first()
    )
    if conversation_uuid is not None:
        async_to_sync(_drain)(conversation_id, conversation_uuid)


def _schedule(pk: int, conversation_uuid) -> asyncio.Task[None]:
    task = _tasks.get(pk)
    if task is not None and not task.done():
        _again.add(pk)  # it looks again before it ends, even if it had found nothing
        return task
    task = asyncio.get_running_loop().create_task(_drain_in_turn(pk, conversation_uuid))
    _tasks[pk] = task
    task.add_done_callback(lambda t, pk=pk: _forget(pk, t))
    return task


def _forget(pk: int, task: asyncio.Task[None]) -> None:
    if _tasks.get(pk) is task:
        del _tasks[pk]
    if not task.cancelled() and task.exception() is not None:
        logger.error("turn runner for conversation %s crashed", pk, exc_info=task.exception())


async def wait_idle(timeout: float = 30.0) -> None:
    """Wait until this process runs no turns (tests and shutdown)."""
    async with asyncio.timeout(timeout):
        while _tasks:
            await asyncio.gather(*list(_tasks.values()), return_exceptions=True)


async def _drain_in_turn(conversation_id: int, conversation_uuid) -> None:
    """`_drain` once one of this process's turn slots is free (in arrival order)."""
    if not settings.SUPERORCH_MAX_ACTIVE_TURNS:
        return await _drain(conversation_id, conversation_uuid)
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = TurnSlots(
            settings.SUPERORCH_MAX_ACTIVE_TURNS, settings.SUPERORCH_TURN_LAG_TARGET
        )
    await slots.acquire()
    try:
        await _drain(conversation_id, conversation_uuid)
    finally:
        slots.release()


async def _later(conversation_id: int, conversation_uuid, delay: float) -> None:
    """Look at the conversation again in `delay` seconds."""
    if on_celery():
        await asyncio.to_thread(_publish, conversation_id, delay)
    else:
        loop = asyncio.get_running_loop()
        loop.call_later(delay, lambda: _schedule(conversation_id, conversation_uuid))


def _publish(conversation_id: int, delay: float) -> None:
    from .tasks import answer_conversation_task

    try:
        answer_conversation_task.apply_async((conversation_id,), countdown=delay or None)
    except Exception:  # the message stays pending: session.start or answer_pending answers it
        logger.exception("could not queue conversation %s's turn on Celery", conversation_id)


async def _drain(conversation_id: int, conversation_uuid) -> None:
    while True:
        _again.discard(conversation_id)
        if not await db(services.conversation_claim)(conversation_id=conversation_id):
            # Another server (or worker) holds the lease and answers what it finds pending,
            # but a message stored just after its last look would wait for the next wake:
            # look again shortly, until nothing is pending.
            if await db(selectors.conversation_has_pending)(conversation_id=conversation_id):
                await _later(conversation_id, conversation_uuid, CLAIM_RETRY)
            return
        try:
            while True:
                turn = await db(services.turn_start_next)(conversation_id=conversation_id)
                if turn is None:
                    break
                await _run(turn, conversation_uuid)
        finally:
            await db(services.conversation_release)(conversation_id=conversation_id)
        # A message stored while the lease was being released is answered too.
        if not await db(selectors.conversation_has_pending)(conversation_id=conversation_id):
            await _wake_later(conversation_id, conversation_uuid)
            # A message acknowledged after that check was scheduled onto this task while
            # it was ending: nothing awaits between this test and the return.
            if conversation_id not in _again:
                return


async def _wake_later(conversation_id: int, conversation_uuid) -> None:
    """A message queued because no model answered is tried again when it is due (in this
    process or on Celery; after a restart, the next session.start or `manage.py
    answer_pending`)."""
    due = await db(selectors.conversation_next_retry)(conversation_id=conversation_id)
    if due is None:
        return
    delay = max((due - timezone.now()).total_seconds(), 0.0) + 0.05
    await _later(conversation_id, conversation_uuid, delay)


async def _run(turn: Turn, conversation_uuid) -> None:
    # Every log line of this turn carries its ids (structlog contextvars; one task per turn).
    with structlog.contextvars.bound_contextvars(
        conversation=str(conversation_uuid), turn=str(turn.uuid)
    ):
        await _run_turn(turn, conversation_uuid)


async def _run_turn(turn: Turn, conversation_uuid) -> None:
    turn_key = str(turn.uuid)
    conversation = await db(Conversation.objects.get)(pk=turn.conversation_id)
    history = await db(services.turn_history)(turn=turn)
    reply_to = str(await db(lambda: turn.reply_to.client_id or str(turn.reply_to.uuid))())
    await broadcast(
        conversation_uuid, {"type": "turn.started", "turn": turn_key, "reply_to": reply_to}
    )

    deltas = DeltaStream(conversation_uuid, turn_key, DELTA_INTERVAL)

    async def emit(event: runtime.TurnUpdate) -> None:
        if isinstance(event, runtime.MessageDelta):
            await deltas.add(message=str(event.message_id), agent=event.agent.slug, text=event.text)
            return
        await deltas.flush()  # every other frame comes after the text before it
        if isinstance(event, runtime.RouteDecided):
            await db(services.turn_record_route)(turn=turn, decision=event.decision.as_dict())
        elif isinstance(event, runtime.MessageDone):
            message = await db(services.assistant_message_create)(
                turn=turn,
                message_uuid=event.message_id,
                agent_slug=event.agent.slug,
                agent_name=event.agent.name,
                text=event.text,
            )
            await broadcast(
                conversation_uuid,
                {"type": "message.done", "turn": turn_key, "message": message_dict(message)},
            )
        elif isinstance(event, runtime.AgentChanged):
            data = {
                "from": event.previous.as_dict() if event.previous else None,
                "to": event.current.as_dict(),
                "reason": event.reason,
            }
            await db(services.conversation_set_agent)(
                conversation_id=turn.conversation_id, agent_slug=event.current.slug
            )
            await db(services.turn_event_record)(
                turn_id=turn.pk, kind=TurnEvent.Kind.AGENT, data=data
            )
            await broadcast(conversation_uuid, {"type": "agent.changed", "turn": turn_key, **data})
        elif isinstance(event, runtime.ToolStarted):
            await db(services.turn_event_record)(
                turn_id=turn.pk,
                kind=TurnEvent.Kind.TOOL,
                data={"agent": event.agent, "tool": event.tool, "call": event.call},
            )
            await broadcast(
                conversation_uuid,
                {
                    "type": "tool.started",
                    "turn": turn_key,
                    "agent": event.agent,
                    "tool": event.tool,
                    "call": event.call,
                    "label": event.label,
                },
            )
        elif isinstance(event, runtime.WorkflowProgress):
            await broadcast(
                conversation_uuid,
                {
                    "type": "workflow.progress",
                    "turn": turn_key,
                    "workflow": {
                        "id": str(event.run_id),
                        "slug": event.workflow,
                        "name": event.name,
                    },
                    "status": event.status,
                    "step": event.step,
                    "agent": event.agent,
                    "done": event.done,
                    "total": event.total,
                },
            )
        elif isinstance(event, runtime.ToolFinished):
            await broadcast(
                conversation_uuid,
                {"type": "tool.finished", "turn": turn_key, "call": event.call, "ok": event.ok},
            )

    request = runtime.TurnRequest(
        conversation_id=conversation_uuid,
        turn_id=turn.uuid,
        history=history,
        active_agent=conversation.active_agent or None,
        page_context=conversation.page_context or {},
    )
    cancel = asyncio.Event()
    listener = asyncio.create_task(_listen_for_cancel(conversation_uuid, cancel))
    heartbeat = asyncio.create_task(_heartbeat(turn.conversation_id))
    try:
        outcome = await runtime.run_turn(request, emit, cancel)
    except Exception as exc:  # never leave a turn open: record it and tell the user
        logger.exception("turn %s crashed", turn.uuid)
        outcome = runtime.TurnOutcome(
            "error", None, {}, "internal", runtime.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"
        )
    finally:
        listener.cancel()
        heartbeat.cancel()
        await deltas.close()

    await db(services.turn_finish)(
        turn=turn,
        status=outcome.status,
        agent_slug=outcome.final_agent.slug if outcome.final_agent else "",
        usage=outcome.usage,
        error_code=outcome.error_code,
        error=outcome.error_detail,
    )
    if outcome.status == "error":
        await broadcast(
            conversation_uuid,
            {
                "type": "error",
                "code": outcome.error_code or "internal",
                "message": outcome.error_message or runtime.INTERNAL_ERROR,
                "retryable": True,
                "ref": turn_key,
            },
        )
    metrics.TURNS.labels(outcome.status, outcome.error_code or "").inc()
    alerts.alerts_maybe_evaluate()  # at most every SUPERORCH_ALERT_INTERVAL, on a thread
    done: dict[str, Any] = {"type": "turn.done", "turn": turn_key, "status": outcome.status}
    done["usage"] = {
        "requests": outcome.usage.get("requests", 0),
        "input_tokens": outcome.usage.get("input_tokens", 0),
        "output_tokens": outcome.usage.get("output_tokens", 0),
    }
    await broadcast(conversation_uuid, done)


async def _listen_for_cancel(conversation_uuid, cancel: asyncio.Event) -> None:
    layer = get_channel_layer()
    # The default prefix matters on Redis: every process-local channel of a layer shares
    # one receive loop; a channel of another prefix would hold it and stall the sockets.
    channel = await layer.new_channel()
    group = turn_control_group(conversation_uuid)
    await layer.group_add(group, channel)
    try:
        while True:
            message = await layer.receive(channel)
            if message.get("type") == "turn.cancel":
                cancel.set()
                return
    finally:
        await asyncio.shield(layer.group_discard(group, channel))


async def _heartbeat(conversation_id: int) -> None:
    interval = max(settings.SUPERORCH_TURN_LEASE / 3, 1.0)
    while True:
        await asyncio.sleep(interval)
        await db(services.conversation_renew)(conversation_id=conversation_id)


async def request_cancel(conversation_uuid) -> None:
    await get_channel_layer().group_send(
        turn_control_group(conversation_uuid), {"type": "turn.cancel"}
    )
