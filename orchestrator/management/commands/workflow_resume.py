from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from orchestrator.services import agent_runs_abandon
from orchestrator.workflow_engine import workflow_resume


class Command(BaseCommand):
    help = (
        "After a crash: queue workflow steps that were queued but never started, advance "
        "unfinished runs, and post answers that no chat turn delivered. Only what is older "
        "than --older-than seconds is touched."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=float, default=600.0, metavar="SECONDS")

    def handle(self, *args, **options) -> None:
        if options["older_than"] < 0:
            raise CommandError("--older-than must be zero or more seconds.")
        done = workflow_resume(older_than=timedelta(seconds=options["older_than"]))
        closed = agent_runs_abandon()
        self.stdout.write(
            f"Queued {done['steps']} step(s), advanced {done['runs']} run(s), "
            f"posted {done['answers']} answer(s), closed {closed} abandoned agent run(s)."
        )
