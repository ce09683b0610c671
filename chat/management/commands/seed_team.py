from django.core.management.base import BaseCommand

from chat.services import site_ensure_default
from orchestrator.services import team_seed


class Command(BaseCommand):
    help = "Create the default agent team, its knowledge articles and the demo site (idempotent)."

    def handle(self, *args, **options) -> None:
        created = team_seed()
        site_ensure_default()
        self.stdout.write(
            self.style.SUCCESS(
                "Team ready: {agents} agents, {examples} routing examples and {articles} "
                "articles created (existing ones left as they were).".format(**created)
            )
        )
