"""Scheduling turns, detached from any socket.

`schedule(conversation)` starts (at most) one task per conversation in this process;
it takes the conversation's lease in the database (so two servers never answer the
same conversation at once), answers every pending user message in order (one
`TurnRunner` each), and wakes the conversation again when a queued message is due. A
reply finishes and is stored even if every browser has gone. The lease is short
(SUPERORCH_TURN_LEASE) and renewed while a turn runs; if the server dies, it expires
and the sweep (`sweep_once`: a timer in every web process, Celery beat and worker
start on Celery) gives the conversation to a surviving process, without waiting for
a visitor. A process that finds the lease held looks again with exponential backoff
(`claim_retry_delay`).

With SUPERORCH_TURN_RUNNER = "celery" the work goes to a Celery worker instead: the
task is sent by its name, "chat.answer_conversation" (chat/tasks.py, the composition
root, calls `answer_pending_now` here).

A process answers a limited number of conversations at once (`slots.TurnSlots`: the
limit follows the event loop's lag, up to SUPERORCH_MAX_ACTIVE_TURNS); the others wait
their turn, round robin between clients, holding no lease.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import uuid
import weakref
from functools import partial

from asgiref.sync import async_to_sync
from celery import current_app
from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from .. import approvals, selectors, services
from ..broadcast import turn_cancel_request
from ..models import Conversation
from .runner import TurnRunner
from .slots import TurnSlots

logger = logging.getLogger(__name__)
db = database_sync_to_async

CLAIM_RETRY = 1.0  # seconds: the first "look again" when another holds the lease...
CLAIM_RETRY_MAX = 4.0  # ...doubled each time it is still held, up to this
ANSWER_TASK = "chat.answer_conversation"  # chat.tasks.answer_conversation_task
SWEEP_TASK = "chat.answer_pending_sweep"  # chat.tasks.answer_pending_sweep_task (Celery beat)


class ProcessTurns:
    """This process's turn runners: one task per conversation, the conversations whose
    running task was asked to look again, and the turn slots of each event loop."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every runner (tests call it once nothing runs)."""
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.again: set[int] = set()
        self.clients: dict[int, str] = {}  # conversation -> its client (fair turn slots)
        self.claim_attempts: dict[int, int] = {}  # conversation -> lease found held, in a row
        self._task = threading.local()  # what one Celery task defers (its thread's own)
        self.sweeper: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # where turns run (wake)
        self.slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TurnSlots] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def deferred(self) -> list[tuple[int, float, int]] | None:
        """The publishes the Celery task running on this thread defers to its end (None
        outside one). Per thread: a worker's threads pool runs many tasks at once."""
        return getattr(self._task, "deferred", None)

    @deferred.setter
    def deferred(self, value: list[tuple[int, float, int]] | None) -> None:
        self._task.deferred = value

    def slots_for(self, loop: asyncio.AbstractEventLoop) -> TurnSlots:
        slots = self.slots.get(loop)
        if slots is None:
            slots = self.slots[loop] = TurnSlots(
                settings.SUPERORCH_MAX_ACTIVE_TURNS, settings.SUPERORCH_TURN_LAG_TARGET
            )
        return slots


state = ProcessTurns()


def schedule(conversation: Conversation, *, client: str = "") -> asyncio.Task[None] | None:
    """Make sure this conversation's pending messages are being answered: by a task of
    this process, or, with SUPERORCH_TURN_RUNNER = "celery", by a Celery worker.
    `client` (chat.clients) shares the turn slots fairly between clients."""
    if client:
        state.clients[conversation.pk] = client
    state.loop = asyncio.get_running_loop()
    if on_celery():
        publish = partial(_publish, conversation.pk, 0.0)
        asyncio.get_running_loop().run_in_executor(None, publish)
        return None
    return _schedule(conversation.pk, conversation.uuid)


def claim_retry_delay(attempt: int) -> float:
    """Seconds before looking again at a conversation whose lease was found held
    `attempt` times in a row (0: the first time): 1, 2, 4, 4, ... A live holder answers
    what it finds pending itself; the look again is for a holder that died."""
    return min(CLAIM_RETRY * 2 ** min(attempt, 16), max(CLAIM_RETRY_MAX, CLAIM_RETRY))


