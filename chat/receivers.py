"""What the chat app does when the orchestrator reports something (signals)."""

from django.dispatch import receiver

from orchestrator.models import WorkflowRun
from orchestrator.signals import human_requested, verified_user_requested, workflow_finished

from . import people, services, turns
from .enums import EscalationSource
from .models import Conversation


@receiver(workflow_finished, sender=WorkflowRun)
def post_workflow_answer(sender, run_id: int, **kwargs) -> None:
    services.workflow_answer_post(run_id=run_id)


@receiver(human_requested)
def escalate_for_agent(sender, conversation_id, reason: str = "", **kwargs) -> dict:
    """An agent's escalate_to_human: ask for a person; the agent gets what happens next."""
    conversation = Conversation.objects.select_related("site").filter(uuid=conversation_id).first()
    if conversation is None:
        return {"ok": False, "error": "This conversation could not be found."}
    moved = people.request_human(
        conversation=conversation, reason=reason, source=EscalationSource.AGENT
    )
    status = people.status_payload(conversation=moved.conversation)
    return {
        "ok": True,
        "status": status.status,
        "eta_seconds": status.eta_seconds,
        "open_now": status.open_now,
        "tell_the_user": status.message,
    }


@receiver(people.agents_answer_again, sender=Conversation)
def wake_the_agents(sender, conversation_id: int, conversation_uuid, **kwargs) -> None:
    """A hand-back: what the user wrote meanwhile is answered now."""
    turns.wake(conversation_id, conversation_uuid)


@receiver(verified_user_requested)
def verified_user(sender, conversation_id, **kwargs) -> str:
    """An action's call: the user's id, only when the site verified it (identity HMAC)."""
    row = (
        Conversation.objects.filter(uuid=conversation_id, user_verified=True)
        .values_list("user_id", flat=True)
        .first()
    )
    return row or ""
