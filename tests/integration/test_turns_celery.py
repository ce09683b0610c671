"""Chat turns on a real Celery worker (SUPERORCH_TURN_RUNNER = "celery").

The test process is the web server: its consumer stores and acknowledges the message
and queues the turn on the broker (RabbitMQ). A worker process answers it, and its
frames reach the test's socket through the Redis channel layer, which both share.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from chat.models import Message, Turn
from superorch_site.celery import app as celery_app
from tests.chat.test_consumers import open_session, send, until_turn_done
from tests.support.celery_workers import ROOT, Workers
from tests.support.openai_server import OpenAICompatibleServer, Step

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@contextlib.contextmanager
def _celery_turns(settings, responder):
    """The loopback model answering with `responder`, turns on Celery (a real broker),
    and a pool of workers to start; everything stopped afterwards."""
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs superorch_site.settings.integration")
    (ROOT / "var").mkdir(exist_ok=True)
    model = OpenAICompatibleServer()
    model.responder = responder
    model.start()
    conf = celery_app.conf
    conf.task_always_eager, conf.broker_url = False, settings.INTEGRATION_CELERY_BROKER_URL
    settings.SUPERORCH_TURN_RUNNER = "celery"
    celery_app.control.purge()
    pool = Workers(model.base_url, INTEGRATION_TURN_RUNNER="celery")
    try:
        yield pool
    finally:
        pool.stop()
        model.stop()
        conf.task_always_eager = True


@pytest.fixture
def turn_worker(team, settings):
    answer = Step(text="Refunds reach your card within five days.")
    with _celery_turns(settings, lambda body: answer) as pool:
        pool.start("turns")
        pool.wait_ready(["turns"])
        yield pool


async def test_a_turn_runs_on_the_worker_and_streams_to_the_socket(turn_worker, connect):
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": "I want a refund"})
    frames = await until_turn_done(comm, timeout=30)
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "message.ack" and kinds[1] == "turn.started"
    assert "message.delta" in kinds and kinds[-1] == "turn.done"
    assert frames[-1]["status"] == "ok"
    done = next(f for f in frames if f["type"] == "message.done")
    assert done["message"]["text"] == "Refunds reach your card within five days."
    # Answered once, by the worker (this process ran no turn).
    message = await Message.objects.aget(client_id="c-1")
    assert message.status == "answered"
    turn = await Turn.objects.aget(conversation__uuid=ready["conversation"])
    assert turn.status == "ok"
    log = await asyncio.to_thread(
        turn_worker.wait_for_log, "turns", "Task chat.answer_conversation[", "succeeded"
    )
    assert "Task chat.answer_conversation[" in log and "succeeded" in log


@pytest.fixture
def two_workers(team, settings):
    """A worker that will die mid-turn ("doomed") and a survivor; the first model call
    streams slowly, every later one answers at once."""
    calls = []

    def respond(body):
        calls.append(body)
        if len(calls) == 1:
            return Step(text=" ".join(["slowly"] * 200), token_delay=0.25)
        return Step(text="Refunds reach your card within five days.")

    with _celery_turns(settings, respond) as pool:
        yield pool


async def test_a_worker_that_dies_mid_turn_is_taken_over_and_every_socket_told(
    two_workers, connect
):
    """The worker running a turn is killed: a surviving worker takes the conversation over
    once the short lease expires (not 45 s later), every socket is told the interrupted
    turn ended (error, then turn.done error), and the message is answered."""
    import time

    pool = two_workers
    pool.start("doomed")
    await asyncio.to_thread(pool.wait_ready, ["doomed"])
    comm, ready = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": "I want a refund"})
    frames = []
    while not any(f["type"] == "message.delta" for f in frames):
        frames.append(await comm.receive_json_from(timeout=30))
    interrupted = next(f["turn"] for f in frames if f["type"] == "turn.started")
    pool.start("survivor")
    await asyncio.to_thread(pool.wait_ready, ["survivor"])
    pool.procs["doomed"].kill()  # SIGKILL mid-stream: no cleanup, the lease stays
    killed = time.monotonic()
    frames = []
    while not (frames and frames[-1]["type"] == "turn.done" and frames[-1]["turn"] != interrupted):
        frames.append(await comm.receive_json_from(timeout=40))
    took = time.monotonic() - killed
    tail = [f for f in frames if f["type"] != "message.delta"]
    error, done = tail[0], tail[1]
    assert (error["type"], error["ref"], error["code"]) == ("error", interrupted, "internal")
    assert (done["type"], done["turn"], done["status"]) == ("turn.done", interrupted, "error")
    assert tail[2]["type"] == "turn.started" and tail[2]["reply_to"] == "c-1"
    assert frames[-1]["status"] == "ok"
    reply = [f for f in frames if f["type"] == "message.done"][-1]["message"]
    assert reply["text"] == "Refunds reach your card within five days."
    assert took < 30, f"took {took:.0f}s to take over"
    message = await Message.objects.aget(client_id="c-1")
    assert message.status == "answered"
    statuses = [t.status async for t in Turn.objects.filter(reply_to=message).order_by("id")]
    assert statuses == ["error", "ok"]
