import time

from django.core.management.base import BaseCommand

from orchestrator import selectors
from orchestrator.services import team_seed


class Command(BaseCommand):
    help = (
        "Create the default agent team, its routing examples and knowledge articles "
        "(idempotent). The chat's default site comes from its migration; the demo widget "
        "site from `manage.py demo_site`."
    )

    def handle(self, *args, **options) -> None:
        created = team_seed()
        self.stdout.write(
            self.style.SUCCESS(
                "Team ready: {agents} agents, {examples} routing examples, {articles} articles "
                "and {actions} actions created (existing ones left as they were).".format(**created)
            )
        )
        # Train (or load) the input guardrail now and save it, so that the server's first
        # message does not wait for it (about 10 s on one core; then read from the cache).
        started = time.monotonic()
        selectors.input_classifier(wait=True)
        self.stdout.write(f"Input guardrail ready ({time.monotonic() - started:.1f} s).")
        # The router and the knowledge sections' vectors too, saved beside it, so that
        # every process that starts (web workers, Celery workers) reads them from disk.
        started = time.monotonic()
        selectors.router_for(selectors.team_snapshot(), wait=True)
        sets = selectors.knowledge_warm_up()
        self.stdout.write(
            f"Router and knowledge ready ({sets} article sets, {time.monotonic() - started:.1f} s)."
        )
