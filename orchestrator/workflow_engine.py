"""Running workflows: starting a run, advancing it, and running its steps.

Every step runs as a Celery task (`orchestrator.tasks`, queued here by name); this
module decides what runs next, and orchestrator.workflow_steps runs a step. The run's state lives in the database (WorkflowRun, StepRun), and each
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
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import metrics, selectors
from .domain import workflows
from .domain.exceptions import WorkflowError
from .models import StepRun, Workflow, WorkflowRun, WorkflowStatus
from .queue import enqueue
from .signals import workflow_finished

# The Celery tasks (orchestrator.tasks) that advance a run and run one of its steps.
ADVANCE_TASK = "orchestrator.workflow_advance"
STEP_TASK = "orchestrator.workflow_step"

log = logging.getLogger(__name__)
FINAL_RUN = (WorkflowStatus.OK, WorkflowStatus.FAILED)


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
    enqueue(ADVANCE_TASK, run_id)


def workflow_claim_delivery(*, run_id: int) -> bool:
    """True for exactly one caller: the one that delivers the run's answer."""
    return bool(WorkflowRun.objects.filter(pk=run_id, delivered=False).update(delivered=True))


def workflow_stop_waiting(*, run_id: int) -> None:
    """The chat turn gave up waiting: the answer is posted to the conversation instead
    (now, if the run finished while nobody was looking)."""
    WorkflowRun.objects.filter(pk=run_id).update(waiting=False)
    finished = WorkflowRun.objects.filter(pk=run_id, status__in=FINAL_RUN, delivered=False)
    if finished.exists():
        workflow_finished.send(sender=WorkflowRun, run_id=run_id)


def workflow_release_delivery(*, run_id: int) -> None:
    """A turn took the answer but failed before passing it on: post it instead."""
    WorkflowRun.objects.filter(pk=run_id).update(delivered=False, waiting=False)
    workflow_finished.send(sender=WorkflowRun, run_id=run_id)


def workflow_advance(*, run_id: int) -> None:
    """Decide what runs next (under the run's lock) and queue it after commit."""
    with transaction.atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=run_id)
        if run.status in FINAL_RUN:
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
            transaction.on_commit(partial(enqueue, STEP_TASK, run.pk, step_id))
        if run.status in FINAL_RUN:
            transaction.on_commit(metrics.WORKFLOW_RUNS.labels(run.workflow_slug, run.status).inc)
            transaction.on_commit(
                partial(workflow_finished.send, sender=WorkflowRun, run_id=run.pk)
            )


def workflow_resume(*, older_than: timedelta) -> dict[str, int]:
    """Pick up what a crash dropped (`manage.py workflow_resume`).

    A process that dies between committing a transition and publishing its task
    leaves a step queued that no worker will run, or a run nobody advances; a web
    server that dies while a chat turn waits for a workflow leaves its answer
    undelivered. This queues those steps and advances those runs again, and posts
    those answers. Everything it touches is idempotent.
    """
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
        enqueue(STEP_TASK, run_id, step_id)
    runs = list(
        WorkflowRun.objects.filter(status__in=active, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for run_id in runs:
        enqueue(ADVANCE_TASK, run_id)
    stranded = list(
        WorkflowRun.objects.filter(
            status__in=FINAL_RUN, delivered=False, finished_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    WorkflowRun.objects.filter(pk__in=stranded).update(waiting=False)
    for run_id in stranded:
        workflow_finished.send(sender=WorkflowRun, run_id=run_id)
    return {"steps": len(steps), "runs": len(runs), "answers": len(stranded)}
