import json

from django.core.management.base import BaseCommand, CommandError

from orchestrator import guardrails, selectors
from orchestrator.guardrails_eval import evaluate, report


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
        self.stdout.write(json.dumps(result) if options["json"] else report(result))