async def sweep_once() -> int:
    """Answer the conversations that wait for nobody: a due pending message (queued for a
    later try, or left by a turn whose process died) and no live lease. Returns how many
    were scheduled (here, or on Celery). Approvals nobody answered in time expire first:
    their messages are then due (resumed as not approved)."""
    await db(approvals.approvals_expire_sweep)()
    due = await db(selectors.conversations_to_resume)()
    for pk, conversation_uuid in due:
        if on_celery():
            await asyncio.to_thread(_publish, pk, 0.0)
        else:
            _schedule(pk, conversation_uuid)
    return len(due)


def sweep_now() -> int:
    """`sweep_once` from sync code (Celery beat's task, a worker's start, a command)."""
    return async_to_sync(sweep_once)()


def start_sweeper() -> asyncio.Task[None] | None:
    """Run the sweep in this process's event loop every SUPERORCH_PENDING_SWEEP_INTERVAL
    seconds (at once, then periodically), once per process. The inline runner's timer:
    on Celery, beat runs the sweep (chat.tasks)."""
    interval = settings.SUPERORCH_PENDING_SWEEP_INTERVAL
    if interval <= 0 or on_celery():
        return None
    state.loop = asyncio.get_running_loop()
    if state.sweeper is None or state.sweeper.done():
        state.sweeper = asyncio.get_running_loop().create_task(_sweep_forever(interval))
    return state.sweeper


async def _sweep_forever(interval: float) -> None:
    while True:
        try:
            await sweep_once()
        except Exception:  # the database may be away for a moment: try again next time
            logger.exception("the pending-message sweep failed")
        await asyncio.sleep(interval)


def on_celery() -> bool:
    return settings.SUPERORCH_TURN_RUNNER == "celery" and not current_app.conf.task_always_eager


def answer_pending_now(conversation_id: int, attempt: int = 0) -> None:
    """Answer what the conversation has pending, here and now (a Celery worker's task;
    `attempt`: how many times in a row the lease was found held before)."""
    conversation_uuid = selectors.conversation_uuid_get(conversation_id=conversation_id)
    if conversation_uuid is not None:
        state.claim_attempts[conversation_id] = attempt
        state.deferred = []
        try:
            async_to_sync(_drain)(conversation_id, conversation_uuid)
        finally:
            state.claim_attempts.pop(conversation_id, None)
            deferred, state.deferred = state.deferred, None
            # Looked at again by a task, whatever SUPERORCH_TURN_RUNNER says here: this
            # task's event loop ends with it, a timer in it would never fire (found by the
            # integration test of a worker killed mid-turn).
            for args in deferred:
                _publish(*args)


def wake(conversation_id: int, conversation_uuid: uuid.UUID) -> None:
    """Answer what the conversation has pending, from sync code on any thread (a staff
    hand-back): on Celery, or on the event loop this process runs turns on. A process
    that has run none (a management command) leaves it to the sweep."""
    if on_celery():
        _publish(conversation_id, 0.0)
        return
    loop = state.loop
    if loop is None or loop.is_closed() or not loop.is_running():
        logger.info("conversation %s: no turn loop here, the sweep answers it", conversation_id)
        return
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        _schedule(conversation_id, conversation_uuid)
    else:
        # In a context of its own: the waker's (a staff request's thread under
        # sync_to_async, or Django's per-request ThreadSensitiveContext) would send the
        # turn's database calls to that request's executor, or refuse them as a deadlock.
        loop.call_soon_threadsafe(
            _schedule, conversation_id, conversation_uuid, context=contextvars.Context()
        )


async def request_cancel(conversation_uuid: uuid.UUID) -> None:
    """Stop the conversation's running turn, whichever process runs it."""
    await turn_cancel_request(conversation_uuid)


