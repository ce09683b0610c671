"""Workflows: definitions and their validation, planning, and the engine in eager mode.

The engine tests replace the agent call (`workflow_engine._run_agent`) with a scripted
fake, so retries, fallbacks and failures happen exactly when a test says; one test
runs the seeded example on the real offline model. tests/integration runs the same
engine on real Celery workers.
"""

from __future__ import annotations

import json
import uuid

import pytest

from chat.models import Conversation, Message, Site
from orchestrator import services, workflow_engine, workflow_steps
from orchestrator.domain import workflows
from orchestrator.domain.exceptions import StepFailed
from orchestrator.domain.workflows import DefinitionError, StepState
from orchestrator.models import AgentRun, ContextEntry, StepRun, Workflow, WorkflowRun

AGENTS = ["billing", "customer_support", "technical_support"]
SEED = json.loads((services.WORKFLOW_SEED_FILE).read_text(encoding="utf-8"))["workflows"]


def step(id, agent="billing", instruction="do it", **extra):
    return {"id": id, "agent": agent, "instruction": instruction, **extra}


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", SEED, ids=lambda s: s["slug"])
def test_the_seeded_workflows_are_valid(spec):
    workflows.parse(spec["definition"], agents=AGENTS)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "at least one step"),
        ([step("a", agent="nobody")], "there is no enabled agent 'nobody'"),
        ([step("a"), step("a")], "the id 'a' is used twice"),
        ([{"id": "g", "parallel": []}], "a parallel group needs steps"),
        ([step("a", instruction="use {steps.b}"), step("b")], "not before this one"),
        ([step("a", instruction="use {steps.a}")], "that would be a cycle"),
        (
            [{"id": "g", "parallel": [step("a"), step("b", instruction="{steps.a}")]}],
            "that would be a cycle",
        ),
        ([step("a", instruction="{secret}")], "unknown placeholder {secret}"),
        (
            [{"id": "c", "if": {"step": "later", "contains": "x"}, "then": [step("a")]}],
            "which is not before it",
        ),
        ([step("a"), {"id": "c", "if": {"step": "a"}, "then": [step("b")]}], "tests it with"),
        ([step("a"), {"id": "c", "if": {"step": "a", "equals": 1}}], "needs a 'then' or 'else'"),
        ([step("a", timeout=0)], "timeout must be a number from 1 to 600"),
        ([step("a", retries=1.5)], "retries must be a whole number"),
        ([step("a", fallback={"agent": "nobody"})], "there is no enabled agent 'nobody'"),
        ([step("a", fallback={"text": "x"})], "fallback is"),
        ([step("a", instruction="  ")], "the instruction is empty"),
        ([step("a", colour="red")], "unknown field 'colour'"),
        ([{"id": "Bad Id", "agent": "billing", "instruction": "x"}], "needs an id"),
        ([{"id": "x"}], "exactly one of"),
    ],
)
def test_broken_definitions_are_refused_with_a_clear_message(steps, message):
    with pytest.raises(DefinitionError, match=message.replace("{", r"\{").replace("(", r"\(")):
        workflows.parse({"steps": steps}, agents=AGENTS)


def test_render_fills_inputs_outputs_and_context_once():
    text = workflows.render(
        "{input} | {steps.a} | {steps.missing} | {context.plan} | {context.none}",
        input="hi {steps.a}",
        outputs={"a": "A"},
        context={"plan": {"tier": "pro"}},
    )
    assert text == 'hi {steps.a} | A | (this step did not run) | {"tier": "pro"} | (not set)'


# --- planning -----------------------------------------------------------------------

REFUND = workflows.parse(SEED[0]["definition"], agents=AGENTS)


def plan(states=None, decided=None, context=None):
    return workflows.plan(
        REFUND, states=states or {}, decided=decided or {}, input="x", context=context or {}
    )


def test_plan_dispatches_a_parallel_group_together_then_waits_for_it():
    first = plan()
    assert first.action == "dispatch" and [s.id for s in first.steps] == ["invoice", "account"]
    assert first.total == 3 and first.done == 0
    waiting = plan({"invoice": StepState("ok", "fine"), "account": StepState("running")})
    assert waiting.action == "wait"


def test_plan_decides_the_condition_from_an_earlier_output():
    done = {"invoice": StepState("ok", "- Status: paid"), "account": StepState("ok", "ok")}
    then = plan(done)
    assert then.decisions == (("decide", "then"),)
    assert [s.id for s in then.steps] == ["refund"]
    # A nested condition: no invoice number (the lookup asked for it), or anything else.
    unnamed = plan({**done, "invoice": StepState("ok", "Which invoice? Please tell me")})
    assert unnamed.decisions == (("decide", "else"), ("unnamed", "then"))
    assert [s.id for s in unnamed.steps] == ["explain"]
    other = plan({**done, "invoice": StepState("ok", "- Status: open")})
    assert other.decisions == (("decide", "else"), ("unnamed", "else"))
    assert [s.id for s in other.steps] == ["escalate"]
    finished = plan(
        {**done, "refund": StepState("fallback", "Refund on its way")}, {"decide": "then"}
    )
    assert finished.action == "finish" and finished.output == "Refund on its way"
    assert finished.decisions == () and finished.done == 3 and finished.total == 3


