"""Celery tasks of the chat: thin, they take ids (see chat.turns)."""

from celery import shared_task

from . import turns


@shared_task(name="chat.answer_conversation", ignore_result=True)
def answer_conversation_task(conversation_id: int) -> None:
    """Answer the conversation's pending messages (SUPERORCH_TURN_RUNNER = "celery").

    Acknowledged late: a worker that dies mid-turn has the task run again; the
    conversation's lease (chat.services.conversation_claim) keeps two workers from
    answering it at once, and a copy that finds the lease held looks again shortly.
    """
    turns.answer_pending_now(conversation_id)
