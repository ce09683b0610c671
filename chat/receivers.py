"""What the chat app does when the orchestrator reports something (signals)."""

from django.dispatch import receiver

from orchestrator.models import WorkflowRun
from orchestrator.signals import workflow_finished

from . import services


@receiver(workflow_finished, sender=WorkflowRun)
def post_workflow_answer(sender, run_id: int, **kwargs) -> None:
    services.workflow_answer_post(run_id=run_id)
