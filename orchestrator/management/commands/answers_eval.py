import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orchestrator.answers_eval import (
    EvalInputError,
    database_knowledge,
    evaluate,
    read_cases,
    seed_knowledge,
)


class Command(BaseCommand):
    help = (
        "Measure the offline model's answers on a cases JSONL ({question, article, "
        "section}): top-1 article and section accuracy and the replies' median length in "
        "words. Articles come from the seed file unless --from-db is given."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--cases", required=True, type=Path)
        parser.add_argument(
            "--from-db",
            action="store_true",
            help="Use the published articles in the database instead of the seed file.",
        )
        parser.add_argument(
            "--without-embeddings",
            action="store_true",
            help="Rank on words only: what search does without the MiniLM weights.",
        )
        parser.add_argument("--misses", action="store_true", help="List every miss.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options) -> None:
        try:
            base = database_knowledge() if options["from_db"] else seed_knowledge()
            if not base.agents:
                raise EvalInputError("No published articles to search: run seed_team first.")
            cases = read_cases(options["cases"], base)
        except EvalInputError as exc:
            raise CommandError(str(exc)) from None
        result = evaluate(cases, base, embeddings=not options["without_embeddings"])
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
            return
        self.stdout.write(
            f"{result['cases']} questions ({result['mode']})\n"
            f"  top-1 article       {result['top1_article']}\n"
            f"  top-1 section       {result['top1_section']}\n"
            f"  reply words         {result['median_reply_words']} median, "
            f"{result['max_reply_words']} at most"
        )
        if options["misses"]:
            for miss in result["misses"]:
                self.stdout.write(
                    f"  miss: {miss['question']!r}\n"
                    f"        expected {miss['article']} / {miss['section']}; got {miss['got']}"
                )
