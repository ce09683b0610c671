"""Running workflows: starting a run, advancing it, and running its steps.

Every step runs as a Celery task (`orchestrator.tasks`); this module is what the
tasks call. The run's state lives in the database (WorkflowRun, StepRun), and each
transition happens under a lock on the run's row, so:

* a step is dispatched once: its StepRun row is created, under the lock, by the
  advance that dispatches it (a unique (run, step) constraint backs that up);
* a parallel group is a barrier in the database: every finishing member calls
  `workflow_advance`, and only the last one finds the group complete;
* a step delivered twice (a worker died mid-step, and the broker redelivered its
  unacknowledged task) runs again, and its result is recorded once: a step that is
  already final is not run again, and a run finishes exactly once.

In eager mode (`make run`, no broker) the same tasks run inline, one at a time.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from . import metrics, selectors, services, workflows
from .models import StepRun, Workflow, WorkflowRun, WorkflowStatus
from .signals import workflow_finished

log = logging.getLogger(__name__)
_FINAL_RUN = (WorkflowStatus.OK, WorkflowStatus.FAILED)


class WorkflowError(ValueError):
    """A workflow that cannot be started; the message is safe to show."""


def workflow_definition_check(definition: Any) -> workflows.Definition:
    """Parse against the enabled agents of the registry (raises DefinitionError)."""
    team = selectors.team_snapshot()
    return workflows.parse(definition, agents=[a.slug for a in team.enabled()])


def workflow_start(
    *,
    workflow: Workflow,
    conversation_id: uuid.UUID,
    input: str,
    turn_id: uuid.UUID | None = None,
    started_by: str = "agent",
    waiting: bool = False,
    dispatch: bool = True,
) -> WorkflowRun:
    """Create a run and queue its first steps after the transaction commits (with
    dispatch=False the caller calls workflow_dispatch itself)."""
    if not workflow.enabled:
        raise WorkflowError(f"The workflow {workflow.name!r} is disabled.")
    try:
        definition = workflow_definition_check(workflow.definition)
    except workflows.DefinitionError as exc:
        raise WorkflowError(f"The workflow {workflow.name!r} cannot run: {exc}") from exc
    run = WorkflowRun.objects.create(
        workflow=workflow,
        workflow_slug=workflow.slug,
        definition=workflow.definition,
        conversation_id=conversation_id,
        turn_id=turn_id,
        started_by=started_by,
        input=input[:4000],
        total_steps=workflows.plan(
            definition, states={}, decided={}, input=input, context={}
        ).total,
        waiting=waiting,
    )
    if dispatch:
        transaction.on_commit(partial(workflow_dispatch, run_id=run.pk))
    return run


def workflow_dispatch(*, run_id: int) -> None:
    """Queue the run's first advance (in eager mode: run the whole workflow, inline)."""
    from .tasks import workflow_advance_task

    workflow_advance_task.delay(run_id)


def workflow_claim_delivery(*, run_id: int) -> bool:
    """True for exactly one caller: the one that delivers the run's answer."""
    return bool(WorkflowRun.objects.filter(pk=run_id, delivered=False).update(delivered=True))


def workflow_stop_waiting(*, run_id: int) -> None:
    """The chat turn gave up waiting: the answer is posted to the conversation instead
    (now, if the run finished while nobody was looking)."""
    WorkflowRun.objects.filter(pk=run_id).update(waiting=False)
    finished = WorkflowRun.objects.filter(pk=run_id, status__in=_FINAL_RUN, delivered=False)
    if finished.exists():
        workflow_finished.send(sender=WorkflowRun, run_id=run_id)


def workflow_release_delivery(*, run_id: int) -> None:
    """A turn took the answer but failed before passing it on: post it instead."""
    WorkflowRun.objects.filter(pk=run_id).update(delivered=False, waiting=False)
    workflow_finished.send(sender=WorkflowRun, run_id=run_id)


