"""Celery tasks: thin, they take ids and call the engines (the composition root: the
engines queue these by name and never import this module).

Acknowledged late (settings.CELERY_TASK_ACKS_LATE) and idempotent, so a task whose
worker dies is redelivered and run again safely (see workflow_engine).
"""

from celery import shared_task
from celery.signals import worker_ready

from . import alerts, rollups, services, workflow_engine, workflow_steps


@shared_task(name=workflow_engine.ADVANCE_TASK, ignore_result=True)
def workflow_advance_task(run_id: int) -> None:
    workflow_engine.workflow_advance(run_id=run_id)


@shared_task(name=workflow_engine.STEP_TASK, ignore_result=True)
def workflow_step_task(run_id: int, step_id: str) -> None:
    workflow_steps.workflow_step_run(run_id=run_id, step_id=step_id)


@shared_task(name="orchestrator.check_alerts", ignore_result=True)
def check_alerts_task() -> None:
    """For Celery beat: evaluate the alert rules (see orchestrator.alerts)."""
    alerts.alerts_evaluate()


@shared_task(name="orchestrator.rollup_runs", ignore_result=True)
def rollup_runs_task() -> None:
    """For Celery beat, every minute: roll up the settled minutes (orchestrator.rollups)."""
    rollups.rollups_update()


@worker_ready.connect
def _worker_started(**kwargs) -> None:
    """A starting worker closes the agent runs a dead process left open."""
    services.process_start()
