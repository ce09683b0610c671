"""Keep AgentProfile.updated_at the registry's version stamp.

A change to an agent's routing examples, articles or handoffs touches the agent, so the
runtime's cached team snapshot is rebuilt on the next turn in every process.
"""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal, receiver
from django.utils import timezone

from .models import AgentProfile, KnowledgeArticle, RoutingExample

# Sent after a workflow run's final state is committed (kwargs: run_id). The chat app
# posts the answer to the conversation when no chat turn is waiting for it.
workflow_finished = Signal()
# Sent when an agent calls escalate_to_human (kwargs: conversation_id, a UUID; reason).
# The chat app's receiver asks for a person and returns what happens next, as a dict.
human_requested = Signal()
# Sent when an action is called for a conversation (kwargs: conversation_id, a UUID). The
# chat app's receiver returns the user's id when the site verified it (identity HMAC),
# else "": an action carries the user's id only when it was verified.
verified_user_requested = Signal()


def _touch(agent_id: int | None) -> None:
    if agent_id:
        AgentProfile.objects.filter(pk=agent_id).update(updated_at=timezone.now())


@receiver(post_save, sender=RoutingExample)
@receiver(post_delete, sender=RoutingExample)
@receiver(post_save, sender=KnowledgeArticle)
@receiver(post_delete, sender=KnowledgeArticle)
def routing_example_changed(sender, instance, **kwargs) -> None:
    _touch(instance.agent_id)


@receiver(m2m_changed, sender=AgentProfile.handoffs.through)
@receiver(m2m_changed, sender=AgentProfile.actions.through)
@receiver(m2m_changed, sender=AgentProfile.knowledge_bases.through)
@receiver(m2m_changed, sender=AgentProfile.mcp_servers.through)
def handoffs_changed(sender, instance, action: str, **kwargs) -> None:
    if isinstance(instance, AgentProfile):
        if action in {"post_add", "post_remove", "post_clear"}:
            _touch(instance.pk)
    elif action == "pre_clear":  # from the action's side: its agents, before they go
        instance.agents.update(updated_at=timezone.now())
    elif action in {"post_add", "post_remove"}:  # action.agents.add(...)
        AgentProfile.objects.filter(pk__in=kwargs.get("pk_set") or ()).update(
            updated_at=timezone.now()
        )