def workflow_advance(*, run_id: int) -> None:
    """Decide what runs next (under the run's lock) and queue it after commit."""
    from .tasks import workflow_step_task

    with transaction.atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=run_id)
        if run.status in _FINAL_RUN:
            return
        definition = workflows.parse(run.definition)  # the snapshot was checked at start
        rows = {s.step_id: s for s in run.steps.all()}
        states = {
            sid: workflows.StepState(s.status, s.output)
            for sid, s in rows.items()
            if s.kind == StepRun.Kind.AGENT
        }
        plan = workflows.plan(
            definition,
            states=states,
            decided=run.decisions,
            input=run.input,
            context=selectors.context_visible(conversation_id=run.conversation_id),
        )
        now = timezone.now()
        for condition_id, branch in plan.decisions:
            run.decisions = {**run.decisions, condition_id: branch}
            StepRun.objects.get_or_create(
                run=run,
                step_id=condition_id,
                defaults={
                    "kind": StepRun.Kind.CONDITION,
                    "status": StepRun.Status.OK,
                    "output": branch,
                    "started_at": now,
                    "finished_at": now,
                },
            )
        run.total_steps, run.done_steps = plan.total, plan.done
        dispatch: list[str] = []
        if plan.action == "dispatch":
            run.status = WorkflowStatus.RUNNING
            for step in plan.steps:
                _, created = StepRun.objects.get_or_create(
                    run=run, step_id=step.id, defaults={"agent_slug": step.agent}
                )
                if created:
                    dispatch.append(step.id)
        elif plan.action == "wait":
            run.status = WorkflowStatus.RUNNING
        elif plan.action == "finish":
            run.status, run.result, run.finished_at = WorkflowStatus.OK, plan.output, now
        else:
            failed = next((s for s in rows.values() if s.status == StepRun.Status.FAILED), None)
            run.status, run.finished_at = WorkflowStatus.FAILED, now
            run.error = plan.reason + (f" {failed.error}" if failed and failed.error else "")
        run.save()
        for step_id in dispatch:
            transaction.on_commit(partial(workflow_step_task.delay, run.pk, step_id))
        if run.status in _FINAL_RUN:
            transaction.on_commit(metrics.WORKFLOW_RUNS.labels(run.workflow_slug, run.status).inc)
            transaction.on_commit(
                partial(workflow_finished.send, sender=WorkflowRun, run_id=run.pk)
            )


def workflow_step_run(*, run_id: int, step_id: str) -> None:
    """Run one agent step with its timeout, retries and fallback, then advance the run."""
    with structlog.contextvars.bound_contextvars(workflow_run=run_id, step=step_id):
        _step_run(run_id, step_id)


def _step_run(run_id: int, step_id: str) -> None:
    with transaction.atomic():
        row = (
            StepRun.objects.select_for_update()
            .select_related("run")
            .get(run_id=run_id, step_id=step_id)
        )
        run = row.run
        if row.status in workflows.FINAL or run.status in _FINAL_RUN:
            final = True
        else:
            final = False
            row.status = StepRun.Status.RUNNING
            row.attempts += 1
            row.started_at = row.started_at or timezone.now()
            row.worker = f"{socket.gethostname()}:{os.getpid()}"
            row.save(update_fields=["status", "attempts", "started_at", "worker"])
    if final:  # a redelivered task whose step is done: make sure the run moves on
        workflow_advance(run_id=run_id)
        return

    step = workflows.parse(run.definition).find(step_id)
    outputs = dict(
        run.steps.filter(kind=StepRun.Kind.AGENT, status__in=workflows.DONE).values_list(
            "step_id", "output"
        )
    )
    context = selectors.context_visible(conversation_id=run.conversation_id)
    instruction = workflows.render(
        step.instruction, input=run.input, outputs=outputs, context=context
    )
    status, output, error = _attempts(row, step, run, instruction)
    if status == StepRun.Status.FAILED and step.fallback is not None:
        status, output, error = _fallback(step, run, instruction, error)
    if status in workflows.DONE and step.save_as:
        try:
            services.context_update(
                conversation_id=run.conversation_id, key=step.save_as, value={step.id: output}
            )
        except services.ContextError as exc:  # the step still answered: keep its output
            error = f"{error} Not saved to context {step.save_as!r}: {exc}".strip()
    # Only this copy's attempt is recorded: a copy delivered twice finds the row final.
    StepRun.objects.filter(
        pk=row.pk, status__in=(StepRun.Status.RUNNING, StepRun.Status.RETRYING)
    ).update(status=status, output=output, error=error[:4000], finished_at=timezone.now())
    workflow_advance(run_id=run_id)


