from django.core.management.base import BaseCommand

from orchestrator.rollups import rollups_rebuild, rollups_update


class Command(BaseCommand):
    help = (
        "Roll up the settled minutes of agent runs for the dashboard (Celery beat does this "
        "every minute). --rebuild drops every rollup and rolls up all stored runs again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="Drop the rollups and build them again from the stored runs.",
        )

    def handle(self, *args, **options) -> None:
        minutes = rollups_rebuild() if options["rebuild"] else rollups_update()
        if minutes:
            self.stdout.write(f"Rolled up {minutes} minute(s) of agent runs.")
        else:
            self.stdout.write("The rollups are up to date.")
