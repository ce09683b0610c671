"""Queue a Celery task by its name.

The tasks modules are the composition root: they import the engines, never the
reverse, so the engines queue what comes next by name. The tasks are registered when
Django starts (orchestrator.apps, chat.apps import their tasks modules), so a name
always finds its task, and eager mode (CELERY_TASK_ALWAYS_EAGER) runs it inline.
"""

from __future__ import annotations

from typing import Any

from celery import current_app


def enqueue(name: str, *args: Any, countdown: float | None = None) -> None:
    task = current_app.tasks.get(name)
    if task is None:  # never fall back to send_task: in eager mode it would reach a broker
        raise LookupError(f"The Celery task {name!r} is not registered.")
    task.apply_async(args, countdown=countdown)


def eager() -> bool:
    """Whether tasks run inline (no broker: `make run` and the unit tests)."""
    return bool(current_app.conf.task_always_eager)
