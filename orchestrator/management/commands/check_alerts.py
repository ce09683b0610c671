from django.core.management.base import BaseCommand

from orchestrator.alerts import alerts_evaluate


class Command(BaseCommand):
    help = "Evaluate the alert rules now: raise new alerts, clear recovered ones, notify."

    def handle(self, *args, **options) -> None:
        done = alerts_evaluate()
        self.stdout.write(f"Raised {done['raised']} alert(s), cleared {done['cleared']}.")