def test_plan_fails_when_a_step_failed_finally():
    result = plan({"invoice": StepState("failed"), "account": StepState("ok", "x")})
    assert result.action == "fail" and "invoice" in result.reason


# --- the engine, eager mode ---------------------------------------------------------


class FakeAgents:
    """Scripted agent answers: a list per agent, each a string or an exception."""

    def __init__(self, monkeypatch, **script):
        self.script = {k: list(v) for k, v in script.items()}
        self.calls: list[tuple[str, str]] = []
        monkeypatch.setattr(workflow_steps, "_run_agent", self)
        monkeypatch.setattr(workflow_steps.time, "sleep", lambda s: self.sleeps.append(s))
        self.sleeps: list[float] = []

    def __call__(self, agent, instruction, run, timeout):
        self.calls.append((agent, instruction))
        answers = self.script.get(agent) or ["(no script)"]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def conversation(team):
    return Conversation.objects.create(
        site=Site.objects.get(key="demo"), token_hash=uuid.uuid4().hex
    )


def start(conversation, steps, input="help me", slug="test_flow") -> WorkflowRun:
    flow = Workflow.objects.create(
        slug=slug, name="Test flow", description="t", definition={"steps": steps}
    )
    run = workflow_engine.workflow_start(
        workflow=flow, conversation_id=conversation.uuid, input=input, started_by="staff"
    )
    run.refresh_from_db()
    return run


def states(run):
    return {s.step_id: (s.status, s.attempts) for s in run.steps.all()}


def answers(conversation):
    return list(
        Message.objects.filter(conversation=conversation, role="assistant").values_list(
            "text", flat=True
        )
    )


@pytest.mark.django_db(transaction=True)
def test_sequential_steps_pass_outputs_and_context_along(monkeypatch, conversation):
    services.context_set(conversation_id=conversation.uuid, key="plan", value="pro")
    services.context_set(conversation_id=None, key="outage", value="none today")
    fake = FakeAgents(monkeypatch, billing=["invoice 42 is paid"], customer_support=["Dear Ada"])
    run = start(
        conversation,
        [
            step("check", instruction="Check {input} on the {context.plan} plan", save_as="notes"),
            step(
                "reply",
                agent="customer_support",
                instruction="Reply from {steps.check}; outage: {context.outage}",
            ),
        ],
    )
    assert run.status == "ok" and run.result == "Dear Ada"
    assert fake.calls == [
        ("billing", "Check help me on the pro plan"),
        ("customer_support", "Reply from invoice 42 is paid; outage: none today"),
    ]
    assert states(run) == {"check": ("ok", 1), "reply": ("ok", 1)}
    assert (run.done_steps, run.total_steps) == (2, 2)
    notes = ContextEntry.objects.get(conversation_id=conversation.uuid, key="notes")
    assert notes.value == {"check": "invoice 42 is paid"}
    assert answers(conversation) == ["Dear Ada\n\n_From the Test flow workflow._"]


@pytest.mark.django_db(transaction=True)
def test_a_step_is_retried_with_backoff_then_succeeds(monkeypatch, conversation):
    fake = FakeAgents(
        monkeypatch, billing=[StepFailed("timeout"), StepFailed("HTTP 500"), "third time lucky"]
    )
    run = start(conversation, [step("a", retries=2, backoff=0.5)])
    assert run.status == "ok" and run.result == "third time lucky"
    assert states(run) == {"a": ("ok", 3)}
    assert fake.sleeps == [0.5, 1.0]  # doubled each time


