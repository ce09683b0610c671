"""Running one workflow step: its agent, timeout, retries and fallback.

Called by the step task (orchestrator.tasks); the step's result is recorded once
(a copy of the task delivered twice finds the row final) and the run is advanced
(orchestrator.workflow_engine).
"""

from __future__ import annotations

import logging
import os
import socket
import time

import structlog
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from . import selectors, services
from .domain import workflows
from .domain.exceptions import ContextError, StepFailed
from .models import StepRun, WorkflowRun
from .sdk.step import run_step
from .workflow_engine import FINAL_RUN, workflow_advance

log = logging.getLogger(__name__)


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
        if row.status in workflows.FINAL or run.status in FINAL_RUN:
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
        except ContextError as exc:  # the step still answered: keep its output
            error = f"{error} Not saved to context {step.save_as!r}: {exc}".strip()
    # Only this copy's attempt is recorded: a copy delivered twice finds the row final.
    StepRun.objects.filter(
        pk=row.pk, status__in=(StepRun.Status.RUNNING, StepRun.Status.RETRYING)
    ).update(status=status, output=output, error=error[:4000], finished_at=timezone.now())
    workflow_advance(run_id=run_id)


def _run_agent(agent: str, instruction: str, run: WorkflowRun, timeout: float) -> str:
    return async_to_sync(run_step)(
        agent_slug=agent,
        instruction=instruction,
        conversation_id=run.conversation_id,
        run_id=run.uuid,
        timeout=timeout,
    )


def _attempts(row: StepRun, step: workflows.AgentStep, run: WorkflowRun, instruction: str):
    """The step's first try and its retries, with exponential backoff between them."""
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
