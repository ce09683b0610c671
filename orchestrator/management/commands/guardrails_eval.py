import json

from django.core.management.base import BaseCommand, CommandError

from orchestrator import guardrails, selectors
from orchestrator.guardrails_eval import evaluate, mistakes_report, report


class Command(BaseCommand):
    help = (
        "Measure the input guardrail on a labelled split of orchestrator/seed/guardrails: "
        "blocked attacks by kind and style, blocked ordinary messages (tricky ones apart), "
        "and the time per check. dev is scored by cross-validation; test by the classifier "
        "trained on all of dev (test never trains or tunes anything)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--split", choices=guardrails.SPLITS, default="dev")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument(
            "--mistakes",
            action="store_true",
            help="Also list every attack let through and every ordinary message blocked.",
        )

    def handle(self, *args, **options) -> None:
        try:
            rows = guardrails.load_split(options["split"])
        except (OSError, ValueError) as exc:
            raise CommandError(f"Could not read the {options['split']} split: {exc}") from exc
        # Trained on the shipped dev rows only (not the marks of this installation), and
        # saved like the live one: a second run loads it.
        corpus = {k: list(v) for k, v in guardrails.dev_corpus()}
        classifier = selectors.registry_cache.guardrails.get(corpus, [], background=False)
        result = evaluate(classifier, rows, split=options["split"])
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(report(result))
        if options["mistakes"]:
            self.stdout.write("\n" + mistakes_report(result))
