"""Celery tasks: thin, they take ids and call the workflow engine.

Acknowledged late (settings.CELERY_TASK_ACKS_LATE) and idempotent, so a task whose
worker dies is redelivered and run again safely (see workflow_engine).
"""

from celery import shared_task

from . import workflow_engine


@shared_task(name="orchestrator.workflow_advance", ignore_result=True)
def workflow_advance_task(run_id: int) -> None:
    workflow_engine.workflow_advance(run_id=run_id)


@shared_task(name="orchestrator.workflow_step", ignore_result=True)
def workflow_step_task(run_id: int, step_id: str) -> None:
    workflow_engine.workflow_step_run(run_id=run_id, step_id=step_id)


@shared_task(name="orchestrator.check_alerts", ignore_result=True)
def check_alerts_task() -> None:
    """For Celery beat: evaluate the alert rules (see orchestrator.alerts)."""
    from .alerts import alerts_evaluate

    alerts_evaluate()
