"""Live frames on the real Redis layer under load (issue 12, defect 8): 50 conversations
send at once in one process (every socket shares the process's receive key), and every
socket sees its whole turn: turn.done, and the full reply in message.done, as stored."""

from __future__ import annotations

import asyncio

import pytest
from django.conf import settings

from chat import turns
from chat.models import Message
from orchestrator import metrics
from tests.chat.test_consumers import CHARGED_TWICE, open_session, send, until_turn_done

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CONVERSATIONS = 50


@pytest.fixture(autouse=True)
def _only_on_real_services():
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs superorch_site.settings.integration")


async def test_fifty_conversations_at_once_each_socket_sees_its_whole_turn(team, connect, settings):
    settings.SUPERORCH_LOCAL_MODEL_DELAY = 0.005  # streamed word by word, as in production
    drops = metrics.CHANNEL_LAYER_DROPS._value.get()
    sessions = [await open_session(connect) for _ in range(CONVERSATIONS)]
    await asyncio.gather(
        *(
            send(comm, {"type": "message.send", "id": f"c-{n}", "text": CHARGED_TWICE})
            for n, (comm, _) in enumerate(sessions)
        )
    )
    results = await asyncio.gather(
        *(until_turn_done(comm, timeout=90) for comm, _ in sessions), return_exceptions=True
    )
    await turns.wait_idle(timeout=60)
    lost = [n for n, r in enumerate(results) if isinstance(r, BaseException)]
    assert lost == [], f"{len(lost)} of {CONVERSATIONS} sockets never saw turn.done"
    for (_, ready), frames in zip(sessions, results, strict=True):
        assert frames[-1]["status"] == "ok"
        seqs = [f["seq"] for f in frames if "seq" in f]
        assert seqs == list(range(1, len(seqs) + 1))  # no gap: nothing was dropped
        (done,) = [f["message"] for f in frames if f["type"] == "message.done"]
        stored = await Message.objects.select_related("conversation").aget(uuid=done["id"])
        assert str(stored.conversation.uuid) == ready["conversation"]
        assert done["text"] == stored.text
        streamed = "".join(f["text"] for f in frames if f["type"] == "message.delta")
        assert streamed == stored.text
    assert metrics.CHANNEL_LAYER_DROPS._value.get() == drops
