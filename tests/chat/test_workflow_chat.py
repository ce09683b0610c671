"""A workflow started from the chat: progress frames, the answer in the turn, and an
answer posted to the conversation when no turn waits for it (staff-started)."""

from __future__ import annotations

import pytest
from agents.testing import assistant_message, function_call
from asgiref.sync import sync_to_async

from chat import turns
from chat.models import Conversation, Message
from orchestrator import workflow_engine, workflow_steps
from orchestrator.models import Workflow, WorkflowRun
from tests.chat.test_consumers import open_session, recv, send, types, until_turn_done
from tests.support.model_errors import connection_error

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


async def test_a_refund_request_runs_the_workflow_and_reports_its_progress(team, connect):
    comm, _ = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c1", "text": "I'd like a refund, please"})
    frames = await until_turn_done(comm, timeout=20)
    assert frames[-1]["status"] == "ok", frames[-1]
    progress = [f for f in frames if f["type"] == "workflow.progress"]
    assert progress, types(frames)
    assert {f["workflow"]["slug"] for f in progress} == {"refund_request"}
    assert {f["turn"] for f in progress} == {frames[-1]["turn"]}
    by_step = {}
    for f in progress:
        by_step.setdefault(f["step"], []).append(f["status"])
    assert by_step["invoice"] == ["started", "finished"] or by_step["invoice"] == ["finished"]
    assert "finished" in by_step["account"]
    assert progress[-1]["status"] == "done" and progress[-1]["step"] is None
    assert progress[-1]["done"] == progress[-1]["total"] == 3
    # It started from the tool call, and the reply is the workflow's answer.
    tool = next(f for f in frames if f["type"] == "tool.started")
    assert tool["tool"] == "execute_workflow" and tool["label"] == "Running a workflow"
    done = next(f for f in frames if f["type"] == "message.done")
    assert done["message"]["agent"]["slug"] == "billing"
    assert "Refund request workflow" in done["message"]["text"]
    run = await WorkflowRun.objects.aget()
    assert run.status == "ok" and run.delivered and run.turn_id is not None
    # Delivered in the turn: not posted a second time.
    assert await Message.objects.filter(role="assistant").acount() == 1


async def test_a_staff_started_workflow_posts_its_answer_to_the_conversation(team, connect):
    comm, ready = await open_session(connect)
    conversation = await Conversation.objects.aget(uuid=ready["conversation"])
    flow = await Workflow.objects.aget(slug="locked_out")
    await sync_to_async(workflow_engine.workflow_start)(
        workflow=flow, conversation_id=conversation.uuid, input="I'm locked out", started_by="staff"
    )
    frame = await recv(comm, timeout=20)
    assert frame["type"] == "message.done" and frame["turn"] is None
    assert frame["message"]["role"] == "assistant"
    assert frame["message"]["agent"]["slug"] == "customer_support"
    assert "Locked out of the account workflow" in frame["message"]["text"]
    # It is part of the conversation's history from now on.
    stored = await Message.objects.filter(conversation=conversation, role="assistant").acount()
    assert stored == 1


@pytest.fixture
def scripted_llm(monkeypatch):
    """Agents speak through a ScriptedModel; workflow steps answer through a stand-in."""
    from agents.testing import ScriptedModel

    from orchestrator.sdk import team as sdk_team

    model = ScriptedModel()
    monkeypatch.setattr(sdk_team, "build_model", lambda choice, **kw: model)
    monkeypatch.setattr(
        workflow_steps, "_run_agent", lambda agent, text, run, timeout: "Refund approved."
    )
    return model


async def test_a_retried_attempt_reuses_the_workflow_and_a_failed_turn_posts_its_answer(
    team, connect, scripted_llm
):

    call = {"workflow": "refund_request", "request": "refund please"}
    scripted_llm.extend(
        [
            [function_call("execute_workflow", call, call_id="w1")],
            connection_error(),  # after the tool: Billing's model fails
            [function_call("execute_workflow", call, call_id="w2")],  # the retry asks again
            [assistant_message("Your refund is approved.")],
        ]
    )
    comm, _ = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c1", "text": "I was charged twice, refund it"})
    frames = await until_turn_done(comm, timeout=20)
    assert frames[-1]["status"] == "ok"
    assert await WorkflowRun.objects.acount() == 1  # not started twice
    assert [f["message"]["text"] for f in frames if f["type"] == "message.done"] == [
        "Your refund is approved."
    ]

    # Now every model call after the workflow fails: the answer must still reach the user.
    scripted_llm.extend(
        [[function_call("execute_workflow", call, call_id="w3")]] + [connection_error()] * 3
    )
    await send(
        comm, {"type": "message.send", "id": "c2", "text": "And the second charge, refund it"}
    )
    frames = await until_turn_done(comm, timeout=20)
    assert frames[-1]["status"] == "error"
    (posted,) = [f for f in frames if f["type"] == "message.done" and f["turn"] is None]
    assert "Refund approved." in posted["message"]["text"]
    run = await WorkflowRun.objects.order_by("-id").afirst()
    assert run.delivered and await WorkflowRun.objects.acount() == 2
