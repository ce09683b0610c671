import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orchestrator import dialogue_eval
from orchestrator.routing_eval import EvalInputError, evaluate, read_jsonl, train
from orchestrator.services import SEED_FILE


class Command(BaseCommand):
    help = (
        "Train a router from an examples JSONL ({text, agent}; agent 'fallback' marks "
        "out-of-scope) and measure it on a cases JSONL ({text, expected}); or, with "
        "--dialogues, measure conversations through the live chat's routing policy."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--examples", type=Path)
        parser.add_argument("--cases", type=Path)
        parser.add_argument(
            "--dialogues",
            type=Path,
            help="A JSONL of conversations ({turns: [[text, agent], ...]}) for the seed team "
            "(--team FILE: another seed file; --registry: the current registry).",
        )
        parser.add_argument("--team", type=Path, default=SEED_FILE)
        parser.add_argument("--registry", action="store_true")
        parser.add_argument("--mistakes", action="store_true", help="List the wrong turns.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument(
            "--without-embeddings",
            action="store_true",
            help="TF-IDF features only: what the router does without the MiniLM weights.",
        )

    def handle(self, *args, **options) -> None:
        if options["dialogues"]:
            return self._dialogues(options)
        if not (options["examples"] and options["cases"]):
            raise CommandError("Give --examples and --cases, or --dialogues.")
        try:
            examples = read_jsonl(options["examples"], ("text", "agent"))
            cases = read_jsonl(options["cases"], ("text", "expected"))
        except EvalInputError as exc:
            raise CommandError(str(exc)) from None
        started = time.perf_counter()
        try:
            router = train(examples, embeddings=False if options["without_embeddings"] else None)
        except ValueError as exc:
            raise CommandError(f"{options['examples']}: {exc}") from None
        train_s = time.perf_counter() - started
        result = evaluate(router, cases) | {"train_seconds": round(train_s, 1)}
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"Trained on {len(examples)} examples ({router.mode}) in {train_s:.1f} s; routed {result['cases']} cases "
            f"at threshold {result['threshold']:.3f}.\n"
            f"  in-scope accuracy   {result['in_scope_accuracy']}\n"
            f"  fallback recall     {result['fallback_recall']}\n"
            f"  fallback precision  {result['fallback_precision']}\n"
            f"  ms per route        {result['ms_per_route']} (median)"
        )

    def _dialogues(self, options) -> None:
        try:
            team, router, policy = dialogue_eval.team_and_router(
                seed=None if options["registry"] else options["team"]
            )
            dialogues = dialogue_eval.read_dialogues(options["dialogues"], team)
        except (EvalInputError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        result = dialogue_eval.evaluate(dialogues, team=team, router=router, policy=policy)
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(dialogue_eval.report(result, mistakes=options["mistakes"]))
