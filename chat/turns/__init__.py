"""Turns: `scheduler` (which conversation is answered when, where: leases, wakes, the
Celery hand-off), `runner` (one turn, event by event), `slots` (how many at once)."""

from .scheduler import (
    answer_pending_now,
    on_celery,
    request_cancel,
    schedule,
    start_sweeper,
    state,
    sweep_now,
    sweep_once,
    wait_idle,
    wake,
)

__all__ = [
    "answer_pending_now",
    "on_celery",
    "request_cancel",
    "schedule",
    "start_sweeper",
    "state",
    "sweep_now",
    "sweep_once",
    "wait_idle",
    "wake",
]