def _run_agent(agent: str, instruction: str, run: WorkflowRun, timeout: float) -> str:
    from . import runtime

    return async_to_sync(runtime.run_step)(
        agent_slug=agent,
        instruction=instruction,
        conversation_id=run.conversation_id,
        run_id=run.uuid,
        timeout=timeout,
    )


def _attempts(row: StepRun, step: workflows.AgentStep, run: WorkflowRun, instruction: str):
    """The step's first try and its retries, with exponential backoff between them."""
    from .runtime import StepFailed

    error = ""
    for attempt in range(step.retries + 1):
        if attempt:
            StepRun.objects.filter(pk=row.pk).update(
                status=StepRun.Status.RETRYING, attempts=row.attempts + attempt, error=error
            )
            time.sleep(step.backoff * 2 ** (attempt - 1))
            StepRun.objects.filter(pk=row.pk).update(status=StepRun.Status.RUNNING)
        try:
            return StepRun.Status.OK, _run_agent(step.agent, instruction, run, step.timeout), ""
        except StepFailed as exc:
            error = str(exc)
            log.warning("workflow %s step %s attempt %d: %s", run.uuid, step.id, attempt + 1, exc)
        except Exception as exc:  # never leave a step running: count it as a failed attempt
            error = f"The step failed on our side ({type(exc).__name__})."
            log.exception("workflow %s step %s attempt %d", run.uuid, step.id, attempt + 1)
    return StepRun.Status.FAILED, "", error


def _fallback(step: workflows.AgentStep, run: WorkflowRun, instruction: str, error: str):
    from .runtime import StepFailed

    fallback = step.fallback
    assert fallback is not None
    if fallback.message is not None:
        return StepRun.Status.FALLBACK, fallback.message, error
    try:
        output = _run_agent(fallback.agent or "", instruction, run, step.timeout)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, StepFailed) else type(exc).__name__
        return StepRun.Status.FAILED, "", f"{error} Fallback {fallback.agent}: {reason}"
    return StepRun.Status.FALLBACK, output, error


def workflow_resume(*, older_than: timedelta) -> dict[str, int]:
    """Pick up what a crash dropped (`manage.py workflow_resume`).

    A process that dies between committing a transition and publishing its task
    leaves a step queued that no worker will run, or a run nobody advances; a web
    server that dies while a chat turn waits for a workflow leaves its answer
    undelivered. This queues those steps and advances those runs again, and posts
    those answers. Everything it touches is idempotent.
    """
    from .tasks import workflow_advance_task, workflow_step_task

    cutoff = timezone.now() - older_than
    active = (WorkflowStatus.QUEUED, WorkflowStatus.RUNNING)
    steps = list(
        StepRun.objects.filter(
            kind=StepRun.Kind.AGENT,
            status=StepRun.Status.QUEUED,
            queued_at__lt=cutoff,
            run__status__in=active,
        ).values_list("run_id", "step_id")
    )
    # Steps left running by a worker that died, once even their last retry would be over
    # (Redis hands such tasks back only after its visibility timeout).
    for row in StepRun.objects.filter(
        kind=StepRun.Kind.AGENT,
        status__in=(StepRun.Status.RUNNING, StepRun.Status.RETRYING),
        run__status__in=active,
    ).select_related("run"):
        step = workflows.parse(row.run.definition).find(row.step_id)
        budget = step.timeout * (step.retries + 1) + step.backoff * (2**step.retries)
        if row.started_at and row.started_at < cutoff - timedelta(seconds=budget):
            steps.append((row.run_id, row.step_id))
    for run_id, step_id in steps:
        workflow_step_task.delay(run_id, step_id)
    runs = list(
        WorkflowRun.objects.filter(status__in=active, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for run_id in runs:
        workflow_advance_task.delay(run_id)
    stranded = list(
        WorkflowRun.objects.filter(
            status__in=_FINAL_RUN, delivered=False, finished_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    WorkflowRun.objects.filter(pk__in=stranded).update(waiting=False)
    for run_id in stranded:
        workflow_finished.send(sender=WorkflowRun, run_id=run_id)
    return {"steps": len(steps), "runs": len(runs), "answers": len(stranded)}
