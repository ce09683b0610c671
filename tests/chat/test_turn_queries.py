"""The database statements of one whole turn (docs/benchmarks.md, "Per-turn cost"):
counted, not timed, from the user's message.send to turn.done, on every thread (the
turn's database calls run in worker threads)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db.backends import utils as db_utils

from chat.models import Conversation
from tests.chat.test_consumers import open_session, send, until_turn_done

pytestmark = pytest.mark.django_db(transaction=True)
CHARGED = "I was charged twice for my subscription this month"
FOLLOW_UP = "It happened again today, how do I get the second charge back?"
MAX_STATEMENTS = 44  # 38 to 41 measured; the scheduler's look for more messages may fall inside


@contextlib.contextmanager
def statements():
    """Every SQL statement any thread runs meanwhile, in order."""
    seen: list[str] = []
    lock = threading.Lock()
    original = db_utils.CursorWrapper._execute_with_wrappers

    def counting(self, sql, params, many, executor):
        with lock:
            seen.append(sql)
        return original(self, sql, params, many, executor)

    db_utils.CursorWrapper._execute_with_wrappers = counting
    try:
        yield seen
    finally:
        db_utils.CursorWrapper._execute_with_wrappers = original


async def released(conversation: str) -> None:
    """Until the turn's runner let go of the conversation (its lease)."""
    for _ in range(200):
        if not await sync_to_async(
            Conversation.objects.filter(uuid=conversation, busy_until__isnull=False).exists
        )():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the conversation's lease was never released")


def tables(seen: list[str]) -> list[str]:
    return [sql.split()[0] + " " + (sql.split('"')[1] if '"' in sql else "") for sql in seen]


async def test_a_whole_turn_runs_a_bounded_number_of_statements(team, connect, settings):
    """A follow-up in a conversation with Billing (routed, a knowledge search, a streamed
    reply, every record kept), from message.send until the lease is released: at most
    MAX_STATEMENTS statements, every thread counted, transactions' BEGIN and SAVEPOINTs
    included."""
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "warm", "text": CHARGED})
    await until_turn_done(comm)
    await released(ready["conversation"])  # the first turn's last statements are done
    with statements() as seen:
        await send(comm, {"type": "message.send", "id": "c-1", "text": FOLLOW_UP})
        frames = await until_turn_done(comm)
        await released(ready["conversation"])
    assert frames[-1]["status"] == "ok"
    assert any(f["type"] == "tool.finished" for f in frames)  # the knowledge search ran
    assert len(seen) <= MAX_STATEMENTS, "\n".join(tables(seen))
