import asyncio

from django.core.management.base import BaseCommand

from chat import selectors, turns
from chat.models import Conversation
from orchestrator.services import agent_runs_abandon


class Command(BaseCommand):
    help = (
        "Answer every acknowledged user message still waiting for a reply (after a server "
        "crash, say). Conversations whose turn lease another server holds are left to it."
    )

    def handle(self, *args, **options) -> None:
        closed = agent_runs_abandon()  # the runs the crashed server left open
        ids = selectors.conversations_with_pending()
        conversations = list(Conversation.objects.filter(pk__in=ids))

        async def run() -> None:
            for conversation in conversations:
                turns.schedule(conversation)
            await turns.wait_idle(timeout=3600)

        asyncio.run(run())
        self.stdout.write(
            f"Looked at {len(conversations)} conversation(s) with pending messages; "
            f"closed {closed} abandoned agent run(s)."
        )
