"""Turns: `scheduler` (which conversation is answered when, where: leases, wakes, the
Celery hand-off), `runner` (one turn, event by event), `slots` (how many at once)."""

from .scheduler import answer_pending_now, on_celery, request_cancel, schedule, state, wait_idle

__all__ = ["answer_pending_now", "on_celery", "request_cancel", "schedule", "state", "wait_idle"]
