from django.core.management.base import BaseCommand

from chat.services import site_ensure_default, site_ensure_demo_widget
from orchestrator.services import team_seed


class Command(BaseCommand):
    help = (
        "Create the default agent team, its knowledge articles, the 'demo' site (this app's "
        "own page) and the 'acme' demo widget site (idempotent)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--demo-host-origin",
            action="append",
            default=[],
            help="An origin the demo widget site allows (repeatable), e.g. http://127.0.0.1:8001.",
        )

    def handle(self, *args, **options) -> None:
        created = team_seed()
        site_ensure_default()
        site_ensure_demo_widget(
            origins=[o.rstrip("/").lower() for o in options["demo_host_origin"]]
        )
        self.stdout.write(
            self.style.SUCCESS(
                "Team ready: {agents} agents, {examples} routing examples and {articles} "
                "articles created (existing ones left as they were).".format(**created)
            )
        )
