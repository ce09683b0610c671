"""Celery tasks of the chat: thin, they take ids. This module is the composition root:
it imports the scheduler, which queues the task by its name and never imports it."""

from celery import shared_task

from .turns import scheduler


@shared_task(name=scheduler.ANSWER_TASK, ignore_result=True)
def answer_conversation_task(conversation_id: int) -> None:
    """Answer the conversation's pending messages (SUPERORCH_TURN_RUNNER = "celery").

    Acknowledged late: a worker that dies mid-turn has the task run again; the
    conversation's lease (chat.services.conversation_claim) keeps two workers from
    answering it at once, and a copy that finds the lease held looks again shortly.
    """
    scheduler.answer_pending_now(conversation_id)