@pytest.mark.django_db(transaction=True)
def test_a_failing_step_takes_its_fallback_agent(monkeypatch, conversation):
    fake = FakeAgents(
        monkeypatch, billing=[StepFailed("down")], customer_support=["covered by support"]
    )
    run = start(conversation, [step("a", retries=1, fallback={"agent": "customer_support"})])
    assert run.status == "ok" and run.result == "covered by support"
    row = run.steps.get()
    assert (row.status, row.attempts, row.error) == ("fallback", 2, "down")
    assert [a for a, _ in fake.calls] == ["billing", "billing", "customer_support"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_step_can_fall_back_to_a_fixed_message(monkeypatch, conversation):
    FakeAgents(monkeypatch, billing=[StepFailed("down")])
    run = start(conversation, [step("a", fallback={"message": "We will email you."})])
    assert run.status == "ok" and run.result == "We will email you."
    assert run.steps.get().status == "fallback"


@pytest.mark.django_db(transaction=True)
def test_a_step_that_keeps_failing_fails_the_run_cleanly(monkeypatch, conversation):
    fake = FakeAgents(monkeypatch, billing=[StepFailed("Billing did not answer within 5 seconds.")])
    run = start(conversation, [step("a", retries=1), step("b", agent="customer_support")])
    assert run.status == "failed" and run.finished_at is not None
    assert "Step 'a' failed." in run.error and "within 5 seconds" in run.error
    assert states(run) == {"a": ("failed", 2)}  # b never ran
    assert [a for a, _ in fake.calls] == ["billing", "billing"]
    (text,) = answers(conversation)
    assert "could not finish" in text and "within 5 seconds" in text


@pytest.mark.django_db(transaction=True)
def test_a_condition_on_context_picks_its_branch(monkeypatch, conversation):
    services.context_set(conversation_id=conversation.uuid, key="tier", value="enterprise")
    FakeAgents(monkeypatch, billing=["vip route"], customer_support=["normal route"])
    branches = {
        "id": "c",
        "if": {"context": "tier", "equals": "enterprise"},
        "then": [step("vip")],
        "else": [step("normal", agent="customer_support")],
    }
    run = start(conversation, [branches])
    assert run.result == "vip route" and run.decisions == {"c": "then"}
    assert states(run) == {"c": ("ok", 0), "vip": ("ok", 1)}
    assert run.steps.get(step_id="c").kind == StepRun.Kind.CONDITION


@pytest.mark.django_db(transaction=True)
def test_redelivered_tasks_change_nothing_once_a_step_or_run_is_done(monkeypatch, conversation):
    fake = FakeAgents(monkeypatch, billing=["once"])
    run = start(conversation, [step("a")])
    assert run.status == "ok" and len(fake.calls) == 1
    # What a broker does after a worker died just after finishing: deliver again.
    workflow_steps.workflow_step_run(run_id=run.pk, step_id="a")
    workflow_engine.workflow_advance(run_id=run.pk)
    run.refresh_from_db()
    assert len(fake.calls) == 1 and states(run) == {"a": ("ok", 1)}
    assert len(answers(conversation)) == 1


@pytest.mark.django_db(transaction=True)
def test_starting_a_disabled_or_broken_workflow_is_refused(conversation):
    flow = Workflow.objects.create(
        slug="off", name="Off", description="t", definition={"steps": [step("a")]}, enabled=False
    )
    with pytest.raises(workflow_engine.WorkflowError, match="disabled"):
        workflow_engine.workflow_start(workflow=flow, conversation_id=conversation.uuid, input="")
    flow.enabled, flow.definition = True, {"steps": [step("a", agent="gone")]}
    flow.save()
    with pytest.raises(workflow_engine.WorkflowError, match="no enabled agent 'gone'"):
        workflow_engine.workflow_start(workflow=flow, conversation_id=conversation.uuid, input="")
    assert not WorkflowRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_seeded_refund_workflow_runs_on_the_offline_model(conversation):
    run = workflow_engine.workflow_start(
        workflow=Workflow.objects.get(slug="refund_request"),
        conversation_id=conversation.uuid,
        input="I was charged twice and want a refund",
    )
    run.refresh_from_db()
    assert run.status == "ok", run.error
    # No invoice number: the lookup asks for it, and Billing explains how refunds work.
    assert set(states(run)) == {"invoice", "account", "decide", "unnamed", "explain"}
    assert run.steps.get(step_id="invoice").output.startswith("Which invoice?")
    assert "refund" in run.steps.get(step_id="explain").output.lower()
    assert AgentRun.objects.filter(turn_id=run.uuid, status="ok").count() == 3
    entry = ContextEntry.objects.get(conversation_id=conversation.uuid, key="refund_request")
    assert set(entry.value) == {"invoice", "account"}
    (text,) = answers(conversation)
    assert text.endswith("_From the Refund request workflow._")


@pytest.mark.django_db(transaction=True)
def test_resume_picks_up_a_dropped_step_and_an_undelivered_answer(monkeypatch, conversation):
    from io import StringIO

    from django.core.management import call_command

    FakeAgents(monkeypatch, billing=["recovered"])
    flow = Workflow.objects.create(
        slug="lost", name="Lost", description="t", definition={"steps": [step("a")]}
    )
    # A run whose first advance was never published (the process died after commit).
    lost = workflow_engine.workflow_start(
        workflow=flow, conversation_id=conversation.uuid, input="x", dispatch=False
    )
    # A run that finished while the chat turn waiting for it had died.
    stranded = workflow_engine.workflow_start(
        workflow=flow, conversation_id=conversation.uuid, input="y", waiting=True
    )
    stranded.refresh_from_db()
    assert stranded.status == "ok" and not stranded.delivered and answers(conversation) == []
    out = StringIO()
    call_command("workflow_resume", "--older-than", "0", stdout=out)
    assert "advanced 1 run(s), posted 1 answer(s)" in out.getvalue()
    lost.refresh_from_db()
    assert lost.status == "ok" and lost.result == "recovered"
    assert len(answers(conversation)) == 2  # both answers posted, once each
    call_command("workflow_resume", "--older-than", "0", stdout=StringIO())
    assert len(answers(conversation)) == 2
