"""A chat turn starts a workflow and waits for its answer, reporting progress meanwhile.

The `execute_workflow` tool's body (orchestrator.sdk.tools), kept free of the SDK. A
retried attempt of the same turn waits for the run it already started. Exactly one
of the waiting turn and the conversation (chat's workflow_finished receiver) delivers
the answer: the turn claims it when the run finishes; a turn that gives up waiting,
is cancelled or fails hands it to the conversation instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from . import selectors, workflow_engine
from .aio import db_call, db_call_parallel
from .domain.enums import ProgressStatus, StepStatus, WorkflowStatus
from .domain.events import Emit, WorkflowProgress
from .domain.exceptions import WorkflowError
from .domain.team import Team, WorkflowSpec
from .models import Workflow, WorkflowRun

logger = logging.getLogger(__name__)
POLL = 0.2  # seconds between two looks at the run
FINAL = (WorkflowStatus.OK, WorkflowStatus.FAILED)
_STEP_REPORT = {
    StepStatus.RUNNING: ProgressStatus.STARTED,
    StepStatus.RETRYING: ProgressStatus.RETRYING,
    StepStatus.OK: ProgressStatus.FINISHED,
    StepStatus.FALLBACK: ProgressStatus.FINISHED,
    StepStatus.FAILED: ProgressStatus.FAILED,
}
STILL_RUNNING = (
    "The workflow is still running; its answer will be posted in this conversation when it is done."
)


async def workflow_run_and_wait(
    *,
    team: Team,
    conversation_id: uuid.UUID,
    turn_id: uuid.UUID,
    slug: str,
    request: str,
    emit: Emit | None,
    claimed: set[int],
) -> dict[str, Any]:
    """Start (or rejoin) the turn's run of workflow `slug` and wait for its answer; the
    result is what the agent is told (JSON-able)."""
    spec = team.workflow(slug)
    if spec is None:
        names = ", ".join(w.slug for w in team.workflows) or "none"
        return {"ok": False, "error": f"No enabled workflow {slug!r}. Workflows: {names}."}
    workflow = await Workflow.objects.aget(slug=slug)
    run = await WorkflowRun.objects.filter(turn_id=turn_id, workflow=workflow).afirst()
    dispatcher = None
    if run is None:
        try:
            run = await db_call(
                workflow_engine.workflow_start,
                workflow=workflow,
                conversation_id=conversation_id,
                input=request,
                turn_id=turn_id,
                waiting=True,
                dispatch=False,
            )
        except WorkflowError as exc:
            return {"ok": False, "error": str(exc)}
        # Eager mode runs the whole workflow inside the dispatch: keep it off the event
        # loop and report progress meanwhile.
        dispatcher = asyncio.create_task(
            db_call_parallel(workflow_engine.workflow_dispatch, run_id=run.pk)
        )
    else:
        await WorkflowRun.objects.filter(pk=run.pk).aupdate(waiting=True)
    waiter = _Waiter(run=run, spec=spec, emit=emit, claimed=claimed)
    try:
        return await waiter.wait()
    finally:
        await waiter.hand_over()
        if dispatcher is not None and dispatcher.done() and dispatcher.exception() is not None:
            logger.error("workflow %s dispatch failed", run.uuid, exc_info=dispatcher.exception())


@dataclass
class _Waiter:
    run: WorkflowRun
    spec: WorkflowSpec
    emit: Emit | None
    claimed: set[int]
    delivered: bool = False
    seen: dict[str, tuple[str, int]] = field(default_factory=dict)

    async def wait(self) -> dict[str, Any]:
        deadline = time.monotonic() + settings.SUPERORCH_WORKFLOW_WAIT
        while True:
            progress = await db_call(selectors.workflow_progress, run_id=self.run.pk)
            await self._report_steps(progress)
            if progress["status"] in FINAL:
                return await self._finished(progress)
            if time.monotonic() > deadline:
                await db_call(workflow_engine.workflow_stop_waiting, run_id=self.run.pk)
                # The run may have finished while we stopped waiting: look once more.
                again = await db_call(selectors.workflow_progress, run_id=self.run.pk)
                if again["status"] in FINAL:
                    continue
                return {"ok": True, "workflow": self.spec.name, "status": "running",
                        "message": STILL_RUNNING}  # fmt: skip
            await asyncio.sleep(POLL)

    async def _report_steps(self, progress: dict[str, Any]) -> None:
        for step_id, agent, status, attempts in progress["steps"]:
            if self.seen.get(step_id) == (status, attempts):
                continue
            self.seen[step_id] = (status, attempts)
            kind = _STEP_REPORT.get(status)
            if kind:
                await self._report(kind, progress, step_id, agent)

    async def _finished(self, progress: dict[str, Any]) -> dict[str, Any]:
        pk = self.run.pk
        self.delivered = pk in self.claimed or await db_call(
            workflow_engine.workflow_claim_delivery, run_id=pk
        )
        if self.delivered:
            self.claimed.add(pk)
        ok = progress["status"] == WorkflowStatus.OK
        await self._report(ProgressStatus.DONE if ok else ProgressStatus.FAILED, progress)
        if not self.delivered:
            return {"ok": True, "status": "posted", "message": "The answer was posted."}
        if not ok:
            error = progress["error"] or "The workflow failed."
            return {"ok": False, "workflow": self.spec.name, "error": error}
        return {"ok": True, "workflow": self.spec.name, "answer": progress["result"]}

    async def _report(
        self,
        status: ProgressStatus,
        progress: dict[str, Any],
        step: str | None = None,
        agent: str | None = None,
    ) -> None:
        if self.emit is None:
            return
        await self.emit(
            WorkflowProgress(
                self.run.uuid,
                self.spec.slug,
                self.spec.name,
                status,
                step,
                agent,
                progress["done"],
                progress["total"],
            )  # fmt: skip
        )

    async def hand_over(self) -> None:
        """A cancelled or failed turn: the answer goes to the conversation when ready."""
        if not self.delivered:
            await asyncio.shield(db_call(workflow_engine.workflow_stop_waiting, run_id=self.run.pk))
