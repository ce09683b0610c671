"""A question keeps one reply (issue 12, defect 12): a turn cut short by a broken stream is
queued and answered again; the retry's reply replaces the partial one, under its id."""

from __future__ import annotations

import pytest

from chat import turns
from chat.models import Message
from tests.chat.test_consumers import CHARGED_TWICE, open_session, send, until_turn_done
from tests.support.openai_server import Step

pytestmark = pytest.mark.django_db(transaction=True)

LONG = "one two three four five six seven eight nine ten"
FULL = "Only one of the two charges is real."


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


@pytest.fixture
def server(settings, openai_server):
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.SUPERORCH_DEFAULT_MODEL = "test-model"
    settings.SUPERORCH_REQUEUE_DELAYS = [0.2]
    return openai_server


async def test_retries_after_broken_streams_leave_one_reply_under_one_id(team, connect, server):
    broken = Step(text=LONG, break_after=4, token_delay=0.02)
    server.steps = [broken, broken, Step(text=FULL)]
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": CHARGED_TWICE})
    frames = await until_turn_done(comm, turns_done=3, timeout=15)
    statuses = [f["status"] for f in frames if f["type"] == "turn.done"]
    assert statuses == ["error", "error", "ok"]
    done = [f["message"] for f in frames if f["type"] == "message.done"]
    assert len(done) == 3 and len({m["id"] for m in done}) == 1  # one bubble, replaced
    assert done[0]["text"] and done[0]["text"] != FULL and done[-1]["text"] == FULL
    deltas = {f["message"] for f in frames if f["type"] == "message.delta"}
    assert deltas == {done[0]["id"]}
    replies = [
        (str(m.uuid), m.text)
        async for m in Message.objects.filter(
            conversation__uuid=ready["conversation"], role="assistant"
        )
    ]
    assert replies == [(done[0]["id"], FULL)]
