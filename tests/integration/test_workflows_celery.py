"""Workflows on real Celery workers, a real broker (RabbitMQ) and PostgreSQL.

Two worker processes (solo pool, one task at a time each) run against the test
database; their agents answer through the loopback OpenAI-compatible server, whose
replies take as long as the instruction asks ("[wait 1]": one second). The test
process publishes to the broker instead of running tasks eagerly.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from chat.models import Conversation, Message, Site
from orchestrator import workflow_engine
from orchestrator.models import AgentRun, ContextEntry, StepRun, Workflow, WorkflowRun
from superorch_site.celery import app as celery_app
from tests.support.celery_workers import Workers
from tests.support.openai_server import OpenAICompatibleServer, Step

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def _reply(body) -> Step:
    text = next(
        (m.get("content") or "" for m in reversed(body["messages"]) if m["role"] == "user"), ""
    )
    wait = re.search(r"\[wait (\d+(?:\.\d+)?)\]", text)
    answer = f"Checked: {text[:60]}"
    if "invoice" in text.lower():
        answer += "\nStatus: paid"  # what the seeded refund workflow's condition looks for
    return Step(text=answer, first_token_delay=float(wait.group(1)) if wait else 0.0)


@pytest.fixture
def workers(team):
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs superorch_site.settings.integration")
    (ROOT / "var").mkdir(exist_ok=True)
    server = OpenAICompatibleServer()
    server.responder = _reply
    server.start()
    conf = celery_app.conf
    # Publish to the broker from here on. The app connects lazily, on its first publish,
    # and eager mode never publishes, so the broker URL can be set now and kept.
    conf.task_always_eager, conf.broker_url = False, settings.INTEGRATION_CELERY_BROKER_URL
    celery_app.control.purge()
    pool = Workers(server.base_url)
    pool.start("w1")
    pool.start("w2")
    try:
        pool.wait_ready(["w1", "w2"])
        yield pool
    finally:
        pool.stop()
        server.stop()
        conf.task_always_eager = True


@pytest.fixture
def conversation(team):
    return Conversation.objects.create(
        site=Site.objects.get(key="demo"), token_hash=uuid.uuid4().hex
    )


def _workflow(slug: str, steps: list) -> Workflow:
    return Workflow.objects.create(
        slug=slug, name=slug.replace("_", " "), description="test", definition={"steps": steps}
    )


def _wait_for(run: WorkflowRun, timeout: float = 60) -> WorkflowRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in ("ok", "failed") and run.delivered:
            return run
        time.sleep(0.1)
    steps = list(run.steps.values_list("step_id", "status", "attempts", "error"))
    raise TimeoutError(f"run {run.status}: {steps}")


def test_the_example_refund_workflow_runs_on_real_workers(workers, conversation):
    run = workflow_engine.workflow_start(
        workflow=Workflow.objects.get(slug="refund_request"),
        conversation_id=conversation.uuid,
        input="I was charged twice, I want a refund",
        started_by="staff",
    )
    run = _wait_for(run)
    assert run.status == "ok", run.error
    steps = {s.step_id: s for s in run.steps.all()}
    assert {k: s.status for k, s in steps.items()} == {
        "invoice": "ok",
        "account": "ok",
        "decide": "ok",
        "refund": "ok",
    }
    assert run.decisions == {"decide": "then"}  # the invoice check found it paid
    assert all(s.worker for s in steps.values() if s.kind == "agent")
    # One AgentRun per agent step, on the OpenAI-compatible path, under the run's id.
    runs = AgentRun.objects.filter(turn_id=run.uuid)
    assert sorted(runs.values_list("agent_slug", flat=True)) == [
        "billing",
        "billing",
        "customer_support",
    ]
    assert set(runs.values_list("provider", flat=True)) == {"openai_compatible"}
    # Both parallel checks merged into one context key: nothing lost.
    entry = ContextEntry.objects.get(conversation_id=conversation.uuid, key="refund_request")
    assert set(entry.value) == {"invoice", "account"}
    # The answer is posted to the conversation once.
    (message,) = Message.objects.filter(conversation=conversation, role="assistant")
    assert message.agent_slug == "billing" and "Refund request workflow" in message.text


def test_parallel_steps_run_at_the_same_time_on_two_workers(workers, conversation):
    flow = _workflow(
        "two_waits",
        [
            {
                "id": "both",
                "parallel": [
                    {
                        "id": "one",
                        "agent": "billing",
                        "instruction": "[wait 1] one",
                        "save_as": "k",
                    },
                    {
                        "id": "two",
                        "agent": "customer_support",
                        "instruction": "[wait 1] two",
                        "save_as": "k",
                    },
                ],
            }
        ],
    )
    # Warm both workers (imports, first connections), then measure.
    _wait_for(
        workflow_engine.workflow_start(workflow=flow, conversation_id=conversation.uuid, input="x")
    )
    # The warm-up's last task may still be broadcasting its answer after `delivered` is
    # set: measure with both workers idle (a solo worker answers a ping only between tasks).
    workers.wait_ready(["w1", "w2"])
    run = _wait_for(
        workflow_engine.workflow_start(workflow=flow, conversation_id=conversation.uuid, input="y")
    )
    assert run.status == "ok"
    one, two = run.steps.order_by("step_id")
    assert {one.worker, two.worker} and one.worker != two.worker  # two processes
    overlap = min(one.finished_at, two.finished_at) - max(one.started_at, two.started_at)
    assert overlap.total_seconds() > 0.5  # they really ran at the same time
    assert run.duration_ms < 1900, run.duration_ms  # under the 2 s of running them in turn
    entry = ContextEntry.objects.get(conversation_id=conversation.uuid, key="k")
    assert set(entry.value) == {"one", "two"}


def test_a_worker_killed_mid_step_leaves_a_workflow_that_completes_exactly_once(
    workers, conversation
):
    flow = _workflow(
        "slow_then_reply",
        [
            {"id": "slow", "agent": "billing", "instruction": "[wait 4] slow check"},
            {"id": "reply", "agent": "customer_support", "instruction": "Reply from {steps.slow}"},
        ],
    )
    run = workflow_engine.workflow_start(
        workflow=flow, conversation_id=conversation.uuid, input="x"
    )
    deadline = time.monotonic() + 30
    step = None
    while time.monotonic() < deadline:
        step = StepRun.objects.filter(run=run, step_id="slow", status="running").first()
        if step is not None and step.worker:
            break
        time.sleep(0.05)
    assert step is not None, "the slow step never started"
    time.sleep(0.5)  # mid-step: the model is still thinking
    pid = int(step.worker.rsplit(":", 1)[1])
    killed = next(name for name, p in workers.procs.items() if p.pid == pid)
    os.kill(pid, signal.SIGKILL)
    workers.procs[killed].wait(10)

    run = _wait_for(run, timeout=60)
    assert run.status == "ok", run.error
    slow = run.steps.get(step_id="slow")
    assert slow.attempts == 2 and slow.status == "ok"
    assert slow.worker and int(slow.worker.rsplit(":", 1)[1]) != pid  # the other worker
    assert run.steps.filter(step_id="reply", status="ok").count() == 1
    # Finished once: one answer in the conversation, and advancing again changes nothing.
    assert Message.objects.filter(conversation=conversation, role="assistant").count() == 1
    workflow_engine.workflow_advance(run_id=run.pk)
    assert Message.objects.filter(conversation=conversation, role="assistant").count() == 1