async def wait_idle(timeout: float = 30.0) -> None:
    """Wait until this process runs no turns on this event loop (tests and shutdown). A
    loop cannot await another loop's tasks: `manage.py expire_approvals` run from a
    thread beside a serving loop (as its test does) waits for the turns it started."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        while mine := [t for t in list(state.tasks.values()) if t.get_loop() is loop]:
            await asyncio.gather(*mine, return_exceptions=True)


def _schedule(pk: int, conversation_uuid: uuid.UUID) -> asyncio.Task[None]:
    task = state.tasks.get(pk)
    if task is not None and not task.done():
        state.again.add(pk)  # it looks again before it ends, even if it had found nothing
        return task
    task = asyncio.get_running_loop().create_task(_drain_in_turn(pk, conversation_uuid))
    state.tasks[pk] = task
    task.add_done_callback(lambda t, pk=pk: _forget(pk, t))
    return task


def _forget(pk: int, task: asyncio.Task[None]) -> None:
    if state.tasks.get(pk) is task:
        del state.tasks[pk]
        state.clients.pop(pk, None)
    if not task.cancelled() and task.exception() is not None:
        logger.error("turn runner for conversation %s crashed", pk, exc_info=task.exception())


async def _drain_in_turn(conversation_id: int, conversation_uuid: uuid.UUID) -> None:
    """`_drain` once one of this process's turn slots is free (round robin between
    clients; a conversation nobody scheduled as a client's counts as its own client)."""
    if not settings.SUPERORCH_MAX_ACTIVE_TURNS:
        return await _drain(conversation_id, conversation_uuid)
    slots = state.slots_for(asyncio.get_running_loop())
    await slots.acquire(state.clients.get(conversation_id) or f"conversation:{conversation_id}")
    try:
        await _drain(conversation_id, conversation_uuid)
    finally:
        slots.release()


async def _later(
    conversation_id: int, conversation_uuid: uuid.UUID, delay: float, attempt: int = 0
) -> None:
    """Look at the conversation again in `delay` seconds."""
    if state.deferred is not None:  # in a Celery task: its loop ends with the task
        state.deferred.append((conversation_id, delay, attempt))
    elif on_celery():
        await asyncio.to_thread(_publish, conversation_id, delay, attempt)
    else:
        loop = asyncio.get_running_loop()
        loop.call_later(delay, lambda: _schedule(conversation_id, conversation_uuid))


def _publish(conversation_id: int, delay: float, attempt: int = 0) -> None:
    """Queue the conversation's answering on Celery, by the task's name."""
    args = (conversation_id, attempt) if attempt else (conversation_id,)
    try:
        current_app.send_task(ANSWER_TASK, args=args, countdown=delay or None)
    except Exception:  # the message stays pending: session.start or answer_pending answers it
        logger.exception("could not queue conversation %s's turn on Celery", conversation_id)


async def _drain(conversation_id: int, conversation_uuid: uuid.UUID) -> None:
    while True:
        state.again.discard(conversation_id)
        if not await db(services.conversation_claim)(conversation_id=conversation_id):
            await _held_elsewhere(conversation_id, conversation_uuid)
            return
        state.claim_attempts.pop(conversation_id, None)
        try:
            await _answer_all(conversation_id, conversation_uuid)
        finally:
            await db(services.conversation_release)(conversation_id=conversation_id)
        # A message stored while the lease was being released is answered too.
        if not await db(selectors.conversation_has_pending)(conversation_id=conversation_id):
            await _wake_later(conversation_id, conversation_uuid)
            # A message acknowledged after that check was scheduled onto this task while
            # it was ending: nothing awaits between this test and the return.
            if conversation_id not in state.again:
                return


async def _held_elsewhere(conversation_id: int, conversation_uuid: uuid.UUID) -> None:
    """Another server (or worker) holds the lease and answers what it finds pending, but
    it may have died (its lease then expires) or a message stored just after its last
    look would wait for the next wake: look again, less and less often, until nothing
    is pending."""
    if not await db(selectors.conversation_has_pending)(conversation_id=conversation_id):
        state.claim_attempts.pop(conversation_id, None)
        return
    attempt = state.claim_attempts.get(conversation_id, 0)
    state.claim_attempts[conversation_id] = attempt + 1
    delay = claim_retry_delay(attempt)
    logger.info("conversation %s: lease held elsewhere, looking again in %gs", conversation_id, delay)  # fmt: skip
    await _later(conversation_id, conversation_uuid, delay, attempt + 1)


async def _answer_all(conversation_id: int, conversation_uuid: uuid.UUID) -> None:
    """Answer the pending messages one turn at a time, in order (lease held)."""
    while (turn := await db(services.turn_start_next)(conversation_id=conversation_id)) is not None:
        await TurnRunner(turn, conversation_uuid).run()


async def _wake_later(conversation_id: int, conversation_uuid: uuid.UUID) -> None:
    """A message queued because no model answered is tried again when it is due (in this
    process or on Celery; after a restart, by the sweep)."""
    due = await db(selectors.conversation_next_retry)(conversation_id=conversation_id)
    if due is None:
        return
    delay = max((due - timezone.now()).total_seconds(), 0.0) + 0.05
    await _later(conversation_id, conversation_uuid, delay)
