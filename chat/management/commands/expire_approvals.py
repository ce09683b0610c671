import asyncio

from django.core.management.base import BaseCommand

from chat import approvals, turns


class Command(BaseCommand):
    help = (
        "Expire the approvals nobody answered in time (SUPERORCH_APPROVAL_TTL_USER, "
        "SUPERORCH_APPROVAL_TTL_STAFF): nothing is called, and each conversation is answered "
        "(the agent says so). Every server process and Celery beat do this in their sweep; "
        "this is for a cron job or by hand."
    )

    def handle(self, *args, **options) -> None:
        expired = approvals.approvals_expire_sweep()

        async def answer() -> int:
            scheduled = await turns.sweep_once()
            await turns.wait_idle(timeout=3600)  # the inline runner answers here
            return scheduled

        scheduled = asyncio.run(answer()) if expired else 0
        self.stdout.write(
            f"Expired {len(expired)} approval(s); {scheduled} conversation(s) to answer."
        )
