"""Celery tasks of the chat: thin, they take ids. This module is the composition root:
it imports the scheduler, which queues the task by its name and never imports it."""

from celery import shared_task
from celery.signals import worker_ready

from . import privacy, staff_notify
from .turns import scheduler


@shared_task(name=scheduler.ANSWER_TASK, ignore_result=True)
def answer_conversation_task(conversation_id: int, attempt: int = 0) -> None:
    """Answer the conversation's pending messages (SUPERORCH_TURN_RUNNER = "celery").

    Acknowledged late: a worker that dies mid-turn has the task run again; the
    conversation's lease (chat.services.conversation_claim) keeps two workers from
    answering it at once, and a copy that finds the lease held looks again later
    (`attempt`: how often in a row it was found held; the wait doubles, capped).
    """
    scheduler.answer_pending_now(conversation_id, attempt)


@shared_task(name=scheduler.SWEEP_TASK, ignore_result=True)
def answer_pending_sweep_task() -> None:
    """For Celery beat (CELERY_BEAT_SCHEDULE): queue the conversations nobody is
    answering (a message due again, a turn whose process died and whose lease expired)."""
    scheduler.sweep_now()


@shared_task(name=staff_notify.NOTIFY_TASK, ignore_result=True)
def staff_notify_waiting_task(event_id: int) -> None:
    """Email and webhook for a conversation that started waiting for a person (not
    retried: a failure is logged, and a second POST would tell the team twice)."""
    staff_notify.staff_notify_waiting(event_id=event_id)


PURGE_TASK = "chat.purge_expired"


@shared_task(name=PURGE_TASK, ignore_result=True)
def purge_expired_task() -> None:
    """For Celery beat, daily: delete conversations past their site's retention."""
    privacy.purge_expired()


@worker_ready.connect
def _worker_started(**kwargs) -> None:
    """A starting worker answers what waited while no worker ran (Celery runner)."""
    if scheduler.on_celery():
        scheduler.sweep_now()
