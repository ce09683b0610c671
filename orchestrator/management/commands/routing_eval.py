import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orchestrator import dialogue_eval
from orchestrator.routing_eval import (
    EvalInputError,
    evaluate,
    leave_domains_out,
    read_clinc_full,
    read_jsonl,
    timed_train,
)
from orchestrator.services import SEED_FILE


class Command(BaseCommand):
    help = (
        "Train a router from an examples JSONL ({text, agent}; agent 'fallback' marks "
        "out-of-scope) and measure it on a cases JSONL ({text, expected}), or on CLINC150's "
        "data_full.json (--clinc-full), optionally leaving domains out; or, with --dialogues, "
        "measure conversations through the live chat's routing policy."
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
        _add_cross_domain_arguments(parser)

    def handle(self, *args, **options) -> None:
        if options["dialogues"]:
            return self._dialogues(options)
        embeddings = False if options["without_embeddings"] else None
        try:
            examples, cases = _load(options)
            if options["leave_domains_out"]:
                result = leave_domains_out(
                    examples,
                    cases,
                    options["leave_domains_out"],
                    rotations=options["rotations"],
                    seed=options["seed"],
                    embeddings=embeddings,
                )
                return self._print_rotations(result, options["json"])
            router, train_s = timed_train(examples, embeddings=embeddings)
        except EvalInputError as exc:
            raise CommandError(str(exc)) from None
        except ValueError as exc:
            raise CommandError(f"{options['examples'] or options['clinc_full']}: {exc}") from None
        result = evaluate(router, cases) | {"train_seconds": round(train_s, 1)}
        if options["retrain"]:  # the same texts again: embeddings come from the cache
            result["retrain_seconds"] = round(timed_train(examples, embeddings=embeddings)[1], 1)
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        retrain = (
            f" (again, embeddings cached: {result['retrain_seconds']} s)"
            if options["retrain"]
            else ""
        )
        self.stdout.write(
            f"Trained on {len(examples)} examples ({router.mode}) in {train_s:.1f} s{retrain}; "
            f"routed {result['cases']} cases at threshold {result['threshold']:.3f}.\n"
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

    def _print_rotations(self, result: dict, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result))
            return
        for run in result["rotations"]:
            self.stdout.write(
                f"held out {', '.join(run['held_out'])}: in-scope {run['in_scope_accuracy']}, "
                f"fallback recall {run['fallback_recall']}, {run['ms_per_route']} ms/route, "
                f"trained in {run['train_seconds']} s"
            )
        self.stdout.write(
            f"mean in-scope {result['mean_in_scope_accuracy']} (worst "
            f"{result['worst_in_scope_accuracy']}), mean fallback recall "
            f"{result['mean_fallback_recall']} (worst {result['worst_fallback_recall']})"
        )


def _add_cross_domain_arguments(parser) -> None:
    parser.add_argument(
        "--leave-domains-out",
        type=int,
        metavar="N",
        help="Per rotation, drop N agents from training and count their cases as out-of-scope.",
    )
    parser.add_argument("--rotations", type=int, default=5, help="With --leave-domains-out.")
    parser.add_argument("--seed", type=int, default=0, help="Which agents each rotation drops.")
    parser.add_argument(
        "--clinc-full",
        type=Path,
        metavar="DATA_FULL_JSON",
        help="CLINC150's data_full.json (domains.json beside it) instead of --examples/--cases.",
    )
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="Train a second time and time it (cached embeddings).",
    )


def _load(options) -> tuple[list, list]:
    if options["clinc_full"]:
        return read_clinc_full(options["clinc_full"], options["split"])
    if not options["examples"] or not options["cases"]:
        raise EvalInputError("Give --examples and --cases, --clinc-full, or --dialogues.")
    return (
        read_jsonl(options["examples"], ("text", "agent")),
        read_jsonl(options["cases"], ("text", "expected")),
    )
